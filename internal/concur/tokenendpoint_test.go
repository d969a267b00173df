package concur

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

func TestTokenEndpointFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*Config)
		answer http.HandlerFunc
		delay  time.Duration
		code   batch.Code
	}{
		{name: "invalid client", mutate: func(c *Config) { c.ClientSecret = "wrong-client-secret" },
			code: batch.CodeUpstreamAuthFailed},
		{name: "503", answer: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) },
			code: batch.CodeUpstreamUnavailable},
		{name: "garbage", answer: func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "<html>") },
			code: batch.CodeUpstreamBadResponse},
		{name: "no access token", answer: func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, 200, map[string]any{"expires_in": "3600"})
		}, code: batch.CodeUpstreamBadResponse},
		{name: "bad expires_in", answer: func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, 200, map[string]any{"access_token": "at-x", "expires_in": "soon"})
		}, code: batch.CodeUpstreamBadResponse},
		{name: "geolocation with userinfo", answer: func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, 200, map[string]any{"access_token": "at-x", "geolocation": "https://u:p@evil.example"})
		}, code: batch.CodeUpstreamBadResponse},
		{name: "oversized", answer: func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, `{"access_token":"at-x","pad":"%s"}`, strings.Repeat("x", maxTokenBody))
		}, code: batch.CodeUpstreamBadResponse},
		{name: "slow", delay: time.Second, code: batch.CodeUpstreamTimeout},
		{name: "unreachable", mutate: func(c *Config) { c.TokenURL = closedURL(t) + tokenPath },
			code: batch.CodeUpstreamUnreachable},
		{name: "storing fails", mutate: func(c *Config) {
			s := newRecordingStore()
			s.fail(nil, errors.New("disk full"))
			c.Credentials = s
		}, code: batch.CodeInternal},
		{name: "store down", mutate: func(c *Config) {
			s := newRecordingStore()
			s.fail(errors.New("connection refused"), nil)
			c.Credentials = s
		}, code: batch.CodeStoreUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.set(func(f *fakeConcur) { f.tokenFail, f.tokenDelay = tt.answer, tt.delay })
			c, _ := newClient(t, f, func(c *Config) {
				c.Timeout = 200 * time.Millisecond
				if tt.mutate != nil {
					tt.mutate(c)
				}
			})
			wantCode(t, call(t.Context(), c, f, opList), tt.code)
			if f.apiCalls.Load() != 0 {
				t.Errorf("API calls = %d, want 0", f.apiCalls.Load())
			}
		})
	}
}

// A throttled or failing token endpoint tells the caller when to come back, with the same
// defaults as the API: the Retry-After header when positive, else 60s for 429 and 5 minutes
// for 5xx.
func TestTokenEndpointRetryAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		status     int
		retryAfter string // header; "" sends none
		code       batch.Code
		want       time.Duration
	}{
		{"503 no header", 503, "", batch.CodeUpstreamUnavailable, 5 * time.Minute},
		{"503 seconds", 503, "30", batch.CodeUpstreamUnavailable, 30 * time.Second},
		{"503 zero", 503, "0", batch.CodeUpstreamUnavailable, 5 * time.Minute},
		{"500 no header", 500, "", batch.CodeUpstreamUnavailable, 5 * time.Minute},
		{"502 garbage header", 502, "soon", batch.CodeUpstreamUnavailable, 5 * time.Minute},
		{"429 no header", 429, "", batch.CodeUpstreamRateLimited, time.Minute},
		{"429 seconds", 429, "7", batch.CodeUpstreamRateLimited, 7 * time.Second},
		{"429 negative", 429, "-3", batch.CodeUpstreamRateLimited, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.set(func(f *fakeConcur) {
				f.tokenFail = func(w http.ResponseWriter, _ *http.Request) {
					if tt.retryAfter != "" {
						w.Header().Set("Retry-After", tt.retryAfter)
					}
					writeJSON(w, tt.status, map[string]any{"error": "server_error"})
				}
			})
			c, _ := newClient(t, f, nil)
			e := wantCode(t, call(t.Context(), c, f, opList), tt.code)
			if e.RetryAfter != tt.want {
				t.Errorf("RetryAfter = %v, want %v", e.RetryAfter, tt.want)
			}
			if e.Upstream == nil || e.Upstream.Status != tt.status {
				t.Errorf("Upstream = %+v, want status %d", e.Upstream, tt.status)
			}
		})
	}
}

// The token's geolocation is the API base, and its host is trusted for Batch-URLs.
func TestGeolocation(t *testing.T) {
	t.Parallel()
	auth, geo := newFake(t), newFake(t) // auth: token endpoint and BaseURL; geo: the data centre
	auth.set(func(f *fakeConcur) { f.geolocation = geo.srv.URL + "/ignored/path" })
	c, _ := newClient(t, auth, nil)
	geo.set(func(g *fakeConcur) { g.access["at-1"] = true })
	got, err := listOf(t.Context(), c, batch.ListAll)
	if err != nil {
		t.Fatal(err)
	}
	assertEqual(t, wantNamespacedList(geo.srv.URL), got)
	if _, err := c.CloseBatch(t.Context(), got[0].URL); err != nil {
		t.Fatal(err)
	}
	if auth.apiCalls.Load() != 0 || geo.apiCalls.Load() != 2 {
		t.Errorf("API calls: base %d, geolocation %d; want 0 and 2", auth.apiCalls.Load(), geo.apiCalls.Load())
	}
}

// A geolocation over cleartext is refused when Config.BaseURL is https: the bearer token
// never goes to it. The rotated refresh token is still stored (with no access token and no
// geolocation) and redeemed next.
func TestGeolocationCleartextRefused(t *testing.T) {
	t.Parallel()
	auth, geo := newFake(t), newFake(t) // auth: the token endpoint; geo: an http "data centre"
	auth.set(func(f *fakeConcur) { f.geolocation = geo.srv.URL })
	geo.set(func(g *fakeConcur) { g.access["at-1"], g.access["at-2"] = true, true })
	creds := newRecordingStore()
	c, _ := newClient(t, auth, func(c *Config) {
		c.BaseURL = "https://us.api.concursolutions.invalid" // https: never contacted in this test
		c.Credentials = creds
	})
	for range 2 {
		e := wantCode(t, call(t.Context(), c, auth, opList), batch.CodeUpstreamBadResponse)
		if !strings.Contains(e.Detail, "geolocation") {
			t.Errorf("Detail = %q, want it to name the geolocation", e.Detail)
		}
	}
	if n := geo.apiCalls.Load(); n != 0 {
		t.Errorf("the http geolocation received %d API calls", n)
	}
	assertEqual(t, []string{"rt-0", "rt-1"}, auth.redeemedTokens())
	type stored struct{ rt, at, geo string }
	var got []stored
	for _, c := range creds.committed() {
		got = append(got, stored{c.RefreshToken, c.AccessToken, c.Geolocation})
	}
	assertEqual(t, []stored{{"rt-1", "", ""}, {"rt-2", "", ""}}, got, cmp.AllowUnexported(stored{}))
}

func TestBuildTokenGeolocationScheme(t *testing.T) {
	t.Parallel()
	tests := []struct {
		base, geo string
		wantBase  string // "" when refused
	}{
		{"https://us.api.concursolutions.com", "https://emea.api.concursolutions.com", "https://emea.api.concursolutions.com"},
		{"https://us.api.concursolutions.com", "http://emea.api.concursolutions.com", ""},
		{"https://us.api.concursolutions.com", "HTTP://emea.api.concursolutions.com:80", ""},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8081", "http://127.0.0.1:8081"},
		{"http://127.0.0.1:8080", "https://emea.api.concursolutions.com", "https://emea.api.concursolutions.com"},
	}
	for _, tt := range tests {
		t.Run(tt.base+" "+tt.geo, func(t *testing.T) {
			t.Parallel()
			allowHTTP := strings.HasPrefix(tt.base, "http://")
			tok, geo, err := buildToken(tokenAnswer{AccessToken: "at-x", Geolocation: tt.geo}, time.Now(), allowHTTP)
			if tt.wantBase == "" {
				wantCode(t, err, batch.CodeUpstreamBadResponse)
				if geo != "" {
					t.Errorf("geo = %q, want none", geo)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tok.apiBase != tt.wantBase || geo != tt.geo {
				t.Errorf("apiBase %q geo %q, want %q %q", tok.apiBase, geo, tt.wantBase, tt.geo)
			}
		})
	}
}

// An absurd expires_in must not overflow into an expiry in the past (which would renew
// the token on every call): it is capped.
func TestBuildTokenCapsHugeExpiresIn(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	for _, raw := range []string{`"99999999999999"`, `9223372036854775807`} {
		tok, _, err := buildToken(tokenAnswer{AccessToken: "a", ExpiresIn: json.RawMessage(raw)}, now, false)
		if err != nil {
			t.Fatalf("expires_in %s: %v", raw, err)
		}
		if !tok.expiry.After(now.Add(time.Hour)) || tok.expiry.After(now.Add(maxTokenLifetime)) {
			t.Errorf("expires_in %s: expiry %v, want within (now+1h, now+%v]", raw, tok.expiry, maxTokenLifetime)
		}
	}
}
