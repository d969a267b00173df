package concur

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/store"
)

// sharing returns a mutate for newClient that makes the client use creds.
func sharing(creds CredentialStore) func(*Config) {
	return func(c *Config) { c.Credentials = creds }
}

func list(t *testing.T, c *Client) {
	t.Helper()
	if _, err := listOf(t.Context(), c, batch.ListAll); err != nil {
		t.Fatal(err)
	}
}

func wantTokenCalls(t *testing.T, f *fakeConcur, want int64) {
	t.Helper()
	if got := f.tokenCalls.Load(); got != want {
		t.Errorf("token calls = %d, want %d", got, want)
	}
}

// Two replicas sharing one store, 25 concurrent calls each: one of them redeems the refresh
// token, the other adopts its access token; Concur never sees a refresh token twice. After
// the token expires, the same again.
func TestReplicasShareOneRefresh(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.set(func(f *fakeConcur) { f.tokenDelay = 50 * time.Millisecond })
	creds := newMemCredentials()
	a, clockA := newClient(t, f, sharing(creds))
	b, clockB := newClient(t, f, sharing(creds))
	burst := func() {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, 50)
		for range 25 {
			for _, c := range []*Client{a, b} {
				wg.Go(func() {
					_, err := listOf(t.Context(), c, batch.ListAll)
					errs <- err
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
	}
	burst()
	wantTokenCalls(t, f, 1)
	clockA.advance(2 * time.Hour)
	clockB.advance(2 * time.Hour)
	burst()
	wantTokenCalls(t, f, 2)
	assertEqual(t, []string{"rt-0", "rt-1"}, f.redeemedTokens())
}

// Concur refuses (401 or 403) a token one replica adopted from the store: that replica does
// not adopt the refused token again but renews it; the other replica, refused in turn,
// adopts the renewed one.
func TestRenewAdoptedToken(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.set(func(f *fakeConcur) { f.refuseStatus = status })
			creds := newMemCredentials()
			a, _ := newClient(t, f, sharing(creds))
			b, _ := newClient(t, f, sharing(creds))
			list(t, a)
			list(t, b) // adopts at-1
			wantTokenCalls(t, f, 1)
			f.revokeAccess()
			list(t, b) // refused at-1, still fresh in the store: renewed
			wantTokenCalls(t, f, 2)
			list(t, a) // refused at-1: adopts at-2
			wantTokenCalls(t, f, 2)
			if got, _ := creds.load(t); got.AccessToken != "at-2" || got.RefreshToken != "rt-2" {
				t.Errorf("stored %q %q, want at-2 rt-2", got.AccessToken, got.RefreshToken)
			}
		})
	}
}

// A restarted process (a new Client on the same store, configured with the refresh token it
// was first given, long since spent) adopts the stored access token while it is fresh, and
// then redeems the stored rotated refresh token, not the configured one.
func TestRestartUsesStoredGrant(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	creds := newMemCredentials()
	first, _ := newClient(t, f, sharing(creds))
	list(t, first)
	restarted, clock := newClient(t, f, sharing(creds))
	list(t, restarted)
	wantTokenCalls(t, f, 1)
	clock.advance(2 * time.Hour)
	list(t, restarted)
	assertEqual(t, []string{"rt-0", "rt-1"}, f.redeemedTokens())
}

// The stored refresh token is redeemed only when its chain started from the configured one:
// a person who re-authorised the gateway configures a new token, and it wins.
func TestConfiguredRefreshTokenVersusStored(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		configured string
		stored     store.Credentials
		want       string // the refresh token redeemed
	}{
		{"stored chain of the configured token", "rt-given-long-ago",
			store.Credentials{RefreshToken: "rt-0", SeedHash: seedHash("rt-given-long-ago")}, "rt-0"},
		{"configured token changed", "rt-0",
			store.Credentials{RefreshToken: "rt-old-chain", SeedHash: seedHash("rt-old-seed")}, "rt-0"},
		{"no seed hash stored", "rt-0",
			store.Credentials{RefreshToken: "rt-old-chain"}, "rt-0"},
		{"no refresh token stored", "rt-0",
			store.Credentials{SeedHash: seedHash("rt-0")}, "rt-0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			creds := seededCredentials(tt.stored)
			c, _ := newClient(t, f, func(c *Config) { c.RefreshToken, c.Credentials = tt.configured, creds })
			list(t, c)
			assertEqual(t, []string{tt.want}, f.redeemedTokens())
			got, _ := creds.load(t)
			if got.RefreshToken != "rt-1" || got.SeedHash != seedHash(tt.configured) || got.AccessToken != "at-1" {
				t.Errorf("stored %q %q %q, want rt-1, the configured token's hash, at-1",
					got.RefreshToken, got.SeedHash, got.AccessToken)
			}
		})
	}
}

// Concur answers 200 with a rotated refresh token but the rest is unusable: the refresh
// fails, yet the new refresh token is stored (the old one is spent) and redeemed next.
func TestRotatedRefreshTokenStoredFromUnusableAnswer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mangle func(map[string]any)
	}{
		{"no access_token", func(a map[string]any) { delete(a, "access_token") }},
		{"bad geolocation", func(a map[string]any) { a["geolocation"] = "https://u:p@evil.example" }},
		{"bad expires_in", func(a map[string]any) { a["expires_in"] = "soon" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.set(func(f *fakeConcur) { f.mangle = tt.mangle })
			creds := newMemCredentials()
			c, _ := newClient(t, f, sharing(creds))
			wantCode(t, call(t.Context(), c, f, opList), batch.CodeUpstreamBadResponse)
			got, _ := creds.load(t)
			if got.RefreshToken != "rt-1" || got.AccessToken != "" {
				t.Errorf("stored %q %q, want rt-1 and no access token", got.RefreshToken, got.AccessToken)
			}
			f.set(func(f *fakeConcur) { f.mangle = nil })
			list(t, c)
			assertEqual(t, []string{"rt-0", "rt-1"}, f.redeemedTokens())
		})
	}
}

// The store fails to commit what Concur issued: the refresh fails (internal) without any
// token value in the error. The grant is kept in memory and stored at the next refresh,
// without redeeming anything, so the chain of refresh tokens is not broken.
func TestStoreFailsAfterRedemption(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	creds := newRecordingStore()
	creds.fail(nil, errors.New("disk full"))
	c, clock := newClient(t, f, sharing(creds))
	err := call(t.Context(), c, f, opList)
	e := wantCode(t, err, batch.CodeInternal)
	if !strings.Contains(e.Detail, "could not store the renewed Concur refresh token") {
		t.Errorf("Detail = %q", e.Detail)
	}
	for _, secret := range []string{"rt-0", "rt-1", "at-1", "client-secret"} {
		if msg := fmt.Sprintf("%v %+v", err, e); strings.Contains(msg, secret) {
			t.Errorf("the error shows %q: %s", secret, msg)
		}
	}
	if f.apiCalls.Load() != 0 {
		t.Errorf("API calls = %d, want 0: an unstored token was used", f.apiCalls.Load())
	}

	creds.fail(nil, nil)
	list(t, c)
	wantTokenCalls(t, f, 1)
	assertEqual(t, []string{"rt-1"}, refreshTokens(creds.committed()))
	clock.advance(2 * time.Hour)
	list(t, c)
	assertEqual(t, []string{"rt-0", "rt-1"}, f.redeemedTokens())
}

// The unsaved grant is dropped once the store was written since it was issued (a person
// re-authorised the gateway, or the failed commit went through after all).
func TestUnsavedGrantYieldsToNewerStore(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	creds := newRecordingStore()
	creds.fail(nil, errors.New("disk full"))
	c, _ := newClient(t, f, sharing(creds))
	wantCode(t, call(t.Context(), c, f, opList), batch.CodeInternal)
	creds.fail(nil, nil)
	now := time.Now()
	if _, err := creds.mem.UpdateCredentials(t.Context(), func(store.Credentials, bool) (*store.Credentials, error) {
		return &store.Credentials{RefreshToken: "rt-x", AccessToken: "at-x", AccessExpiry: now.Add(time.Hour),
			AccessLifetime: time.Hour, SeedHash: seedHash("rt-0")}, nil
	}); err != nil {
		t.Fatal(err)
	}
	tok, err := c.tokens.get(t.Context())
	if err != nil || tok.access != "at-x" {
		t.Fatalf("token %v, %v; want at-x", tok, err)
	}
	if got, _ := creds.mem.load(t); got.RefreshToken != "rt-x" {
		t.Errorf("stored %q, want rt-x", got.RefreshToken)
	}
}

// refresh_expires_in (epoch seconds, a number or a string) is stored as RefreshExpiry;
// anything else is ignored.
func TestRefreshExpiryStored(t *testing.T) {
	t.Parallel()
	want := time.Unix(1893456000, 0)
	tests := []struct {
		name  string
		value any // nil: not sent
		want  time.Time
	}{
		{"number", 1893456000, want},
		{"string", "1893456000", want},
		{"fraction", " 1893456000.75 ", want},
		{"absent", nil, time.Time{}},
		{"garbage", "soon", time.Time{}},
		{"a duration, not an epoch", 15552000, time.Time{}},
		{"negative", -1, time.Time{}},
		{"object", map[string]any{"at": 1}, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.set(func(f *fakeConcur) { f.refreshExpiry = tt.value })
			creds := newMemCredentials()
			c, _ := newClient(t, f, sharing(creds))
			list(t, c)
			if got, _ := creds.load(t); !got.RefreshExpiry.Equal(tt.want) {
				t.Errorf("RefreshExpiry = %v, want %v", got.RefreshExpiry, tt.want)
			}
		})
	}
}
