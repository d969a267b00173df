package auth

import (
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
)

// An unknown kid fetches the JWKS again at most once a minute, however many tokens ask.
func TestJWKSRefetchOnUnknownKidIsLimited(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	idp := newTestIdP(t, defaultKeys()...)
	v := newTestVerifier(t, idp, clk, nil)
	if n := idp.hits.Load(); n != 1 {
		t.Fatalf("start-up fetched %d times, want 1", n)
	}
	ghost := sign(t, jose.RS256, rsaKey2(), "ghost", claims(clk, nil))
	verify := func(tok string) error { _, err := v.Verify(t.Context(), tok); return err }

	// Within a minute of the last fetch: no fetch at all.
	for range 5 {
		if err := verify(ghost); !errors.Is(err, errTokenKeyUnknown) {
			t.Fatalf("Verify = %v, want unknown key", err)
		}
	}
	if n := idp.hits.Load(); n != 1 {
		t.Fatalf("unknown kids within a minute fetched %d times, want 0", n-1)
	}

	// A minute later, many concurrent garbage tokens: exactly one fetch.
	clk.advance(minRefetchInterval + time.Second)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if err := verify(ghost); !errors.Is(err, errTokenKeyUnknown) {
				t.Errorf("Verify = %v, want unknown key", err)
			}
		})
	}
	wg.Wait()
	if n := idp.hits.Load(); n != 2 {
		t.Fatalf("20 unknown kids a minute later fetched %d times, want 1", n-1)
	}

	// The IdP rotates in a new key: picked up by the next allowed refetch.
	idp.serve(append(defaultKeys(), publicJWK("rsa-2", "RS256", rsaKey2()))...)
	rotated := sign(t, jose.RS256, rsaKey2(), "rsa-2", claims(clk, nil))
	if err := verify(rotated); !errors.Is(err, errTokenKeyUnknown) {
		t.Fatalf("Verify within the minute = %v, want unknown key", err)
	}
	clk.advance(minRefetchInterval)
	if err := verify(rotated); err != nil {
		t.Fatalf("Verify after rotation: %v", err)
	}
	if n := idp.hits.Load(); n != 3 {
		t.Errorf("fetches = %d, want 3", n)
	}
	// Known kids never fetch.
	clk.advance(time.Hour)
	if err := verify(sign(t, jose.ES256, ecKey1(), "ec-1", claims(clk, nil))); err != nil || idp.hits.Load() != 3 {
		t.Errorf("known kid: err %v, fetches %d, want no new fetch", err, idp.hits.Load())
	}
}

func TestJWKSPeriodicRefresh(t *testing.T) {
	t.Parallel()
	clk := newFakeClock() // never advanced: refetches for unknown kids stay blocked
	idp := newTestIdP(t, defaultKeys()...)
	v := newTestVerifier(t, idp, clk, func(c *JWTConfig) { c.RefreshInterval = 10 * time.Millisecond })
	old := sign(t, jose.RS256, rsaKey1(), "rsa-1", claims(clk, nil))

	// A failing IdP keeps the cached keys.
	idp.fail(http.StatusServiceUnavailable)
	start := idp.hits.Load()
	waitFor(t, "failed refreshes", func() bool { return idp.hits.Load() >= start+2 })
	if _, err := v.Verify(t.Context(), old); err != nil {
		t.Fatalf("a failed refresh dropped the keys: %v", err)
	}

	// A rotation replaces the set: the new key works, the removed one stops working.
	idp.serve(publicJWK("rsa-2", "RS256", rsaKey2()))
	rotated := sign(t, jose.RS256, rsaKey2(), "rsa-2", claims(clk, nil))
	waitFor(t, "the periodic refresh", func() bool { _, err := v.Verify(t.Context(), rotated); return err == nil })
	if _, err := v.Verify(t.Context(), old); !errors.Is(err, errTokenKeyUnknown) {
		t.Errorf("Verify with a removed key = %v, want unknown key", err)
	}
}

func TestJWTConfiguredClaims(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	idp := newTestIdP(t, defaultKeys()...)
	v := newTestVerifier(t, idp, clk, func(c *JWTConfig) { c.NameClaim, c.ScopeClaim = "sub", "roles" })
	tok := sign(t, jose.RS256, rsaKey1(), "rsa-1", claims(clk, map[string]any{"roles": []string{"batches:close"}}))
	got, err := v.Verify(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	want := Caller{Name: "00u1abcd", Scopes: []Scope{ScopeBatchesClose}, Method: MethodJWT}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("caller (-want +got):\n%s", diff)
	}
	// The configured name claim is required: no fallback to the defaults.
	tok = sign(t, jose.RS256, rsaKey1(), "rsa-1", claims(clk, map[string]any{"sub": nil}))
	if _, err := v.Verify(t.Context(), tok); !errors.Is(err, errTokenClaims) {
		t.Errorf("Verify without sub = %v, want invalid claims", err)
	}
}

func TestParseJWKSSkipsUnusableKeys(t *testing.T) {
	t.Parallel()
	enc := publicJWK("enc-1", "", rsaKey2())
	enc.Use = "enc"
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		publicJWK("rsa-1", "", rsaKey1()),
		publicJWK("ec-1", "ES256", ecKey1()),
		publicJWK("ed-1", "", edKey1()),
		{Key: []byte("a shared secret"), KeyID: "oct-1", Algorithm: "HS256"}, // symmetric
		{Key: rsaKey2(), KeyID: "private-1"},                                 // a private key, published by mistake
		enc,                                                                  // for encryption
		publicJWK("weak-1", "", rsaWeak()),                                   // 1024 bits
		publicJWK("p384-1", "", ecKeyP384()),                                 // not ES256
		publicJWK("rs384-1", "RS384", rsaKey2()),                             // an algorithm we refuse
		publicJWK("", "", rsaKey2()),                                         // no kid
	}}
	body, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	// A key type go-jose cannot parse must not spoil the others.
	body = []byte(strings.Replace(string(body), `{"keys":[`, `{"keys":[{"kty":"AKP","kid":"pq-1","alg":"ML-DSA-65","pub":"AA"},`, 1))
	keys, skipped, err := parseJWKS(body)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"ec-1", "ed-1", "rsa-1"}, slices.Sorted(maps.Keys(keys))); diff != "" {
		t.Errorf("usable kids (-want +got):\n%s", diff)
	}
	if skipped != 8 {
		t.Errorf("skipped %d keys, want 8", skipped)
	}
	for name, body := range map[string]string{
		"no usable key": `{"keys":[{"kty":"oct","kid":"k","k":"c2VjcmV0"}]}`,
		"no keys":       `{"keys":[]}`,
		"not JSON":      `<html>`,
	} {
		if _, _, err := parseJWKS([]byte(body)); err == nil {
			t.Errorf("%s: parseJWKS succeeded", name)
		}
	}
}

func TestNewJWTVerifierErrors(t *testing.T) {
	t.Parallel()
	idp := newTestIdP(t, defaultKeys()...)
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"keys":[],"pad":"` + strings.Repeat("x", maxJWKSSize) + `"}`))
	}))
	t.Cleanup(huge.Close)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	t.Cleanup(slow.Close)
	down := newTestIdP(t)
	down.fail(http.StatusInternalServerError)
	redirect := httptest.NewServer(http.RedirectHandler(idp.url(), http.StatusFound)) // even to the real keys
	t.Cleanup(redirect.Close)

	ok := JWTConfig{JWKSURL: idp.url(), Issuer: testIssuer, Audience: testAudience}
	tests := []struct {
		name    string
		mod     func(*JWTConfig)
		wantErr []string
	}{
		{"every config problem at once", func(c *JWTConfig) { *c = JWTConfig{JWKSURL: "http://idp.example.com/jwks", Leeway: time.Hour} },
			[]string{"must be https", "issuer is required", "audience is required", "leeway"}},
		{"relative URL", func(c *JWTConfig) { c.JWKSURL = "/jwks" }, []string{"absolute URL"}},
		{"IdP answers 500", func(c *JWTConfig) { c.JWKSURL = down.url() }, []string{"answered 500"}},
		{"redirect not followed", func(c *JWTConfig) { c.JWKSURL = redirect.URL }, []string{"answered 302"}},
		{"JWKS too large", func(c *JWTConfig) { c.JWKSURL = huge.URL }, []string{"more than"}},
		{"IdP too slow", func(c *JWTConfig) { c.JWKSURL, c.Timeout = slow.URL, 50*time.Millisecond }, []string{"deadline exceeded"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := ok
			tt.mod(&cfg)
			_, err := NewJWTVerifier(t.Context(), cfg)
			if err == nil {
				t.Fatal("NewJWTVerifier succeeded")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
	if _, err := NewJWTVerifier(t.Context(), ok); err != nil {
		t.Errorf("NewJWTVerifier with a good config: %v", err)
	}
}
