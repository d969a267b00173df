package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/rs/zerolog"
)

// Why a token is refused. Verify's errors wrap one of these; none contains the token.
var (
	errTokenMalformed   = errors.New("token malformed")
	errTokenAlgorithm   = errors.New("token algorithm not allowed")
	errTokenNoKeyID     = errors.New("token has no kid")
	errTokenKeyUnknown  = errors.New("token signing key unknown")
	errTokenSignature   = errors.New("token signature invalid")
	errTokenExpired     = errors.New("token expired")
	errTokenNotYetValid = errors.New("token not yet valid")
	errTokenIssuer      = errors.New("token issuer not accepted")
	errTokenAudience    = errors.New("token audience not accepted")
	errTokenClaims      = errors.New("token claims invalid")
)

// defaultNameClaims are tried in order when JWTConfig.NameClaim is empty.
var defaultNameClaims = []string{"client_id", "azp", "sub"}

const maxCallerName = 256

// JWTConfig configures a [JWTVerifier].
type JWTConfig struct {
	// JWKSURL is the identity provider's JWK Set. It must be https, or http to a loopback
	// address (a local test IdP).
	JWKSURL string
	// Issuer must equal the token's iss.
	Issuer string
	// Audience must be among the token's aud.
	Audience string
	// ScopeClaim holds the caller's scopes, as a space-separated string (RFC 8693/9068
	// "scope") or a JSON array of strings (e.g. Entra's "roles"). Default "scope". Scopes
	// other than [KnownScopes] are ignored; a token without the claim has no scope.
	ScopeClaim string
	// NameClaim is the claim that names the caller; the token is refused without it.
	// Empty means the first present of client_id (RFC 9068), azp (OIDC), sub: the
	// gateway's callers are services using the client-credentials grant, whose sub is
	// often an opaque id while client_id/azp name the client. Set "sub" to name the end
	// user of delegated tokens instead.
	NameClaim string
	// HTTPClient fetches the JWKS; nil means a client with Timeout.
	HTTPClient *http.Client
	// Timeout bounds each JWKS fetch, whatever the client. Default 10s.
	Timeout time.Duration
	// RefreshInterval is how often the JWKS is fetched again. Default 1h. Besides, a
	// token with an unknown kid triggers a fetch, at most once a minute.
	RefreshInterval time.Duration
	// Leeway is the clock skew allowed for exp, nbf and iat. Default 30s, at most 5m.
	Leeway time.Duration
	// Log receives JWKS fetch failures; the zero Logger discards them.
	Log zerolog.Logger
}

// JWTVerifier verifies JWTs signed by the identity provider. It is safe for concurrent use.
type JWTVerifier struct {
	cfg  JWTConfig
	keys *jwks
	now  func() time.Time
	done chan struct{} // closed when the refresh loop has stopped
}

// NewJWTVerifier checks cfg (reporting every problem at once), fetches the JWKS (an
// unreachable IdP at start is an error: better not start than fail every caller), and
// refreshes it every cfg.RefreshInterval until ctx ends.
func NewJWTVerifier(ctx context.Context, cfg JWTConfig) (*JWTVerifier, error) {
	return newJWTVerifier(ctx, cfg, time.Now)
}

func newJWTVerifier(ctx context.Context, cfg JWTConfig, now func() time.Time) (*JWTVerifier, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	client := cfg.HTTPClient
	if client == nil {
		// The configured JWKS URL only: a redirect (to http, to another host) is not followed.
		client = &http.Client{Timeout: cfg.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	v := &JWTVerifier{cfg: cfg, now: now, keys: &jwks{
		url: cfg.JWKSURL, client: client, timeout: cfg.Timeout, log: cfg.Log, now: now,
	}}
	v.keys.mu.Lock()
	err = v.keys.fetch(ctx)
	v.keys.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("jwt: initial %w", err)
	}
	v.done = make(chan struct{})
	go func() {
		defer close(v.done)
		v.keys.refreshEvery(ctx, cfg.RefreshInterval)
	}()
	return v, nil
}

func (cfg JWTConfig) withDefaults() (JWTConfig, error) {
	var errs []error
	if u, err := url.Parse(cfg.JWKSURL); err != nil || u.Host == "" {
		errs = append(errs, errors.New("jwt: JWKS URL must be an absolute URL"))
	} else if u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname())) {
		errs = append(errs, errors.New("jwt: JWKS URL must be https (http only to a loopback address)"))
	}
	if cfg.Issuer == "" {
		errs = append(errs, errors.New("jwt: issuer is required"))
	}
	if cfg.Audience == "" {
		errs = append(errs, errors.New("jwt: audience is required"))
	}
	if cfg.ScopeClaim == "" {
		cfg.ScopeClaim = "scope"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.RefreshInterval == 0 {
		cfg.RefreshInterval = time.Hour
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	if cfg.Timeout < 0 || cfg.RefreshInterval < 0 {
		errs = append(errs, errors.New("jwt: timeout and refresh interval must be positive"))
	}
	if cfg.Leeway < 0 || cfg.Leeway > 5*time.Minute {
		errs = append(errs, errors.New("jwt: leeway must be between 0 and 5m"))
	}
	return cfg, errors.Join(errs...)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Verify checks token's signature (asymmetric algorithms only, key chosen by kid), exp
// (required), nbf, iat, iss and aud, and returns the caller it names. Errors are safe to
// log: they say why, never what the token holds.
func (v *JWTVerifier) Verify(ctx context.Context, token string) (Caller, error) {
	tok, err := jwt.ParseSigned(token, allowedAlgs)
	if err != nil {
		if _, ok := errors.AsType[*jose.ErrUnexpectedSignatureAlgorithm](err); ok {
			return Caller{}, errTokenAlgorithm
		}
		return Caller{}, errTokenMalformed
	}
	if len(tok.Headers) != 1 {
		return Caller{}, errTokenMalformed
	}
	h := tok.Headers[0]
	if h.KeyID == "" {
		return Caller{}, errTokenNoKeyID
	}
	keys := v.keys.lookup(ctx, h.KeyID)
	if len(keys) == 0 {
		return Caller{}, errTokenKeyUnknown
	}
	var payload json.RawMessage
	verified := false
	for _, k := range keys {
		if keyFits(k, h.Algorithm) && tok.Claims(k.Key, &payload) == nil {
			verified = true
			break
		}
	}
	if !verified {
		return Caller{}, errTokenSignature
	}
	return v.caller(payload)
}

// caller validates the verified payload and builds the caller from it.
func (v *JWTVerifier) caller(payload []byte) (Caller, error) {
	var std jwt.Claims
	var all map[string]json.RawMessage
	if json.Unmarshal(payload, &std) != nil || json.Unmarshal(payload, &all) != nil {
		return Caller{}, fmt.Errorf("%w: registered claims have the wrong types", errTokenClaims)
	}
	if std.Expiry == nil {
		return Caller{}, fmt.Errorf("%w: no exp", errTokenClaims)
	}
	want := jwt.Expected{Issuer: v.cfg.Issuer, AnyAudience: jwt.Audience{v.cfg.Audience}, Time: v.now()}
	switch err := std.ValidateWithLeeway(want, v.cfg.Leeway); {
	case err == nil:
	case errors.Is(err, jwt.ErrExpired):
		return Caller{}, errTokenExpired
	case errors.Is(err, jwt.ErrNotValidYet), errors.Is(err, jwt.ErrIssuedInTheFuture):
		return Caller{}, errTokenNotYetValid
	case errors.Is(err, jwt.ErrInvalidIssuer):
		return Caller{}, errTokenIssuer
	case errors.Is(err, jwt.ErrInvalidAudience):
		return Caller{}, errTokenAudience
	default:
		return Caller{}, errTokenClaims
	}

	name, err := v.name(all)
	if err != nil {
		return Caller{}, err
	}
	scopes, err := scopesClaim(all[v.cfg.ScopeClaim])
	if err != nil {
		return Caller{}, fmt.Errorf("%w: %s: %w", errTokenClaims, v.cfg.ScopeClaim, err)
	}
	return Caller{Name: name, Scopes: normaliseScopes(scopes), Method: MethodJWT}, nil
}

// name returns the caller's name from the configured claim or the default ones.
func (v *JWTVerifier) name(all map[string]json.RawMessage) (string, error) {
	claims := defaultNameClaims
	if v.cfg.NameClaim != "" {
		claims = []string{v.cfg.NameClaim}
	}
	for _, c := range claims {
		raw, ok := all[c]
		if !ok {
			continue
		}
		var s string
		if json.Unmarshal(raw, &s) != nil || !validCallerName(s) {
			return "", fmt.Errorf("%w: %s must be a printable string of 1-%d bytes", errTokenClaims, c, maxCallerName)
		}
		return s, nil
	}
	return "", fmt.Errorf("%w: no name claim (%s)", errTokenClaims, strings.Join(claims, ", "))
}

func validCallerName(s string) bool {
	if s == "" || len(s) > maxCallerName || !utf8.ValidString(s) {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0
}

// scopesClaim reads a scope claim: absent or null (no scopes), a space-separated string,
// or an array of strings.
func scopesClaim(raw json.RawMessage) ([]Scope, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, errors.New("unreadable")
	}
	var out []Scope
	switch v := v.(type) {
	case nil:
	case string:
		for _, s := range strings.Fields(v) {
			out = append(out, Scope(s))
		}
	case []any:
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, errors.New("array holds a non-string")
			}
			out = append(out, Scope(s))
		}
	default:
		return nil, errors.New("neither a string nor an array of strings")
	}
	return out, nil
}
