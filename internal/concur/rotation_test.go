package concur

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/store"
	"github.com/finplat/payment-batch-gateway/internal/store/storetest"
)

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

func (l *lossyStore) UpdateCredentials(ctx context.Context, fn func(store.Credentials, bool) (*store.Credentials, error)) (store.Credentials, error) {
	before, commit, after := l.roll()
	if before {
		return store.Credentials{}, errLostCommit
	}
	errRollback := errors.New("rolled back")
	c, err := l.inner.UpdateCredentials(ctx, func(cur store.Credentials, found bool) (*store.Credentials, error) {
		next, err := fn(cur, found)
		if err == nil && next != nil && commit {
			return nil, errRollback
		}
		return next, err
	})
	if errors.Is(err, errRollback) {
		return store.Credentials{}, errLostCommit
	}
	if err == nil && after {
		return store.Credentials{}, errLostCommit
	}
	return c, err
}

// openSQLite is a real SQLite store in a temporary directory.
func openSQLite(t *testing.T) store.Store {
	t.Helper()
	return openStore(t, store.Config{DataDir: t.TempDir()})
}

func openStore(t *testing.T, cfg store.Config) store.Store {
	t.Helper()
	cfg.Key = make([]byte, 32)
	rand.Read(cfg.Key)
	s, err := store.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

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
		{"sqlite", func(t *testing.T) CredentialStore { return openSQLite(t) }},
		{"postgres", func(t *testing.T) CredentialStore {
			return openStore(t, store.Config{URL: storetest.PostgresURL(t)})
		}},
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
	live := f.liveRefreshTokens()
	var stored store.Credentials
	stored, err := inner.UpdateCredentials(t.Context(), func(store.Credentials, bool) (*store.Credentials, error) { return nil, nil })
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

// presentedTokens returns every refresh token presented to the fake, in order.
func (f *fakeConcur) presentedTokens() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.presented...)
}

// liveRefreshTokens returns the refresh tokens the fake would still redeem.
func (f *fakeConcur) liveRefreshTokens() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for rt, ok := range f.refresh {
		if ok {
			out = append(out, rt)
		}
	}
	return out
}

// Scenario 13: a replica still configured with a seed that was already redeemed never
// presents it again, whatever chain the store holds; a seed nobody presented yet (a person
// re-authorised the gateway) starts a new chain.
func TestSpentSeedNeverPresented(t *testing.T) {
	t.Parallel()
	spent := store.Credentials{RefreshToken: "rt-0", SeedHash: seedHash("rt-new-seed"),
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
			f.set(func(f *fakeConcur) { f.refresh["rt-fresh"] = true })
			creds := seededCredentials(spent)
			c, _ := newClient(t, f, func(c *Config) { c.RefreshToken, c.Credentials = tt.configured, creds })
			list(t, c)
			assertEqual(t, []string{tt.want}, f.presentedTokens())
			got, _ := creds.load(t)
			if !hasHash(got.SpentTokens, seedHash(tt.want)) || got.Redeeming != (store.Redemption{}) {
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
