package concur

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/concursim"
	"github.com/google/go-cmp/cmp"
)

// A static token is never refreshed: a 403 is final and the token endpoint is never called.
func TestStaticToken(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(o *concursim.Options) { o.AuthScheme = "OAuth" })
	f.AddAccessToken("static-1")
	c, _ := newClient(t, f, func(c *Config) {
		c.AccessToken, c.AuthScheme, c.TokenURL, c.RefreshToken = "static-1", "OAuth", "", ""
	})
	if _, err := listOf(t.Context(), c, batch.ListAll); err != nil {
		t.Fatal(err)
	}
	f.revokeAccess()
	e := wantCode(t, call(t.Context(), c, f, opClose), batch.CodeUpstreamAuthFailed)
	if e.Upstream == nil || e.Upstream.Status != http.StatusForbidden {
		t.Errorf("Upstream = %+v", e.Upstream)
	}
	if n := f.tokenCalls(); n != 0 {
		t.Errorf("token calls = %d, want 0", n)
	}
	if n := f.apiCalls(); n != 2 {
		t.Errorf("API calls = %d, want 2 (no retry)", n)
	}
}

// The Authorization header carries the configured scheme, canonically spelt: Bearer, or
// OAuth for a legacy token. The fake accepts only the scheme the case expects.
func TestAuthScheme(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		scheme string // Config.AuthScheme
		static bool   // a static AccessToken rather than the refresh grant
		want   string // the scheme on the wire
	}{
		{"Bearer", "Bearer", false, "Bearer"},
		{"OAuth", "OAuth", false, "OAuth"},
		{"static Bearer", "Bearer", true, "Bearer"},
		{"static OAuth", "OAuth", true, "OAuth"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, func(o *concursim.Options) { o.AuthScheme = tt.want })
			var (
				mu  sync.Mutex
				got []string
			)
			f.AddAccessToken("static-1")
			f.observe(func(r *http.Request) {
				mu.Lock()
				got = append(got, r.Header.Get("Authorization"))
				mu.Unlock()
			})
			c, _ := newClient(t, f, func(c *Config) {
				c.AuthScheme = tt.scheme
				if tt.static {
					c.AccessToken, c.TokenURL, c.RefreshToken = "static-1", "", ""
				}
			})
			for _, op := range []operation{opList, opClose, opFile} {
				if err := call(t.Context(), c, f, op); err != nil {
					t.Fatalf("%s: %v", op, err)
				}
			}
			tok := "at-1"
			if tt.static {
				tok = "static-1"
			}
			want := tt.want + " " + tok
			mu.Lock()
			defer mu.Unlock()
			assertEqual(t, []string{want, want, want}, got)
		})
	}
}

// Concur rotates the refresh token on every refresh and refuses a reused one: across several
// expiries the client always redeems the newest, and stores each before using its token.
func TestRefreshTokenRotation(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	creds := newRecordingStore()
	f.observe(func(r *http.Request) {
		// The token presented is already stored.
		c := creds.committed()
		if len(c) == 0 || "Bearer "+c[len(c)-1].AccessToken != r.Header.Get("Authorization") {
			t.Errorf("an access token was used before it was stored")
		}
	})
	c, clock := newClient(t, f, func(c *Config) { c.Credentials = creds })
	for i := range 4 {
		if _, err := listOf(t.Context(), c, batch.ListAll); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		clock.advance(time.Hour) // the token (3600s) has expired
	}
	f.revokeAccess() // and once more through a 403
	clock.advance(-time.Hour)
	if _, err := listOf(t.Context(), c, batch.ListAll); err != nil {
		t.Fatal(err)
	}
	assertEqual(t, []string{"rt-0", "rt-1", "rt-2", "rt-3", "rt-4"}, f.redeemedTokens())
	assertEqual(t, []string{"rt-1", "rt-2", "rt-3", "rt-4", "rt-5"}, refreshTokens(creds.committed()))
}

// A refresh token Concur no longer accepts needs a person.
func TestInvalidGrant(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	c, _ := newClient(t, f, func(c *Config) { c.RefreshToken = "rt-redeemed-elsewhere" })
	e := wantCode(t, call(t.Context(), c, f, opList), batch.CodeUpstreamAuthFailed)
	if !strings.Contains(e.Detail, "re-run `gateway authorize`") || e.Upstream == nil || e.Upstream.Status != 400 {
		t.Errorf("error = %+v", e)
	}
	if f.apiCalls() != 0 {
		t.Errorf("API calls = %d, want 0", f.apiCalls())
	}
	// The dead refresh token is not offered again.
	wantCode(t, call(t.Context(), c, f, opClose), batch.CodeUpstreamAuthFailed)
	if n := f.tokenCalls(); n != 1 {
		t.Errorf("token calls = %d, want 1", n)
	}
}

func TestConcurrentCallersShareOneRefresh(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		expire func(f *fakeConcur, clock *testClock)
	}{
		{"expired on our clock", func(_ *fakeConcur, clock *testClock) { clock.advance(2 * time.Hour) }},
		{"refused with 403", func(f *fakeConcur, _ *testClock) { f.revokeAccess() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.slowTokens(50 * time.Millisecond)
			c, clock := newClient(t, f, nil)
			if _, err := listOf(t.Context(), c, batch.ListAll); err != nil {
				t.Fatal(err)
			}
			tt.expire(f, clock)
			listAtOnce(t, 50, c)
			if got := f.tokenCalls(); got != 2 {
				t.Errorf("token calls = %d, want 2 (initial + exactly one renewal)", got)
			}
		})
	}
}

func TestExpiresInForms(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		number bool // expires_in as a JSON number: 3600, not "3600"
	}{
		{"string", false},
		{"number", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, func(o *concursim.Options) { o.ExpiresInNumber = tt.number })
			c, clock := newClient(t, f, nil)
			list := func() {
				t.Helper()
				if _, err := listOf(t.Context(), c, batch.ListAll); err != nil {
					t.Fatal(err)
				}
			}
			list()
			clock.advance(3500 * time.Second) // 100s left: still used
			list()
			if got := f.tokenCalls(); got != 1 {
				t.Fatalf("token calls = %d, want 1", got)
			}
			clock.advance(50 * time.Second) // 50s left: renewed first
			list()
			if got := f.tokenCalls(); got != 2 {
				t.Errorf("token calls = %d, want 2", got)
			}
		})
	}
}

// A token that lives a minute or less is not renewed on every call: it is renewed when less
// than half its lifetime remains (60s before expiry for longer-lived tokens).
func TestShortLivedToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		expiresIn  any
		keep, renw time.Duration // clock moves: still used after keep, renewed after keep+renw
	}{
		{"30", 14 * time.Second, 2 * time.Second},  // renewed under 15s left
		{60, 29 * time.Second, 2 * time.Second},    // renewed under 30s left
		{"120", 59 * time.Second, 2 * time.Second}, // renewed under 60s left
		{1, 0, time.Second},                        // a one-second token is still used at once
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.expiresIn), func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.EditTokenAnswers(func(a map[string]any) { a["expires_in"] = tt.expiresIn })
			c, clock := newClient(t, f, nil)
			list := func(wantTokenCalls int64) {
				t.Helper()
				if _, err := listOf(t.Context(), c, batch.ListAll); err != nil {
					t.Fatal(err)
				}
				if got := f.tokenCalls(); got != wantTokenCalls {
					t.Fatalf("token calls = %d, want %d", got, wantTokenCalls)
				}
			}
			list(1)
			list(1) // right away: the new token is used, not renewed
			clock.advance(tt.keep)
			list(1)
			clock.advance(tt.renw)
			list(2)
		})
	}
}

// A caller that gives up while a refresh is running gets its own ctx error; the refresh
// completes for the others.
func TestWaitForRefreshRespectsCallerContext(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.slowTokens(300 * time.Millisecond)
	c, _ := newClient(t, f, nil)
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := listOf(ctx, c, batch.ListAll)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if _, err := listOf(t.Context(), c, batch.ListAll); err != nil {
		t.Fatal(err)
	}
	if got := f.tokenCalls(); got != 1 {
		t.Errorf("token calls = %d, want 1 (the abandoned refresh was kept)", got)
	}
}

func TestTokenEndpointFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*Config)
		fault  *concursim.Fault     // on the token endpoint
		answer func(map[string]any) // edits the token answer
		code   batch.Code
	}{
		{name: "invalid client", mutate: func(c *Config) { c.ClientSecret = "wrong-client-secret" },
			code: batch.CodeUpstreamAuthFailed},
		{name: "503", fault: &concursim.Fault{Op: "token", Mode: "empty", Status: 503},
			code: batch.CodeUpstreamUnavailable},
		{name: "garbage", fault: &concursim.Fault{Op: "token", Mode: "html", Status: 200},
			code: batch.CodeUpstreamBadResponse},
		{name: "no access token", answer: func(a map[string]any) { delete(a, "access_token") },
			code: batch.CodeUpstreamBadResponse},
		{name: "bad expires_in", answer: func(a map[string]any) { a["expires_in"] = "soon" },
			code: batch.CodeUpstreamBadResponse},
		{name: "geolocation with userinfo", answer: func(a map[string]any) { a["geolocation"] = "https://u:p@evil.example" },
			code: batch.CodeUpstreamBadResponse},
		{name: "oversized", answer: func(a map[string]any) { a["pad"] = strings.Repeat("x", maxTokenBody) },
			code: batch.CodeUpstreamBadResponse},
		{name: "slow", fault: &concursim.Fault{Op: "token", Mode: "slow", Delay: concursim.Duration(time.Second)},
			code: batch.CodeUpstreamTimeout},
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
			if tt.fault != nil {
				f.SetFault(*tt.fault)
			}
			f.EditTokenAnswers(tt.answer)
			c, _ := newClient(t, f, func(c *Config) {
				c.Timeout = 200 * time.Millisecond
				if tt.mutate != nil {
					tt.mutate(c)
				}
			})
			wantCode(t, call(t.Context(), c, f, opList), tt.code)
			if f.apiCalls() != 0 {
				t.Errorf("API calls = %d, want 0", f.apiCalls())
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
			f.failTokens("status", tt.status, tt.retryAfter)
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
	geo := newFake(t)                               // the data centre
	auth := newFake(t, func(o *concursim.Options) { // the token endpoint and BaseURL
		o.Geolocation, o.NoGeolocation = geo.srv.URL+"/ignored/path", false
	})
	c, _ := newClient(t, auth, nil)
	geo.AddAccessToken("at-1")
	got, err := listOf(t.Context(), c, batch.ListAll)
	if err != nil {
		t.Fatal(err)
	}
	assertEqual(t, wantNamespacedList(geo.srv.URL), got)
	if _, err := c.CloseBatch(t.Context(), got[0].URL); err != nil {
		t.Fatal(err)
	}
	if auth.apiCalls() != 0 || geo.apiCalls() != 2 {
		t.Errorf("API calls: base %d, geolocation %d; want 0 and 2", auth.apiCalls(), geo.apiCalls())
	}
}

// A geolocation over cleartext is refused when Config.BaseURL is https: the bearer token
// never goes to it. The rotated refresh token is still stored (with no access token and no
// geolocation) and redeemed next.
func TestGeolocationCleartextRefused(t *testing.T) {
	t.Parallel()
	geo := newFake(t)                                                                                      // an http "data centre"
	auth := newFake(t, func(o *concursim.Options) { o.Geolocation, o.NoGeolocation = geo.srv.URL, false }) // the token endpoint
	geo.AddAccessToken("at-1")
	geo.AddAccessToken("at-2")
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
	if n := geo.apiCalls(); n != 0 {
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
		// With an https base, only Concur's hosts or the base itself: a geolocation is stored
		// beside the encrypted tokens, and renewals go to it with the refresh token and the
		// client secret.
		{"https://us2.api.concursolutions.com", "https://attacker.example.net/oauth2/v0/token", ""},
		{"https://us2.api.concursolutions.com", "https://concursolutions.com.example.net", ""},
		{"https://us2.api.concursolutions.com", "https://eu2.api.concursolutions.com/oauth2/v0/token", "https://eu2.api.concursolutions.com"},
		{"https://concur-egress.internal", "https://concur-egress.internal/oauth2/v0/token", "https://concur-egress.internal"},
	}
	for _, tt := range tests {
		t.Run(tt.base+" "+tt.geo, func(t *testing.T) {
			t.Parallel()
			tok, geo, err := buildToken(tokenAnswer{AccessToken: "at-x", Geolocation: tt.geo}, time.Now(), tt.base)
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
		tok, _, err := buildToken(tokenAnswer{AccessToken: "a", ExpiresIn: json.RawMessage(raw)}, now, "https://us2.api.concursolutions.com")
		if err != nil {
			t.Fatalf("expires_in %s: %v", raw, err)
		}
		if !tok.expiry.After(now.Add(time.Hour)) || tok.expiry.After(now.Add(maxTokenLifetime)) {
			t.Errorf("expires_in %s: expiry %v, want within (now+1h, now+%v]", raw, tok.expiry, maxTokenLifetime)
		}
	}
}

// A refresh whose caller left runs on, detached; Drain waits for it to commit the rotated
// refresh token, so a shutdown does not close the store under it.
func TestDrainWaitsForADetachedRefresh(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.slowTokens(300 * time.Millisecond)
	c, _ := newClient(t, f, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := listOf(ctx, c, batch.ListOpen); err == nil {
		t.Fatal("the caller left before the token came: want an error")
	}
	if err := c.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if redeemed := len(f.redeemedTokens()); redeemed != 1 {
		t.Fatalf("redeemed %d refresh tokens, want 1", redeemed)
	}
	creds, err := c.tokens.store.UpdateCredentials(context.Background(),
		func(Credentials, bool) (*Credentials, error) { return nil, nil }) // a read
	if err != nil || creds.RefreshToken == "" || creds.RefreshToken == "rt-0" {
		t.Errorf("after Drain the store holds %q (%v), want the rotated refresh token", creds.RefreshToken, err)
	}
	// Nothing in flight: Drain returns at once, even with an ended context.
	done, stop := context.WithCancel(context.Background())
	stop()
	if err := c.Drain(done); err != nil {
		t.Errorf("Drain with nothing in flight: %v", err)
	}
}

// Renewals go to a geolocation's token endpoint only when the geolocation may be used
// (geoBase): a stored geolocation naming another host cannot draw the refresh token and
// the client secret there.
func TestTokenEndpointOfAGeolocation(t *testing.T) {
	t.Parallel()
	const glz = "https://glz.api.concursolutions.com/oauth2/v0/token"
	s := &tokenSource{base: "https://us2.api.concursolutions.com", tokenURL: glz}
	for geo, want := range map[string]string{
		"":                                    glz,
		"https://eu2.api.concursolutions.com": "https://eu2.api.concursolutions.com/oauth2/v0/token",
		"https://us2.api.concursolutions.com/oauth2/v0/token": "https://us2.api.concursolutions.com/oauth2/v0/token",
		"https://attacker.example.net/oauth2/v0/token":        glz,
		"http://eu2.api.concursolutions.com":                  glz,
	} {
		if got := s.tokenEndpoint(geo); got != want {
			t.Errorf("tokenEndpoint(%q) = %q, want %q", geo, got, want)
		}
	}
}
