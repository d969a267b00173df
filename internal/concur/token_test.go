package concur

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// Concur revoked the token server-side: one 403, one renewal, one retry that succeeds.
func TestRenewOn403(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	c, _ := newClient(t, f, nil)
	if _, err := c.ListBatches(t.Context(), batch.ListAll); err != nil {
		t.Fatal(err)
	}
	f.revokeAccess()
	if _, err := c.CloseBatch(t.Context(), batchURL(f.srv.URL)); err != nil {
		t.Fatal(err)
	}
	if got := f.tokenCalls.Load(); got != 2 {
		t.Errorf("token calls = %d, want 2", got)
	}
	if got := f.apiCalls.Load(); got != 3 {
		t.Errorf("API calls = %d, want 3 (list, refused close, retried close)", got)
	}
}

// A static token is never refreshed: a 403 is final and the token endpoint is never called.
func TestStaticToken(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.set(func(f *fakeConcur) { f.access["static-1"] = true })
	c, _ := newClient(t, f, func(c *Config) {
		c.AccessToken, c.AuthScheme, c.TokenURL, c.RefreshToken = "static-1", "OAuth", "", ""
	})
	if _, err := c.ListBatches(t.Context(), batch.ListAll); err != nil {
		t.Fatal(err)
	}
	f.revokeAccess()
	e := wantCode(t, call(t.Context(), c, f, opClose), batch.CodeUpstreamAuthFailed)
	if e.Upstream == nil || e.Upstream.Status != http.StatusForbidden {
		t.Errorf("Upstream = %+v", e.Upstream)
	}
	if n := f.tokenCalls.Load(); n != 0 {
		t.Errorf("token calls = %d, want 0", n)
	}
	if n := f.apiCalls.Load(); n != 2 {
		t.Errorf("API calls = %d, want 2 (no retry)", n)
	}
}

// Concur rotates the refresh token on every refresh and refuses a reused one: across several
// expiries the client always redeems the newest, and hands each to OnRefresh before use.
func TestRefreshTokenRotation(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	var (
		mu        sync.Mutex
		persisted []string
	)
	c, clock := newClient(t, f, func(c *Config) {
		c.OnRefresh = func(_ context.Context, rt, geo string) error {
			mu.Lock()
			defer mu.Unlock()
			persisted = append(persisted, rt)
			return nil
		}
	})
	for i := range 4 {
		if _, err := c.ListBatches(t.Context(), batch.ListAll); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		clock.advance(time.Hour) // the token (3600s) has expired
	}
	f.revokeAccess() // and once more through a 403
	clock.advance(-time.Hour)
	if _, err := c.ListBatches(t.Context(), batch.ListAll); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	redeemed := append([]string(nil), f.redeemed...)
	f.mu.Unlock()
	assertEqual(t, []string{"rt-0", "rt-1", "rt-2", "rt-3", "rt-4"}, redeemed)
	mu.Lock()
	defer mu.Unlock()
	assertEqual(t, []string{"rt-1", "rt-2", "rt-3", "rt-4", "rt-5"}, persisted)
}

// A refresh token Concur no longer accepts needs a person.
func TestInvalidGrant(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	c, _ := newClient(t, f, func(c *Config) { c.RefreshToken = "rt-redeemed-elsewhere" })
	e := wantCode(t, call(t.Context(), c, f, opList), batch.CodeUpstreamAuthFailed)
	if !strings.Contains(e.Detail, "re-authorise") || e.Upstream == nil || e.Upstream.Status != 400 {
		t.Errorf("error = %+v", e)
	}
	if f.apiCalls.Load() != 0 {
		t.Errorf("API calls = %d, want 0", f.apiCalls.Load())
	}
	// The dead refresh token is not offered again.
	wantCode(t, call(t.Context(), c, f, opClose), batch.CodeUpstreamAuthFailed)
	if n := f.tokenCalls.Load(); n != 1 {
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
			f.set(func(f *fakeConcur) { f.tokenDelay = 50 * time.Millisecond })
			c, clock := newClient(t, f, nil)
			if _, err := c.ListBatches(t.Context(), batch.ListAll); err != nil {
				t.Fatal(err)
			}
			tt.expire(f, clock)
			var wg sync.WaitGroup
			errs := make(chan error, 50)
			for range 50 {
				wg.Go(func() {
					_, err := c.ListBatches(t.Context(), batch.ListAll)
					errs <- err
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
			if got := f.tokenCalls.Load(); got != 2 {
				t.Errorf("token calls = %d, want 2 (initial + exactly one renewal)", got)
			}
		})
	}
}

func TestExpiresInForms(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		expiresIn any
	}{
		{"string", "3600"},
		{"number", 3600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.set(func(f *fakeConcur) { f.expiresIn = tt.expiresIn })
			c, clock := newClient(t, f, nil)
			list := func() {
				t.Helper()
				if _, err := c.ListBatches(t.Context(), batch.ListAll); err != nil {
					t.Fatal(err)
				}
			}
			list()
			clock.advance(3500 * time.Second) // 100s left: still used
			list()
			if got := f.tokenCalls.Load(); got != 1 {
				t.Fatalf("token calls = %d, want 1", got)
			}
			clock.advance(50 * time.Second) // 50s left: renewed first
			list()
			if got := f.tokenCalls.Load(); got != 2 {
				t.Errorf("token calls = %d, want 2", got)
			}
		})
	}
}

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
		{name: "persisting fails", mutate: func(c *Config) {
			c.OnRefresh = func(context.Context, string, string) error { return errors.New("disk full") }
		}, code: batch.CodeInternal},
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

// A caller that gives up while a refresh is running gets its own ctx error; the refresh
// completes for the others.
func TestWaitForRefreshRespectsCallerContext(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.set(func(f *fakeConcur) { f.tokenDelay = 300 * time.Millisecond })
	c, _ := newClient(t, f, nil)
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := c.ListBatches(ctx, batch.ListAll)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if _, err := c.ListBatches(t.Context(), batch.ListAll); err != nil {
		t.Fatal(err)
	}
	if got := f.tokenCalls.Load(); got != 1 {
		t.Errorf("token calls = %d, want 1 (the abandoned refresh was kept)", got)
	}
}

// The token's geolocation is the API base, and its host is trusted for Batch-URLs.
func TestGeolocation(t *testing.T) {
	t.Parallel()
	auth, geo := newFake(t), newFake(t) // auth: token endpoint and BaseURL; geo: the data centre
	auth.set(func(f *fakeConcur) { f.geolocation = geo.srv.URL + "/ignored/path" })
	c, _ := newClient(t, auth, nil)
	geo.set(func(g *fakeConcur) { g.access["at-1"] = true })
	got, err := c.ListBatches(t.Context(), batch.ListAll)
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
