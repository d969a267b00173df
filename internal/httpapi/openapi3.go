package httpapi

import (
	"net/http"

	"github.com/finplat/payment-batch-gateway/internal/spec"
)

// openAPI3 serves the API description as OpenAPI 3 (converted from the Swagger 2.0 spec
// that Swagger UI shows), for tools that want version 3.
func openAPI3(w http.ResponseWriter, r *http.Request) {
	b, err := spec.JSON()
	if err != nil {
		writeProblem(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}
