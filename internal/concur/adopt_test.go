package concur

import (
	"context"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/store"
)

// A stored access token is adopted only when it is fresh by the same rule as a token of
// this process, and when its geolocation passes the same checks as Concur's answer would:
// otherwise the client redeems the stored refresh token.
func TestAdoptStoredToken(t *testing.T) {
	t.Parallel()
	const httpsBase = "https://us.api.concursolutions.invalid" // never contacted
	tests := []struct {
		name    string
		base    string        // Config.BaseURL; "" for the fake's (http) URL
		geo     string        // stored Geolocation
		left    time.Duration // until the stored AccessExpiry; 0: unknown expiry
		adopted bool
		apiBase string // of the adopted token
	}{
		{name: "fresh", left: time.Hour, adopted: true},
		{name: "unknown expiry", adopted: true},
		{name: "about to expire", left: 30 * time.Second},
		{name: "https geolocation", base: httpsBase, geo: "https://emea.api.concursolutions.com/x",
			left: time.Hour, adopted: true, apiBase: "https://emea.api.concursolutions.com"},
		{name: "http geolocation, http base", geo: "http://127.0.0.1:9",
			left: time.Hour, adopted: true, apiBase: "http://127.0.0.1:9"},
		{name: "http geolocation, https base", base: httpsBase, geo: "http://emea.api.concursolutions.com", left: time.Hour},
		{name: "geolocation with user info", geo: "https://u:p@evil.example", left: time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			stored := store.Credentials{RefreshToken: "rt-0", SeedHash: seedHash("rt-0"),
				AccessToken: "at-stored", Geolocation: tt.geo}
			if tt.left != 0 {
				stored.AccessExpiry, stored.AccessLifetime = time.Now().Add(tt.left), time.Hour
			}
			c, _ := newClient(t, f, func(c *Config) {
				c.Credentials = seededCredentials(stored)
				if tt.base != "" {
					c.BaseURL = tt.base
				}
			})
			tok, err := c.tokens.get(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if !tt.adopted {
				if tok.access != "at-1" {
					t.Errorf("token %q, want at-1 (renewed)", tok.access)
				}
				wantTokenCalls(t, f, 1)
				return
			}
			if tok.access != "at-stored" || tok.apiBase != tt.apiBase {
				t.Errorf("token %q at %q, want at-stored at %q", tok.access, tok.apiBase, tt.apiBase)
			}
			wantTokenCalls(t, f, 0)
		})
	}
}

// Waiting for the credential store is bounded: a lock held for ever, or for so long that no
// token call could end before the refresh's deadline, fails the refresh (store_unavailable)
// without calling Concur.
func TestCredentialStoreLockWaitBounded(t *testing.T) {
	t.Parallel()
	const timeout = 100 * time.Millisecond
	tests := []struct {
		name string
		hold time.Duration // how long the lock is held
	}{
		{"held for ever", time.Hour},
		{"held past the token call's share", refreshBudget(timeout) - commitReserve(timeout)/2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			creds := newMemCredentials()
			held := make(chan struct{})
			ctx, cancel := context.WithTimeout(t.Context(), tt.hold)
			defer cancel()
			go creds.UpdateCredentials(t.Context(), func(store.Credentials, bool) (*store.Credentials, error) {
				close(held)
				<-ctx.Done()
				return nil, nil
			})
			<-held
			c, _ := newClient(t, f, func(c *Config) { c.Credentials, c.Timeout = creds, timeout })
			start := time.Now()
			wantCode(t, call(t.Context(), c, f, opList), batch.CodeStoreUnavailable)
			if d := time.Since(start); d > refreshBudget(timeout)+time.Second {
				t.Errorf("took %v", d)
			}
			wantTokenCalls(t, f, 0)
		})
	}
}

// When Concur does not rotate the refresh token and does not repeat its expiry, the stored
// expiry is kept.
func TestRefreshExpiryKeptWhenNotRotated(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.set(func(f *fakeConcur) { f.rotate, f.refreshExpiry = false, nil })
	expiry := time.Unix(1893456000, 0)
	creds := seededCredentials(store.Credentials{RefreshToken: "rt-0", RefreshExpiry: expiry, SeedHash: seedHash("rt-0")})
	c, _ := newClient(t, f, sharing(creds))
	list(t, c)
	got, _ := creds.load(t)
	if got.RefreshToken != "rt-0" || !got.RefreshExpiry.Equal(expiry) || got.AccessToken != "at-1" {
		t.Errorf("stored %q %v %q, want rt-0 %v at-1", got.RefreshToken, got.RefreshExpiry, got.AccessToken, expiry)
	}
}
