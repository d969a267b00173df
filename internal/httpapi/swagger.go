package httpapi

import (
	"io/fs"
	"net/http"
	"strings"

	swaggerFiles "github.com/swaggo/files/v2"
	httpSwagger "github.com/swaggo/http-swagger/v2"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	_ "github.com/finplat/payment-batch-gateway/openapi" // registers the generated spec
)

// swaggerUI serves Swagger UI and the spec (/swagger/doc.json). Only the files that exist
// are passed to http-swagger, so an unknown path gets a problem, not a plain-text 404.
func swaggerUI() http.HandlerFunc {
	known := map[string]bool{"doc.json": true}
	entries, _ := fs.ReadDir(swaggerFiles.FS, ".")
	for _, e := range entries {
		known[e.Name()] = true
	}
	ui := httpSwagger.Handler(httpSwagger.URL("/swagger/doc.json"))
	return func(w http.ResponseWriter, r *http.Request) {
		if !known[strings.TrimPrefix(r.URL.Path, "/swagger/")] {
			writeProblem(w, r, batch.Errorf(codeRouteNotFound, "no route for %s %s", r.Method, r.URL.Path))
			return
		}
		ui.ServeHTTP(w, r)
	}
}
