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
	if _, err := listOf(t.Context(), c, batch.ListAll); err != nil {
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
	f.set(func(f *fakeConcur) { f.access["static-1"], f.scheme = true, "OAuth" })
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
	if n := f.tokenCalls.Load(); n != 0 {
		t.Errorf("token calls = %d, want 0", n)
	}
	if n := f.apiCalls.Load(); n != 2 {
		t.Errorf("API calls = %d, want 2 (no retry)", n)
	}
}

// The Authorization header carries the configured scheme, canonically spelt: Bearer by
// default, OAuth for a legacy token. The fake accepts only the scheme the case expects.
func TestAuthScheme(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		scheme string // Config.AuthScheme
		static bool   // a static AccessToken rather than the refresh grant
		want   string // the scheme on the wire
	}{
		{"default", "", false, "Bearer"},
		{"Bearer", "Bearer", false, "Bearer"},
		{"OAuth", "OAuth", false, "OAuth"},
		{"static default", "", true, "Bearer"},
		{"static OAuth", "OAuth", true, "OAuth"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			var (
				mu  sync.Mutex
				got []string
			)
			f.set(func(f *fakeConcur) {
				f.scheme = tt.want
				f.access["static-1"] = true
				f.api = func(w http.ResponseWriter, r *http.Request) {
					mu.Lock()
					got = append(got, r.Header.Get("Authorization"))
					mu.Unlock()
					f.fixtures(w, r)
				}
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
	f.set(func(f *fakeConcur) {
		f.api = func(w http.ResponseWriter, r *http.Request) {
			// The token presented is already stored.
			c := creds.committed()
			if len(c) == 0 || "Bearer "+c[len(c)-1].AccessToken != r.Header.Get("Authorization") {
				t.Errorf("an access token was used before it was stored")
			}
			f.fixtures(w, r)
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
			if _, err := listOf(t.Context(), c, batch.ListAll); err != nil {
				t.Fatal(err)
			}
			tt.expire(f, clock)
			var wg sync.WaitGroup
			errs := make(chan error, 50)
			for range 50 {
				wg.Go(func() {
					_, err := listOf(t.Context(), c, batch.ListAll)
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
				if _, err := listOf(t.Context(), c, batch.ListAll); err != nil {
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
			f.set(func(f *fakeConcur) { f.expiresIn = tt.expiresIn })
			c, clock := newClient(t, f, nil)
			list := func(wantTokenCalls int64) {
				t.Helper()
				if _, err := listOf(t.Context(), c, batch.ListAll); err != nil {
					t.Fatal(err)
				}
				if got := f.tokenCalls.Load(); got != wantTokenCalls {
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
	f.set(func(f *fakeConcur) { f.tokenDelay = 300 * time.Millisecond })
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
	if got := f.tokenCalls.Load(); got != 1 {
		t.Errorf("token calls = %d, want 1 (the abandoned refresh was kept)", got)
	}
}
