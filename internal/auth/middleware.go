package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/rs/zerolog"
)

// Realm is the realm of every WWW-Authenticate challenge.
const Realm = "payment-batch-gateway"

// ErrorHandler renders an error; the HTTP layer's problem writer. The errors this package
// hands it are [*Error] values: it answers 401 for [ErrUnauthenticated], 403 for
// [ErrForbidden], and sends the error's Challenge as WWW-Authenticate.
type ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)

// The two refusals. Every error [Authenticator.Middleware], [Authenticator.Require] and
// [Authorize] return is an [*Error] that matches one of them with errors.Is.
var (
	ErrUnauthenticated = errors.New("unauthenticated") // no, malformed or invalid credentials: 401
	ErrForbidden       = errors.New("forbidden")       // valid credentials without the scope: 403
)

// Error is a refused request: which refusal, what the caller may be told, and the Bearer
// challenge (RFC 6750) its answer carries.
type Error struct {
	Kind      error  // ErrUnauthenticated or ErrForbidden
	Detail    string // safe to show the caller
	Challenge string // the WWW-Authenticate value of the answer
	Err       error  // the reason, for the log; never contains a credential
}

func (e *Error) Error() string {
	msg := fmt.Sprint(e.Kind) + ": " + e.Detail
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap makes both the refusal and the reason match errors.Is.
func (e *Error) Unwrap() []error { return []error{e.Kind, e.Err} }

// Why a request is refused before any token is verified.
var (
	errNoCredentials   = errors.New("no credentials")
	errWrongScheme     = errors.New("authorization scheme is not Bearer")
	errMalformedHeader = errors.New("malformed Authorization header")
	errQueryCredential = errors.New("credential in the query string")
	errUnknownKey      = errors.New("unknown api key")
	errNoCaller        = errors.New("no authenticated caller in the context (auth middleware not mounted)")
)

// Authenticator authenticates callers by API key and, optionally, JWT.
type Authenticator struct {
	keys []KeySource
	jwt  *JWTVerifier
}

// NewAuthenticator combines key sources (a [*KeySet] from GATEWAY_API_KEYS, a [*KeyFile])
// and an optional JWT verifier (nil: none). A key is looked up in every source. At least
// one source or the verifier is required; an empty source is the caller's decision.
func NewAuthenticator(jwtVerifier *JWTVerifier, keys ...KeySource) (*Authenticator, error) {
	a := &Authenticator{jwt: jwtVerifier}
	for _, k := range keys {
		if k != nil {
			a.keys = append(a.keys, k)
		}
	}
	if len(a.keys) == 0 && a.jwt == nil {
		return nil, errors.New("auth: no key source and no JWT verifier")
	}
	return a, nil
}

// Middleware authenticates every request. A request without valid credentials is handed
// to onError as an [ErrUnauthenticated] [*Error] with a Bearer challenge
// (error="invalid_token" when a token was presented, error="invalid_request" for a
// malformed header or a credential in the query string). Otherwise the [Caller] is put in
// the context ([CallerFrom]), and in the request logger as callerName and authMethod.
// Failures are logged at warn level with the reason, never the credential.
func (a *Authenticator) Middleware(onError ErrorHandler) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, method, err := a.authenticate(r)
			if err != nil {
				unauthorized(w, r, method, err, onError)
				return
			}
			ctx := WithCaller(r.Context(), c)
			l := zerolog.Ctx(ctx).With().Str("callerName", c.Name).Str("authMethod", c.Method).Logger()
			next.ServeHTTP(w, r.WithContext(l.WithContext(ctx)))
		})
	}
}

// authenticate returns the request's caller, or the method tried and why it failed.
func (a *Authenticator) authenticate(r *http.Request) (Caller, string, error) {
	if name, ok := queryCredential(r.URL.RawQuery); ok {
		return Caller{}, "", fmt.Errorf("%w (%s)", errQueryCredential, name)
	}
	token, err := parseBearer(r.Header.Values("Authorization"))
	if err != nil {
		return Caller{}, "", err
	}
	if a.jwt != nil && looksLikeJWT(token) {
		c, err := a.jwt.Verify(r.Context(), token)
		return c, MethodJWT, err
	}
	for _, k := range a.keys {
		if c, ok := k.Lookup(token); ok {
			return c, MethodAPIKey, nil
		}
	}
	return Caller{}, MethodAPIKey, errUnknownKey
}

// Require hands onError an [ErrForbidden] [*Error], with an insufficient_scope challenge,
// when the caller lacks scope; [ErrUnauthenticated] when there is no caller (the
// middleware is not mounted before it: fail closed). It panics on an unknown scope, a
// wiring mistake found at start-up.
func (a *Authenticator) Require(scope Scope, onError ErrorHandler) func(http.Handler) http.Handler {
	if !scope.Known() {
		panic(fmt.Sprintf("auth: Require of unknown scope %q", scope))
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := Authorize(r.Context(), scope); err != nil {
				onError(w, r, err)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// Authorize checks that the context's caller holds scope, for checks that depend on more
// than the route (a close with ?regenerate=true needs batches:regenerate). When not, it
// logs and returns the [*Error] to render: [ErrForbidden], or [ErrUnauthenticated] when
// there is no caller.
func Authorize(ctx context.Context, scope Scope) error {
	c, ok := CallerFrom(ctx)
	if !ok {
		zerolog.Ctx(ctx).Error().Err(errNoCaller).Msg("authorisation refused")
		return &Error{Kind: ErrUnauthenticated, Detail: "authentication required", Challenge: challenge(""), Err: errNoCaller}
	}
	if c.Has(scope) {
		return nil
	}
	err := fmt.Errorf("caller lacks scope %s", scope)
	zerolog.Ctx(ctx).Warn().Str("reason", err.Error()).Msg("authorisation refused") // the logger names the caller
	return &Error{Kind: ErrForbidden, Detail: fmt.Sprintf("this operation needs the scope %s", scope),
		Challenge: challenge("insufficient_scope") + fmt.Sprintf(`, scope="%s"`, scope), Err: err}
}

// unauthorized logs the reason and hands the refusal, with its challenge, to onError.
func unauthorized(w http.ResponseWriter, r *http.Request, method string, err error, onError ErrorHandler) {
	code, detail := "invalid_token", "invalid credentials"
	switch {
	case errors.Is(err, errNoCredentials), errors.Is(err, errWrongScheme):
		code, detail = "", "authentication required: send Authorization: Bearer <credential>"
	case errors.Is(err, errMalformedHeader):
		code, detail = "invalid_request", "malformed Authorization header: want Bearer <credential>"
	case errors.Is(err, errQueryCredential):
		code, detail = "invalid_request", "credentials are not accepted in the query string; send Authorization: Bearer <credential>"
	case errors.Is(err, errTokenExpired):
		detail = "the token has expired"
	}
	ev := zerolog.Ctx(r.Context()).Warn().Str("reason", err.Error())
	if method != "" {
		ev = ev.Str("authMethod", method)
	}
	ev.Msg("authentication failed")
	onError(w, r, &Error{Kind: ErrUnauthenticated, Detail: detail, Challenge: challenge(code), Err: err})
}

// challenge is a Bearer challenge with an optional RFC 6750 error code.
func challenge(code string) string {
	c := `Bearer realm="` + Realm + `"`
	if code != "" {
		c += `, error="` + code + `"`
	}
	return c
}
