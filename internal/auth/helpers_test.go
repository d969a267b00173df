package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/rs/zerolog"
)

const (
	testIssuer   = "https://idp.example.com/"
	testAudience = "payment-batch-gateway"
)

// syncBuffer is a log sink that a background goroutine (Watch, JWKS refresh) may write
// while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testLogger logs to t.Log and to the returned buffer, for assertions on log content.
func testLogger(t *testing.T) (zerolog.Logger, *syncBuffer) {
	t.Helper()
	buf := &syncBuffer{}
	return zerolog.New(io.MultiWriter(buf, zerolog.NewTestWriter(t))), buf
}

// fakeClock is a settable clock, safe for concurrent use.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// Keys are expensive to generate under -race: each is made once for the package.
var (
	rsaKey1   = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(2048) })
	rsaKey2   = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(2048) })
	ecKey1    = sync.OnceValue(func() *ecdsa.PrivateKey { return must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)) })
	edKey1    = sync.OnceValue(func() ed25519.PrivateKey { _, k := must2(ed25519.GenerateKey(rand.Reader)); return k })
	rsaWeak   = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(1024) })
	ecKeyP384 = sync.OnceValue(func() *ecdsa.PrivateKey { return must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader)) })
)

func mustRSA(bits int) *rsa.PrivateKey { return must(rsa.GenerateKey(rand.Reader, bits)) }

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func must2[A, B any](a A, b B, err error) (A, B) {
	if err != nil {
		panic(err)
	}
	return a, b
}

// publicJWK is the JWKS entry for a private key.
func publicJWK(kid, alg string, priv any) jose.JSONWebKey {
	k := jose.JSONWebKey{Key: priv, KeyID: kid, Algorithm: alg, Use: "sig"}
	return k.Public()
}

// testIdP is an identity provider's JWKS endpoint on a local httptest server.
type testIdP struct {
	srv  *httptest.Server
	hits atomic.Int64

	mu     sync.Mutex
	keys   []jose.JSONWebKey
	status int // answered instead of the set when not 0
}

func newTestIdP(t *testing.T, keys ...jose.JSONWebKey) *testIdP {
	t.Helper()
	p := &testIdP{keys: keys}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.hits.Add(1)
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.status != 0 {
			w.WriteHeader(p.status)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: p.keys})
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *testIdP) serve(keys ...jose.JSONWebKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys, p.status = keys, 0
}

func (p *testIdP) fail(status int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status = status
}

func (p *testIdP) url() string { return p.srv.URL + "/jwks" }

// defaultKeys are what the usual test IdP serves.
func defaultKeys() []jose.JSONWebKey {
	return []jose.JSONWebKey{
		publicJWK("rsa-1", "", rsaKey1()), // no alg: usable with RS256 and PS256
		publicJWK("ec-1", "ES256", ecKey1()),
		publicJWK("ed-1", "EdDSA", edKey1()),
	}
}

// newTestVerifier starts a verifier against p with a fake clock.
func newTestVerifier(t *testing.T, p *testIdP, clk *fakeClock, mod func(*JWTConfig)) *JWTVerifier {
	t.Helper()
	log, _ := testLogger(t)
	cfg := JWTConfig{JWKSURL: p.url(), Issuer: testIssuer, Audience: testAudience, Log: log}
	if mod != nil {
		mod(&cfg)
	}
	v, err := newJWTVerifier(t.Context(), cfg, clk.now)
	if err != nil {
		t.Fatalf("newJWTVerifier: %v", err)
	}
	t.Cleanup(func() { <-v.done }) // the refresh loop logs to t: it must end with the test
	return v
}

// claims returns valid claims at clk's time, changed by set (a nil value deletes).
func claims(clk *fakeClock, set map[string]any) map[string]any {
	now := clk.now()
	c := map[string]any{
		"iss": testIssuer, "aud": testAudience, "sub": "00u1abcd", "client_id": "ap-portal",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		"scope": "batches:read batches:close",
	}
	for k, v := range set {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// sign makes a compact JWT with key, alg and kid ("" for none).
func sign(t *testing.T, alg jose.SignatureAlgorithm, key any, kid string, c map[string]any) string {
	t.Helper()
	if kid != "" {
		key = jose.JSONWebKey{Key: key, KeyID: kid}
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatalf("signer: %v", err)
	}
	tok, err := jwt.Signed(s).Claims(c).Serialize()
	if err != nil {
		t.Fatalf("signing: %v", err)
	}
	return tok
}

// testOnError is the HTTP layer's stand-in: the status and challenge from the refusal, a
// name for it and the detail as body.
func testOnError(w http.ResponseWriter, _ *http.Request, err error) {
	e, ok := errors.AsType[*Error](err)
	status, name := http.StatusInternalServerError, "internal"
	switch {
	case ok && errors.Is(err, ErrUnauthenticated):
		status, name = http.StatusUnauthorized, "unauthorized"
	case ok && errors.Is(err, ErrForbidden):
		status, name = http.StatusForbidden, "forbidden"
	}
	if ok {
		w.Header().Set("WWW-Authenticate", e.Challenge)
	}
	w.WriteHeader(status)
	if ok {
		_, _ = io.WriteString(w, name+": "+e.Detail)
	}
}
