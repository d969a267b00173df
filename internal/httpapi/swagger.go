package httpapi

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"strings"
	"sync"

	swaggerFiles "github.com/swaggo/files/v2"
	httpSwagger "github.com/swaggo/http-swagger/v2"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/openapi" // the generated spec
)

// swaggerUI serves Swagger UI and the spec (/swagger/doc.json). Only the files that exist
// are passed to http-swagger, so an unknown path gets a problem, not a plain-text 404.
func swaggerUI() http.HandlerFunc {
	known := map[string]bool{}
	entries, _ := fs.ReadDir(swaggerFiles.FS, ".")
	for _, e := range entries {
		known[e.Name()] = true
	}
	ui := httpSwagger.Handler(httpSwagger.URL("/swagger/doc.json"))
	return func(w http.ResponseWriter, r *http.Request) {
		switch name := strings.TrimPrefix(r.URL.Path, "/swagger/"); {
		case name == "doc.json":
			serveSwaggerDoc(w, r)
		case known[name]:
			ui.ServeHTTP(w, r)
		default:
			writeProblem(w, r, batch.Errorf(codeRouteNotFound, "no route for %s %s", r.Method, r.URL.Path))
		}
	}
}

func serveSwaggerDoc(w http.ResponseWriter, r *http.Request) {
	b, err := swaggerDoc()
	if err != nil {
		writeProblem(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(b)
}

// swaggerDoc is the Swagger 2.0 spec as served: swag's, without the "host": "" and
// "schemes": [] its template writes when none is set. The OpenAPI 2 schema rejects an
// empty host; without either, a client uses the host and scheme it fetched the spec from.
var swaggerDoc = sync.OnceValues(func() ([]byte, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal([]byte(openapi.SwaggerInfo.ReadDoc()), &doc); err != nil {
		return nil, err
	}
	for _, key := range []string{"host", "schemes"} {
		if isEmptyJSON(doc[key]) {
			delete(doc, key)
		}
	}
	return json.MarshalIndent(doc, "", "    ")
})

// isEmptyJSON reports whether v is absent, null, "" or [].
func isEmptyJSON(v json.RawMessage) bool {
	var x any
	if len(v) == 0 || json.Unmarshal(v, &x) != nil {
		return len(v) == 0
	}
	switch x := x.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case []any:
		return len(x) == 0
	}
	return false
}
