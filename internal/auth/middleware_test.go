package auth

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/rs/zerolog"
)

const (
	challengeNone    = `Bearer realm="payment-batch-gateway"`
	challengeInvalid = `Bearer realm="payment-batch-gateway", error="invalid_token"`
	challengeRequest = `Bearer realm="payment-batch-gateway", error="invalid_request"`
)

type authFixture struct {
	portal, auditor, other testKey
	clk                    *fakeClock
	auth                   *Authenticator
}

// newAuthFixture: keys portal (read, close) and auditor (read) from two sources, other
// unconfigured, and a JWT verifier against a local IdP.
func newAuthFixture(t *testing.T) *authFixture {
	t.Helper()
	f := &authFixture{portal: mintKey(t), auditor: mintKey(t), other: mintKey(t), clk: newFakeClock()}
	env, err := ParseKeys(keysJSON(entry("ap-portal", f.portal.hash, ScopeBatchesRead, ScopeBatchesClose)))
	if err != nil {
		t.Fatal(err)
	}
	file, err := ParseKeys(keysJSON(entry("auditor", f.auditor.hash, ScopeBatchesRead)))
	if err != nil {
		t.Fatal(err)
	}
	v := newTestVerifier(t, newTestIdP(t, defaultKeys()...), f.clk, nil)
	if f.auth, err = NewAuthenticator(v, env, nil, file); err != nil {
		t.Fatal(err)
	}
	return f
}

// handler is a route needing scope behind the middleware, with log as request logger.
func (f *authFixture) handler(scope Scope, log zerolog.Logger) http.Handler {
	final := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := CallerFrom(r.Context())
		zerolog.Ctx(r.Context()).Info().Msg("handled")
		_, _ = io.WriteString(w, c.Name+" "+c.Method)
	})
	h := f.auth.Middleware(testOnError)(f.auth.Require(scope, testOnError)(final))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(log.WithContext(r.Context())))
	})
}

func TestMiddleware(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	jwtRead := sign(t, jose.ES256, ecKey1(), "ec-1", claims(f.clk, map[string]any{"scope": "batches:read"}))
	jwtExpired := sign(t, jose.RS256, rsaKey1(), "rsa-1", claims(f.clk, map[string]any{"exp": f.clk.now().Add(-time.Hour).Unix()}))
	jwtForeign := sign(t, jose.RS256, rsaKey2(), "rsa-1", claims(f.clk, nil))
	bearer := func(s string) []string { return []string{"Bearer " + s} }

	tests := []struct {
		name          string
		scope         Scope
		target        string
		header        []string
		wantStatus    int
		wantChallenge string
		wantBody      string
		secret        string // never in the log
		wantReason    string // in the log
	}{
		{name: "valid key", header: bearer(f.portal.key), wantStatus: 200, wantBody: "ap-portal api_key", secret: f.portal.key},
		{name: "valid key from the second source", header: bearer(f.auditor.key), wantStatus: 200, wantBody: "auditor api_key", secret: f.auditor.key},
		{name: "scheme in lower case, several spaces", header: []string{"bearer   " + f.portal.key}, wantStatus: 200, wantBody: "ap-portal", secret: f.portal.key},
		{name: "valid key and an unrelated query", target: "/?regenerate=true", header: bearer(f.portal.key), wantStatus: 200, wantBody: "ap-portal", secret: f.portal.key},
		{name: "scope held", scope: ScopeBatchesClose, header: bearer(f.portal.key), wantStatus: 200, wantBody: "ap-portal", secret: f.portal.key},
		{name: "scope missing", scope: ScopeBatchesClose, header: bearer(f.auditor.key), wantStatus: 403,
			wantChallenge: `Bearer realm="payment-batch-gateway", error="insufficient_scope", scope="batches:close"`,
			wantBody:      "forbidden: this operation needs the scope batches:close", secret: f.auditor.key, wantReason: "caller lacks scope batches:close"},
		{name: "wrong key", header: bearer(f.other.key), wantStatus: 401, wantChallenge: challengeInvalid, wantBody: "unauthorized: invalid credentials", secret: f.other.key, wantReason: "unknown api key"},
		{name: "the configured hash as key", header: bearer(f.portal.hash), wantStatus: 401, wantChallenge: challengeInvalid, secret: f.portal.hash, wantReason: "unknown api key"},
		{name: "missing header", wantStatus: 401, wantChallenge: challengeNone, wantBody: "unauthorized: authentication required", wantReason: "no credentials"},
		{name: "empty header", header: []string{""}, wantStatus: 401, wantChallenge: challengeNone, wantReason: "no credentials"},
		{name: "wrong scheme", header: []string{"Basic " + f.portal.key}, wantStatus: 401, wantChallenge: challengeNone, secret: f.portal.key, wantReason: "not Bearer"},
		{name: "bare key", header: []string{f.portal.key}, wantStatus: 401, wantChallenge: challengeNone, secret: f.portal.key, wantReason: "not Bearer"},
		{name: "scheme only", header: []string{"Bearer"}, wantStatus: 401, wantChallenge: challengeRequest, wantReason: "malformed"},
		{name: "scheme and spaces", header: []string{"Bearer    "}, wantStatus: 401, wantChallenge: challengeRequest, wantReason: "malformed"},
		{name: "two tokens", header: []string{"Bearer " + f.portal.key + " " + f.portal.key}, wantStatus: 401, wantChallenge: challengeRequest, secret: f.portal.key, wantReason: "malformed"},
		{name: "two headers", header: []string{"Bearer " + f.portal.key, "Bearer " + f.auditor.key}, wantStatus: 401, wantChallenge: challengeRequest, secret: f.portal.key, wantReason: "malformed"},
		{name: "bad characters", header: []string{"Bearer " + f.portal.key + `"`}, wantStatus: 401, wantChallenge: challengeRequest, secret: f.portal.key, wantReason: "malformed"},
		{name: "oversized", header: bearer(strings.Repeat("a", maxCredentialLen+1)), wantStatus: 401, wantChallenge: challengeRequest, wantReason: "malformed"},
		{name: "key in the query string", target: "/?api_key=" + f.portal.key, wantStatus: 401, wantChallenge: challengeRequest,
			wantBody: "unauthorized: credentials are not accepted in the query string", secret: f.portal.key, wantReason: "credential in the query string (api_key)"},
		{name: "token in the query string beside a valid header", target: "/?access_token=" + jwtRead, header: bearer(f.portal.key), wantStatus: 401,
			wantChallenge: challengeRequest, secret: jwtRead, wantReason: "credential in the query string (access_token)"},
		{name: "key parameter, upper case and escaped", target: "/?x=1&K%45Y=" + f.portal.key, wantStatus: 401, wantChallenge: challengeRequest, secret: f.portal.key, wantReason: "(key)"},
		{name: "jwt", header: bearer(jwtRead), wantStatus: 200, wantBody: "ap-portal jwt", secret: jwtRead},
		{name: "jwt without the scope", scope: ScopeBatchesClose, header: bearer(jwtRead), wantStatus: 403,
			wantChallenge: `Bearer realm="payment-batch-gateway", error="insufficient_scope", scope="batches:close"`, secret: jwtRead, wantReason: "lacks scope"},
		{name: "jwt expired", header: bearer(jwtExpired), wantStatus: 401, wantChallenge: challengeInvalid, wantBody: "unauthorized: the token has expired", secret: jwtExpired, wantReason: "token expired"},
		{name: "jwt signed by another key", header: bearer(jwtForeign), wantStatus: 401, wantChallenge: challengeInvalid, wantBody: "unauthorized: invalid credentials", secret: jwtForeign, wantReason: "signature invalid"},
		{name: "jwt-shaped garbage", header: bearer("aaaa.bbbb.cccc"), wantStatus: 401, wantChallenge: challengeInvalid, wantReason: "token malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			log, logs := testLogger(t)
			scope := tt.scope
			if scope == "" {
				scope = ScopeBatchesRead
			}
			target := tt.target
			if target == "" {
				target = "/"
			}
			req := httptest.NewRequest(http.MethodGet, target, nil)
			for _, h := range tt.header {
				req.Header.Add("Authorization", h)
			}
			rec := httptest.NewRecorder()
			f.handler(scope, log).ServeHTTP(rec, req)

			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d (%s)", rec.Code, tt.wantStatus, rec.Body)
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != tt.wantChallenge {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tt.wantChallenge)
			}
			if !strings.HasPrefix(rec.Body.String(), tt.wantBody) {
				t.Errorf("body = %q, want it to start with %q", rec.Body, tt.wantBody)
			}
			out := logs.String()
			assertNoSecret(t, out, tt.secret)
			assertNoSecret(t, rec.Body.String(), tt.secret)
			if tt.wantReason != "" && !strings.Contains(out, tt.wantReason) {
				t.Errorf("log lacks the reason %q:\n%s", tt.wantReason, out)
			}
			if tt.wantStatus == 200 && !strings.Contains(out, `"callerName":"`+strings.Fields(tt.wantBody)[0]+`"`) {
				t.Errorf("the handler's log line lacks the caller:\n%s", out)
			}
		})
	}
}

// assertNoSecret fails when out holds secret, or any 12-byte piece of it (a JWT's
// signature or payload, a logged prefix of a key).
func assertNoSecret(t *testing.T, out, secret string) {
	t.Helper()
	const piece = 12
	for i := 0; i+piece <= len(secret); i += piece / 2 {
		if strings.Contains(out, secret[i:i+piece]) {
			t.Errorf("output contains part of the credential at %d:\n%s", i, out)
			return
		}
	}
}

// Over a real connection: the challenge and the caller reach the client.
func TestMiddlewareOverHTTP(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	log, _ := testLogger(t)
	srv := httptest.NewServer(f.handler(ScopeBatchesRead, log))
	t.Cleanup(srv.Close)
	for _, tt := range []struct {
		auth       string
		wantStatus int
		wantHeader string
	}{
		{"Bearer " + f.portal.key + " \t", 200, ""},
		{"Bearer " + f.other.key, 401, challengeInvalid},
		{"", 401, challengeNone},
	} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.wantStatus || resp.Header.Get("WWW-Authenticate") != tt.wantHeader {
			t.Errorf("status %d, challenge %q; want %d, %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), tt.wantStatus, tt.wantHeader)
		}
	}
}

func TestRequireFailsClosed(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	h := f.auth.Require(ScopeBatchesRead, testOnError)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("handler reached without a caller")
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") != challengeNone {
		t.Errorf("status %d, challenge %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}

	defer func() {
		if recover() == nil {
			t.Error("Require of an unknown scope did not panic")
		}
	}()
	f.auth.Require("batches:write", testOnError)
}

func TestNewAuthenticatorNeedsASource(t *testing.T) {
	t.Parallel()
	if _, err := NewAuthenticator(nil); err == nil {
		t.Error("NewAuthenticator without sources succeeded")
	}
	if _, err := NewAuthenticator(nil, (*KeySet)(nil)); err != nil {
		t.Errorf("an empty key set is the caller's decision: %v", err)
	}
}

// The refusals are this package's own errors: each matches its sentinel and its reason,
// and carries the challenge its answer needs.
func TestAuthorizeRefusals(t *testing.T) {
	t.Parallel()
	reader := WithCaller(t.Context(), Caller{Name: "auditor", Scopes: []Scope{ScopeBatchesRead}, Method: MethodAPIKey})
	if err := Authorize(reader, ScopeBatchesRead); err != nil {
		t.Errorf("a held scope: %v", err)
	}
	for name, tt := range map[string]struct {
		err           error
		kind, notKind error
		challenge     string
	}{
		"no caller":     {Authorize(t.Context(), ScopeBatchesRead), ErrUnauthenticated, ErrForbidden, challengeNone},
		"scope missing": {Authorize(reader, ScopeBatchesClose), ErrForbidden, ErrUnauthenticated, `Bearer realm="payment-batch-gateway", error="insufficient_scope", scope="batches:close"`},
	} {
		e, ok := errors.AsType[*Error](tt.err)
		if !ok || !errors.Is(tt.err, tt.kind) || errors.Is(tt.err, tt.notKind) || e.Challenge != tt.challenge || e.Err == nil {
			t.Errorf("%s: %#v", name, tt.err)
		}
	}
	if err := Authorize(t.Context(), ScopeBatchesRead); !errors.Is(err, errNoCaller) ||
		err.Error() != "unauthenticated: authentication required: "+errNoCaller.Error() {
		t.Errorf("the reason is not in the chain or the message: %v", err)
	}
	if got := (&Error{Kind: ErrForbidden, Detail: "no"}).Error(); got != "forbidden: no" {
		t.Errorf("without a reason: %q", got)
	}
}
