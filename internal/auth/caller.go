// Package auth authenticates and authorises the gateway's callers.
//
// A caller presents `Authorization: Bearer <credential>`. The credential is either an API
// key, configured as the SHA-256 hash of the key with a name and scopes (see [ParseKeys],
// [KeyFile]), or, when a [JWTVerifier] is configured, a JWT from the company identity
// provider. [Authenticator.Middleware] puts the authenticated [Caller] in the request
// context; [Authenticator.Require] and [Authorize] check a scope. Failures are handed to
// the HTTP layer as [*Error] values, [ErrUnauthenticated] (401) or [ErrForbidden] (403),
// each carrying its WWW-Authenticate challenge (RFC 6750). The package imports nothing of
// the gateway's: the HTTP layer turns its refusals into problems.
//
// Keys and tokens are never logged, and never accepted from the query string.
package auth

import (
	"context"
	"slices"
)

// Scope is a permission a caller holds.
type Scope string

// The known scopes. A key file naming any other scope is refused; a JWT's other scopes
// (openid, profile, …) are ignored.
const (
	ScopeBatchesRead       Scope = "batches:read"       // read closes and payment files
	ScopeBatchesClose      Scope = "batches:close"      // close a batch
	ScopeBatchesRegenerate Scope = "batches:regenerate" // close a closed batch again (?regenerate=true)
)

// KnownScopes lists every scope, sorted.
func KnownScopes() []Scope {
	return []Scope{ScopeBatchesClose, ScopeBatchesRead, ScopeBatchesRegenerate}
}

// Known reports whether s is one of [KnownScopes].
func (s Scope) Known() bool {
	switch s {
	case ScopeBatchesRead, ScopeBatchesClose, ScopeBatchesRegenerate:
		return true
	}
	return false
}

// How a caller authenticated: Caller.Method.
const (
	MethodAPIKey = "api_key"
	MethodJWT    = "jwt"
)

// Caller is an authenticated caller.
type Caller struct {
	// Name identifies the caller in logs and records: the key's configured name, or the
	// JWT's name claim (see [JWTConfig.NameClaim]). Names are unique per method only, so
	// anything that records a caller should record Method too.
	Name   string
	Scopes []Scope // sorted, without duplicates, known scopes only
	Method string  // MethodAPIKey or MethodJWT
}

// Has reports whether the caller holds scope.
func (c Caller) Has(scope Scope) bool {
	return slices.Contains(c.Scopes, scope)
}

// normaliseScopes returns the known scopes of in, sorted and without duplicates.
func normaliseScopes(in []Scope) []Scope {
	out := make([]Scope, 0, len(in))
	for _, s := range in {
		if s.Known() {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// callerKey is the context key of the authenticated Caller.
type callerKey struct{}

// WithCaller returns a copy of ctx that carries c.
func WithCaller(ctx context.Context, c Caller) context.Context {
	c.Scopes = slices.Clone(c.Scopes)
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller that [WithCaller] (or the middleware) stored in ctx.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	if ok {
		c.Scopes = slices.Clone(c.Scopes) // the caller may append; the context's copy stays as it was
	}
	return c, ok
}
