// Package httpapi is the gateway's HTTP surface: routes, middleware, handlers and the
// translation of errors into RFC 9457 problems. It depends on the domain, never the reverse:
// it imports, of ours, internal/batch, internal/auth, internal/store (the idempotency
// records), the wire types of api and the spec (internal/spec, the only reader of swag's
// generated openapi package).
//
//	@title						Payment-batch gateway
//	@version					1.0
//	@description				Closes SAP Concur payment batches with one JSON call. The gateway maps the plain BatchID to Concur's encrypted Batch-URL, calls Concur with its own credentials, and translates Concur's XML into JSON. Errors are RFC 9457 problems (application/problem+json) with a stable `code`.
//	@BasePath					/
//	@tag.name					batches
//	@tag.description			Concur payment batches
//	@securityDefinitions.apikey	BearerAuth
//	@in							header
//	@name						Authorization
//	@description				Send "Bearer <credential>": an API key minted with "gateway mint-key" (scopes batches:read, batches:close, batches:regenerate), or a JWT from the company identity provider when GATEWAY_JWKS_URL is set. In Swagger UI's Authorize dialog, type the word Bearer, a space, then the credential.
package httpapi

import (
	"net/http"
	"slices"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"

	"github.com/finplat/payment-batch-gateway/internal/auth"
	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// Deps is everything the HTTP layer needs.
type Deps struct {
	Log     zerolog.Logger
	Batches BatchService
	// Idempotency handles the close's Idempotency-Key header.
	Idempotency Idempotency
	// Auth authenticates callers. nil means authentication is disabled (GATEWAY_AUTH=
	// disabled): every request is the caller "anonymous" with every scope.
	Auth *auth.Authenticator
	// CORSOrigins are the browser origins allowed to call the API; none by default.
	CORSOrigins []string
	// RateLimit is the number of requests per minute each caller may make; 0 is no limit.
	RateLimit int
	// Downloads admits, bounds, verifies and records the downloads of payment files, and
	// lists them with the closes (download.go); nil: unbounded, and nothing recorded.
	Downloads Downloads
	// FileWriteTimeout is how long writing one chunk of a payment file to a caller may
	// take before the download is abandoned. Zero means one minute.
	FileWriteTimeout time.Duration
	// Metrics counts every answered request by route pattern, method and status; nil: none.
	Metrics RequestObserver
	// Trace wraps the whole surface, outermost: it starts each request's server span,
	// continuing the caller's W3C traceparent (telemetry.ServerMiddleware); nil: none.
	Trace func(http.Handler) http.Handler
	// Admin is /healthz, /readyz and /metrics (health.go).
	Admin Admin
	// AdminSeparate says the admin endpoints are served by AdminHandler on a listener of
	// their own (GATEWAY_ADMIN_ADDR), so not here.
	AdminSeparate bool
}

// NewHandler returns the gateway's whole API surface.
//
// Middleware order, outermost first: tracing (the server span, so every later line can
// carry its trace id), request id (so every later line and answer carries it), access log
// (request-scoped logger, one line and one metrics count per request, errors logged once),
// recoverer (a panic becomes a 500 problem and still gets its access-log line), body
// refusal, CORS (a preflight carries no credentials); then, for the API routes only,
// authentication, the per-caller rate limit, and each route's scope.
func NewHandler(d Deps) http.Handler {
	if d.FileWriteTimeout <= 0 {
		d.FileWriteTimeout = time.Minute
	}
	if d.Downloads == nil {
		d.Downloads = batch.NewDownloads(nil, batch.DownloadOptions{})
	}
	r := chi.NewRouter()
	if d.Trace != nil {
		r.Use(d.Trace)
	}
	r.Use(requestID, accessLog(d.Log, d.Metrics), recoverer, refuseBody)
	if len(d.CORSOrigins) > 0 {
		r.Use(corsFor(d.CORSOrigins))
	}

	r.NotFound(func(w http.ResponseWriter, req *http.Request) {
		writeProblem(w, req, batch.Errorf(codeRouteNotFound, "no route for %s %s", req.Method, req.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		allowed := allowedMethods(r, req.URL.Path)
		for _, m := range allowed {
			w.Header().Add("Allow", m)
		}
		writeProblem(w, req, batch.Errorf(codeMethodNotAllowed, "%s is not allowed here; allowed: %v", req.Method, allowed))
	})

	r.Group(func(r chi.Router) {
		authenticate, require := callers(d.Auth)
		r.Use(authenticate, noteCaller)
		if d.RateLimit > 0 {
			r.Use(rateLimit(d.RateLimit))
		}
		r.With(require(auth.ScopeBatchesClose), requireRegenerateScope, idempotent(d.Idempotency)).
			Post("/batches/{id}/close", handle(closeBatch(d.Batches)))
		r.With(require(auth.ScopeBatchesRead)).Get("/batches", handle(listBatches(d.Batches)))
		r.With(require(auth.ScopeBatchesRead)).Get("/batches/{id}", handle(getBatch(d.Batches)))
		r.With(require(auth.ScopeBatchesRead)).Get("/batches/{id}/closes", handle(batchCloses(d.Batches, d.Downloads)))
		r.With(require(auth.ScopeBatchesRead)).Get("/batches/{id}/file", handle(batchFile(d.Batches, d.Downloads, d.FileWriteTimeout)))
	})
	r.Get("/problems/{code}", problemType)
	if !d.AdminSeparate {
		mountAdmin(r, d.Admin)
	}
	r.Get("/openapi.json", openAPI3)
	r.Get("/swagger", http.RedirectHandler("/swagger/index.html", http.StatusMovedPermanently).ServeHTTP)
	r.Get("/swagger/*", swaggerUI())
	return r
}

// allowedMethods lists the methods routed for path, for the Allow header of a 405.
func allowedMethods(r chi.Routes, path string) []string {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions} {
		if r.Match(chi.NewRouteContext(), m, path) {
			allowed = append(allowed, m)
		}
	}
	return slices.Clip(allowed)
}

// refuseBody answers 413 to any request that carries a body: no endpoint takes one (deny
// before allow), and a body nobody reads would still cost the server reading it.
func refuseBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 {
			w.Header().Set("Connection", "close") // do not read the rest of it
			renderError(w, r, batch.Errorf(codeBodyNotAllowed, "this API takes no request body"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// handlerFunc is a handler whose failure is an error; handle turns it into a problem.
type handlerFunc func(http.ResponseWriter, *http.Request) error

// handle adapts a handlerFunc. The error goes to the access log (once) and, if nothing
// was sent yet, to the caller as a problem. If the answer had started (a file stream
// broke), the connection is aborted so the caller cannot mistake a cut file for a whole one.
func handle(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w, sent := watchStatus(w)
		err := h(w, r)
		if err == nil {
			return
		}
		o := outcomeFrom(r.Context())
		o.err = err
		if r.Context().Err() != nil { // the caller left: nobody to answer
			o.callerGone = true
			return
		}
		if sent.Status() != 0 {
			panic(http.ErrAbortHandler)
		}
		writeProblem(w, r, err)
	}
}
