package httpapi

import (
	"io/fs"
	"net/http"
	"strings"

	swaggerFiles "github.com/swaggo/files/v2"
	httpSwagger "github.com/swaggo/http-swagger/v2"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/spec"
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
			// http-swagger picks its file from RequestURI, query included: given only the
			// path, "index.html?x=/doc.json" is index.html, not swag's raw document (read
			// there on every request, racing the one read of package spec).
			r := r.WithContext(r.Context())
			r.RequestURI = r.URL.EscapedPath()
			ui.ServeHTTP(w, r)
		default:
			writeProblem(w, r, batch.Errorf(codeRouteNotFound, "no route for %s %s", r.Method, r.URL.Path))
		}
	}
}

func serveSwaggerDoc(w http.ResponseWriter, r *http.Request) {
	b, err := spec.Swagger2()
	if err != nil {
		writeProblem(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(b)
}
