package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/go-chi/cors"
	"github.com/go-chi/httprate"

	"github.com/finplat/payment-batch-gateway/internal/auth"
	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// anonymous names the caller when caller authentication is disabled.
const anonymous = "anonymous"

// callerName is the authenticated caller's name, recorded with every close and
// idempotency key, and logged with every request.
func callerName(ctx context.Context) string {
	if c, ok := auth.CallerFrom(ctx); ok {
		return c.Name
	}
	return anonymous
}

// callerID identifies the caller for what is kept per caller (idempotency keys, the rate
// limit): its method and name, so an API key and a JWT that happen to share a name are
// never one caller.
func callerID(ctx context.Context) string {
	if c, ok := auth.CallerFrom(ctx); ok {
		return c.Method + ":" + c.Name
	}
	return anonymous
}

// renderError is how the auth and rate-limit middleware answer: a problem, with the error
// noted for the access log.
func renderError(w http.ResponseWriter, r *http.Request, err error) {
	outcomeFrom(r.Context()).err = err
	writeProblem(w, r, err)
}

// callers returns the authentication middleware and the per-route scope check. Without
// an Authenticator (GATEWAY_AUTH=disabled), every request is "anonymous" with every scope.
func callers(a *auth.Authenticator) (authenticate func(http.Handler) http.Handler, require func(auth.Scope) func(http.Handler) http.Handler) {
	if a == nil {
		everyone := auth.Caller{Name: anonymous, Scopes: auth.KnownScopes(), Method: "none"}
		authenticate = func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				next.ServeHTTP(w, r.WithContext(auth.WithCaller(r.Context(), everyone)))
			})
		}
		return authenticate, func(auth.Scope) func(http.Handler) http.Handler {
			return func(next http.Handler) http.Handler { return next }
		}
	}
	return a.Middleware(renderError), func(s auth.Scope) func(http.Handler) http.Handler { return a.Require(s, renderError) }
}

// noteCaller puts the caller's name on the access-log line.
func noteCaller(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		outcomeFrom(r.Context()).caller = callerName(r.Context())
		next.ServeHTTP(w, r)
	})
}

// requireRegenerateScope: a close with ?regenerate=true regenerates a payment file, which
// needs batches:regenerate on top of batches:close. It runs before the idempotency key is
// claimed, so a refusal is not recorded against the key.
func requireRegenerateScope(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("regenerate") == "true" {
			if err := auth.Authorize(r.Context(), auth.ScopeBatchesRegenerate); err != nil {
				renderError(w, r, err)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// rateLimit allows each caller perMinute requests per minute; beyond, 429 with Retry-After.
func rateLimit(perMinute int) func(http.Handler) http.Handler {
	return httprate.LimitBy(perMinute, time.Minute,
		func(r *http.Request) (string, error) { return callerID(r.Context()), nil },
		httprate.WithLimitHandler(func(w http.ResponseWriter, r *http.Request) {
			renderError(w, r, batch.Errorf(codeRateLimited,
				"this caller is over its limit of %d requests per minute", perMinute))
		}))
}

// corsFor lets browsers on the given origins call the API. Credentials travel in the
// Authorization header, never in cookies, so credentialed CORS stays off.
func corsFor(origins []string) func(http.Handler) http.Handler {
	return cors.Handler(cors.Options{
		AllowedOrigins: origins,
		AllowedMethods: []string{http.MethodGet, http.MethodPost},
		AllowedHeaders: []string{"Authorization", "Idempotency-Key", "X-Request-ID", "Prefer"},
		ExposedHeaders: []string{"X-Request-ID", "Idempotency-Replayed", "Retry-After", "WWW-Authenticate",
			"Content-Disposition", "Location"},
		MaxAge: 600,
	})
}
