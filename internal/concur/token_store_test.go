package concur

import (
	"context"
	"errors"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/concursim"
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
	if got := f.tokenCalls(); got != want {
		t.Errorf("token calls = %d, want %d", got, want)
	}
}

// Two replicas sharing one store, 25 concurrent calls each: one of them redeems the refresh
// token, the other adopts its access token; Concur never sees a refresh token twice. After
// the token expires, the same again.
func TestReplicasShareOneRefresh(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.slowTokens(50 * time.Millisecond)
	creds := newMemCredentials()
	a, clockA := newClient(t, f, sharing(creds))
	b, clockB := newClient(t, f, sharing(creds))
	listAtOnce(t, 25, a, b)
	wantTokenCalls(t, f, 1)
	clockA.advance(2 * time.Hour)
	clockB.advance(2 * time.Hour)
	listAtOnce(t, 25, a, b)
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
			f := newFake(t, func(o *concursim.Options) { o.RefusedStatus = status })
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
		stored     Credentials
		want       string // the refresh token redeemed
	}{
		{"stored chain of the configured token", "rt-given-long-ago",
			Credentials{RefreshToken: "rt-0", SeedHash: seedHash("rt-given-long-ago")}, "rt-0"},
		{"configured token changed", "rt-0",
			Credentials{RefreshToken: "rt-old-chain", SeedHash: seedHash("rt-old-seed")}, "rt-0"},
		{"no seed hash stored", "rt-0",
			Credentials{RefreshToken: "rt-old-chain"}, "rt-0"},
		{"no refresh token stored", "rt-0",
			Credentials{SeedHash: seedHash("rt-0")}, "rt-0"},
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
			f.EditTokenAnswers(tt.mangle)
			creds := newMemCredentials()
			c, _ := newClient(t, f, sharing(creds))
			wantCode(t, call(t.Context(), c, f, opList), batch.CodeUpstreamBadResponse)
			got, _ := creds.load(t)
			if got.RefreshToken != "rt-1" || got.AccessToken != "" {
				t.Errorf("stored %q %q, want rt-1 and no access token", got.RefreshToken, got.AccessToken)
			}
			f.EditTokenAnswers(nil)
			list(t, c)
			assertEqual(t, []string{"rt-0", "rt-1"}, f.redeemedTokens())
		})
	}
}

// commitFails is a client whose first list's refresh Concur redeems but the store fails to
// commit (until creds.fail(nil, nil)); err is that list's.
func commitFails(t *testing.T) (f *fakeConcur, creds *recordingStore, c *Client, clock *testClock, err error) {
	t.Helper()
	f = newFake(t)
	creds = newRecordingStore()
	creds.fail(nil, errors.New("disk full"))
	c, clock = newClient(t, f, sharing(creds))
	return f, creds, c, clock, call(t.Context(), c, f, opList)
}

// The store fails to commit what Concur issued: the refresh fails (internal) without any
// token value in the error. The grant is kept in memory and stored at the next refresh,
// without redeeming anything, so the chain of refresh tokens is not broken.
func TestStoreFailsAfterRedemption(t *testing.T) {
	t.Parallel()
	f, creds, c, clock, err := commitFails(t)
	e := wantCode(t, err, batch.CodeInternal)
	if !strings.Contains(e.Detail, "could not store the renewed Concur refresh token") {
		t.Errorf("Detail = %q", e.Detail)
	}
	for _, secret := range []string{"rt-0", "rt-1", "at-1", "client-secret"} {
		if msg := fmt.Sprintf("%v %+v", err, e); strings.Contains(msg, secret) {
			t.Errorf("the error shows %q: %s", secret, msg)
		}
	}
	if f.apiCalls() != 0 {
		t.Errorf("API calls = %d, want 0: an unstored token was used", f.apiCalls())
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
	_, creds, c, _, err := commitFails(t)
	wantCode(t, err, batch.CodeInternal)
	creds.fail(nil, nil)
	now := time.Now()
	if _, err := creds.mem.UpdateCredentials(t.Context(), func(Credentials, bool) (*Credentials, error) {
		return &Credentials{RefreshToken: "rt-x", AccessToken: "at-x", AccessExpiry: now.Add(time.Hour),
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
			f.EditTokenAnswers(func(a map[string]any) {
				if a["refresh_expires_in"] = tt.value; tt.value == nil {
					delete(a, "refresh_expires_in")
				}
			})
			creds := newMemCredentials()
			c, _ := newClient(t, f, sharing(creds))
			list(t, c)
			if got, _ := creds.load(t); !got.RefreshExpiry.Equal(tt.want) {
				t.Errorf("RefreshExpiry = %v, want %v", got.RefreshExpiry, tt.want)
			}
		})
	}
}

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
			stored := Credentials{RefreshToken: "rt-0", SeedHash: seedHash("rt-0"),
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
			// The hold is counted from when the refresh asks for the lock, not from before
			// the client exists: time spent setting up (long on a loaded machine) would
			// otherwise come off the hold, and a lock meant to outlast the token call's
			// share would be free in time for it.
			waiting := &lockWaiter{CredentialStore: creds, asked: make(chan struct{})}
			go creds.UpdateCredentials(t.Context(), func(Credentials, bool) (*Credentials, error) {
				close(held)
				select {
				case <-waiting.asked:
				case <-t.Context().Done():
					return nil, nil
				}
				select {
				case <-time.After(tt.hold):
				case <-t.Context().Done():
				}
				return nil, nil
			})
			<-held
			c, _ := newClient(t, f, func(c *Config) { c.Credentials, c.Timeout = waiting, timeout })
			start := time.Now()
			wantCode(t, call(t.Context(), c, f, opList), batch.CodeStoreUnavailable)
			if d := time.Since(start); d > refreshBudget(timeout)+time.Second {
				t.Errorf("took %v", d)
			}
			wantTokenCalls(t, f, 0)
		})
	}
}

// lockWaiter is a CredentialStore that closes asked when it is first asked for the lock.
type lockWaiter struct {
	CredentialStore
	once  sync.Once
	asked chan struct{}
}

func (l *lockWaiter) UpdateCredentials(ctx context.Context, fn func(Credentials, bool) (*Credentials, error)) (Credentials, error) {
	l.once.Do(func() { close(l.asked) })
	return l.CredentialStore.UpdateCredentials(ctx, fn)
}

// When Concur does not rotate the refresh token and does not repeat its expiry, the stored
// expiry is kept.
func TestRefreshExpiryKeptWhenNotRotated(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(o *concursim.Options) { o.NoRotate = true })
	f.EditTokenAnswers(func(a map[string]any) { delete(a, "refresh_expires_in") })
	expiry := time.Unix(1893456000, 0)
	creds := seededCredentials(Credentials{RefreshToken: "rt-0", RefreshExpiry: expiry, SeedHash: seedHash("rt-0")})
	c, _ := newClient(t, f, sharing(creds))
	list(t, c)
	got, _ := creds.load(t)
	if got.RefreshToken != "rt-0" || !got.RefreshExpiry.Equal(expiry) || got.AccessToken != "at-1" {
		t.Errorf("stored %q %v %q, want rt-0 %v at-1", got.RefreshToken, got.RefreshExpiry, got.AccessToken, expiry)
	}
}

var rotationSeed = flag.Uint64("rotation.seed", 0, "replay TestRotationFaults with this seed (0: random)")

var rotationRuns = flag.Int("rotation.runs", 4, "how many seeded runs of TestRotationFaults per store")

// lossyStore is a credential store that loses commits: with the odds it is given, a call
// fails before anything is written (the store is down), fails at the commit after fn ran
// (rolled back), or fails after fn's answer was committed (the connection was cut before
// the acknowledgement came).
type lossyStore struct {
	inner CredentialStore

	mu     sync.Mutex
	rnd    *mrand.Rand
	before float64 // odds of failing before
	commit float64 // odds of failing the commit (fn ran; its answer is rolled back)
	after  float64 // odds of committing, then failing
}

var errLostCommit = errors.New("lossy store: connection cut")

func (l *lossyStore) heal() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.before, l.commit, l.after = 0, 0, 0
}

func (l *lossyStore) roll() (before, commit, after bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.rnd.Float64()
	return p < l.before, p >= l.before && p < l.before+l.commit,
		p >= l.before+l.commit && p < l.before+l.commit+l.after
}

func (l *lossyStore) UpdateCredentials(ctx context.Context, fn func(Credentials, bool) (*Credentials, error)) (Credentials, error) {
	before, commit, after := l.roll()
	if before {
		return Credentials{}, errLostCommit
	}
	errRollback := errors.New("rolled back")
	c, err := l.inner.UpdateCredentials(ctx, func(cur Credentials, found bool) (*Credentials, error) {
		next, err := fn(cur, found)
		if err == nil && next != nil && commit {
			return nil, errRollback
		}
		return next, err
	})
	if errors.Is(err, errRollback) {
		return Credentials{}, errLostCommit
	}
	if err == nil && after {
		return Credentials{}, errLostCommit
	}
	return c, err
}

// RealStores opens the gateway's real credential stores for TestRotationFaults, by name
// (sqlite, postgres). realstore_test.go fills it: internal/store imports this package, so
// only an external test file may import the store.
var RealStores = map[string]func(t *testing.T) CredentialStore{}

// Two replicas share one store that loses commits, in a seeded random sequence of calls,
// token expiries and revocations. Whatever is lost: no refresh token is ever presented to
// Concur twice, the newest rotated refresh token ends in the store, and both replicas
// work again once the store does.
func TestRotationFaults(t *testing.T) {
	t.Parallel()
	backends := []struct {
		name string
		open func(t *testing.T) CredentialStore
	}{
		{"memory", func(*testing.T) CredentialStore { return newMemCredentials() }},
		{"sqlite", RealStores["sqlite"]},
		{"postgres", RealStores["postgres"]},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			for run := range *rotationRuns {
				seed := *rotationSeed
				if seed == 0 {
					seed = mrand.Uint64()
				}
				t.Run(fmt.Sprint(run), func(t *testing.T) {
					t.Parallel()
					if !rotationRun(t, b.open(t), seed) {
						t.Errorf("replay with: go test ./internal/concur -run 'TestRotationFaults/%s' -rotation.seed=%d -rotation.runs=1",
							b.name, seed)
					}
				})
			}
		})
	}
}

func rotationRun(t *testing.T, inner CredentialStore, seed uint64) bool {
	t.Helper()
	rnd := mrand.New(mrand.NewPCG(seed, 12))
	f := newFake(t)
	lossy := &lossyStore{inner: inner, rnd: mrand.New(mrand.NewPCG(seed, 13)), before: 0.1, commit: 0.15, after: 0.1}
	const timeout = 300 * time.Millisecond
	replicas := make([]*Client, 2)
	clocks := make([]*testClock, 2)
	for i := range replicas {
		replicas[i], clocks[i] = newClient(t, f, func(c *Config) { c.Credentials, c.Timeout = lossy, timeout })
	}
	for step := range 40 {
		switch p := rnd.Float64(); {
		case p < 0.15: // every access token expires
			for _, c := range clocks {
				c.advance(2 * time.Hour)
			}
		case p < 0.25:
			f.revokeAccess()
		default:
			i := rnd.IntN(2)
			var wg sync.WaitGroup
			for range 1 + rnd.IntN(3) {
				wg.Go(func() {
					_, err := listOf(t.Context(), replicas[i], "OPEN")
					t.Logf("step %d: replica %d: %v", step, i, err)
				})
			}
			wg.Wait()
		}
	}
	// The store works again: whatever was unsaved is committed, and every replica works.
	lossy.heal()
	for _, c := range replicas {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		if err := c.Drain(ctx); err != nil {
			t.Errorf("Drain: %v", err)
		}
		cancel()
	}
	ok := true
	presented := f.presentedTokens()
	seen := map[string]int{}
	for i, rt := range presented {
		if j, dup := seen[rt]; dup {
			t.Errorf("refresh token %s presented twice (#%d and #%d of %v)", rt, j, i, presented)
			ok = false
		}
		seen[rt] = i
	}
	live := f.RefreshTokens()
	var stored Credentials
	stored, err := inner.UpdateCredentials(t.Context(), func(Credentials, bool) (*Credentials, error) { return nil, nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(live) != 1 || stored.RefreshToken != live[0] {
		t.Errorf("the store holds %q, Concur's live refresh tokens are %v", stored.RefreshToken, live)
		ok = false
	}
	for i, c := range replicas {
		clocks[i].advance(2 * time.Hour) // each renews, or adopts the other's renewal
		// A waiting replica may need a lease's time: the marker of a lost commit.
		var err error
		for try := 0; try < 20; try++ {
			if _, err = listOf(t.Context(), c, "OPEN"); err == nil {
				break
			}
			time.Sleep(timeout / 2)
		}
		if err != nil {
			t.Errorf("replica %d after the store healed: %v", i, err)
			ok = false
		}
	}
	if presented := f.presentedTokens(); len(presented) != len(f.redeemedTokens()) {
		t.Errorf("presented %v, redeemed %v: a spent token was presented", presented, f.redeemedTokens())
		ok = false
	}
	return ok
}

// Scenario 13: a replica still configured with a seed that was already redeemed never
// presents it again, whatever chain the store holds; a seed nobody presented yet (a person
// re-authorised the gateway) starts a new chain.
func TestSpentSeedNeverPresented(t *testing.T) {
	t.Parallel()
	spent := Credentials{RefreshToken: "rt-0", SeedHash: seedHash("rt-new-seed"),
		SpentSeeds: seedHash("rt-new-seed") + " " + seedHash("rt-old-seed"), SpentTokens: seedHash("rt-mid")}
	tests := []struct {
		name, configured, want string
	}{
		{"old seed of an earlier chain", "rt-old-seed", "rt-0"},
		{"seed of the stored chain", "rt-new-seed", "rt-0"},
		{"a token redeemed mid-chain", "rt-mid", "rt-0"},
		{"re-authorised: a new seed", "rt-fresh", "rt-fresh"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.AddRefreshToken("rt-fresh")
			creds := seededCredentials(spent)
			c, _ := newClient(t, f, func(c *Config) { c.RefreshToken, c.Credentials = tt.configured, creds })
			list(t, c)
			assertEqual(t, []string{tt.want}, f.presentedTokens())
			got, _ := creds.load(t)
			if !hasHash(got.SpentTokens, seedHash(tt.want)) || got.Redeeming != (Redemption{}) {
				t.Errorf("stored spent %q, marker %+v", got.SpentTokens, got.Redeeming)
			}
		})
	}
}

// Scenario 4, step by step: replica A redeems, its commit is lost; replica B waits on A's
// marker instead of presenting the spent token, and adopts A's grant once A's background
// commit stores it.
func TestWaitOnLostCommit(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	creds := newRecordingStore()
	a, _ := newClient(t, f, sharing(creds))
	b, _ := newClient(t, f, sharing(creds))
	creds.fail(nil, errors.New("connection cut"))
	wantCode(t, call(t.Context(), a, f, opList), "internal")
	done := make(chan error, 1)
	go func() { done <- call(t.Context(), b, f, opList) }()
	time.Sleep(100 * time.Millisecond) // B waits on A's marker
	creds.fail(nil, nil)               // A's background commit goes through
	if err := <-done; err != nil {
		t.Fatalf("replica B: %v", err)
	}
	assertEqual(t, []string{"rt-0"}, f.presentedTokens())
	assertEqual(t, []string{"rt-1"}, refreshTokens(creds.committed()))
	list(t, a)
	wantTokenCalls(t, f, 1)
}

// seededCredentials is an in-memory store that already holds c, as if a replica (or an
// earlier run) had stored it.
func seededCredentials(c Credentials) *memCredentials {
	m := newMemCredentials()
	c.Version = 1
	m.cur, m.found = c, true
	return m
}

// load reads the stored credentials under the store's lock.
func (m *memCredentials) load(t *testing.T) (Credentials, bool) {
	t.Helper()
	var found bool
	c, err := m.UpdateCredentials(t.Context(), func(_ Credentials, f bool) (*Credentials, error) {
		found = f
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, found
}

// recordingStore is a credential store (in memory, with its real lock) that records every
// commit of a grant (a write that changes a token; not a redeeming marker) and can be told
// to fail: before fn runs (the store is down), or at the commit of a grant after fn
// answered (fn's answer is then rolled back).
type recordingStore struct {
	mem *memCredentials

	mu         sync.Mutex
	commits    []Credentials
	failLock   error
	failCommit error
}

func newRecordingStore() *recordingStore { return &recordingStore{mem: newMemCredentials()} }

func (r *recordingStore) fail(lock, commit error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failLock, r.failCommit = lock, commit
}

func (r *recordingStore) committed() []Credentials {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Credentials(nil), r.commits...)
}

func (r *recordingStore) UpdateCredentials(ctx context.Context, fn func(Credentials, bool) (*Credentials, error)) (Credentials, error) {
	r.mu.Lock()
	failLock, failCommit := r.failLock, r.failCommit
	r.mu.Unlock()
	if failLock != nil {
		return Credentials{}, failLock
	}
	errCommit := errors.New("commit failed")
	wrote := false
	c, err := r.mem.UpdateCredentials(ctx, func(cur Credentials, found bool) (*Credentials, error) {
		next, err := fn(cur, found)
		grant := next != nil && (next.RefreshToken != cur.RefreshToken || next.AccessToken != cur.AccessToken)
		if err == nil && grant && failCommit != nil {
			return nil, errCommit // roll back
		}
		wrote = grant
		return next, err
	})
	if errors.Is(err, errCommit) {
		return Credentials{}, failCommit
	}
	if err == nil && wrote {
		r.mu.Lock()
		r.commits = append(r.commits, c)
		r.mu.Unlock()
	}
	return c, err
}

// refreshTokens lists the refresh tokens of commits, in order.
func refreshTokens(commits []Credentials) []string {
	var out []string
	for _, c := range commits {
		out = append(out, c.RefreshToken)
	}
	return out
}

// An in-memory store honours the contract the token source relies on: nil stores nothing,
// an error rolls back, a write increments Version, and the lock wait respects ctx.
func TestMemCredentials(t *testing.T) {
	t.Parallel()
	m := newMemCredentials()
	if _, found := m.load(t); found {
		t.Fatal("found credentials in a new store")
	}
	write := func(ctx context.Context, rt string, fail error) (Credentials, error) {
		return m.UpdateCredentials(ctx, func(Credentials, bool) (*Credentials, error) {
			return &Credentials{RefreshToken: rt}, fail
		})
	}
	if c, err := write(t.Context(), "rt-1", nil); err != nil || c.RefreshToken != "rt-1" || c.Version != 1 || c.UpdatedAt.IsZero() {
		t.Fatalf("write: %+v, %v", c, err)
	}
	if _, err := write(t.Context(), "rt-2", errors.New("no")); err == nil {
		t.Fatal("fn's error was not returned")
	}
	if c, found := m.load(t); !found || c.RefreshToken != "rt-1" || c.Version != 1 {
		t.Errorf("after a rolled-back write: %+v", c)
	}

	held := make(chan struct{})
	release := make(chan struct{})
	go m.UpdateCredentials(t.Context(), func(Credentials, bool) (*Credentials, error) {
		close(held)
		<-release
		return nil, nil
	})
	<-held
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := write(ctx, "rt-3", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("write while locked: %v, want the context's deadline", err)
	}
	close(release)
	if c, err := write(t.Context(), "rt-4", nil); err != nil || c.RefreshToken != "rt-4" || c.Version != 2 {
		t.Errorf("write after the lock was released: %+v, %v", c, err)
	}
}
