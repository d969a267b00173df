package store_test

import (
	"bytes"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/finplat/payment-batch-gateway/internal/concur"
	"github.com/finplat/payment-batch-gateway/internal/store"
)

// put stores c unconditionally.
func put(t *testing.T, s store.Store, c concur.Credentials) concur.Credentials {
	t.Helper()
	got, err := s.UpdateCredentials(t.Context(), func(concur.Credentials, bool) (*concur.Credentials, error) {
		return &c, nil
	})
	if err != nil {
		t.Fatalf("UpdateCredentials: %v", err)
	}
	return got
}

func mustLoad(t *testing.T, s store.Store) (concur.Credentials, bool) {
	t.Helper()
	c, found, err := s.LoadCredentials(t.Context())
	if err != nil {
		t.Fatalf("LoadCredentials: %v", err)
	}
	return c, found
}

func testCredentialsNotFound(t *testing.T, h *harness) {
	s := h.open(t)
	if c, found := mustLoad(t, s); found || c != (concur.Credentials{}) {
		t.Errorf("LoadCredentials on a new store = %+v, %v; want zero, false", c, found)
	}
	var called bool
	got, err := s.UpdateCredentials(t.Context(), func(cur concur.Credentials, found bool) (*concur.Credentials, error) {
		called = true
		if found || cur != (concur.Credentials{}) {
			t.Errorf("fn got %+v, %v; want zero, false", cur, found)
		}
		return nil, nil
	})
	if err != nil || !called || got != (concur.Credentials{}) {
		t.Errorf("UpdateCredentials = %+v, %v (fn called: %v); want zero, nil, true", got, err, called)
	}
}

func testCredentialsRoundTrip(t *testing.T, h *harness) {
	s := h.open(t)
	in := concur.Credentials{
		RefreshToken: "refresh-1", RefreshExpiry: at(180 * 24 * time.Hour),
		AccessToken: "access-1", AccessExpiry: at(time.Hour), AccessLifetime: time.Hour + time.Nanosecond,
		Geolocation: "https://us.api.concursolutions.com", SeedHash: "ab12",
		Version: 42, UpdatedAt: at(-time.Hour), // both ignored: the store sets them
	}
	before := time.Now().Add(-time.Second)
	first := put(t, s, in)
	if first.Version != 1 {
		t.Errorf("Version = %d, want 1", first.Version)
	}
	if first.UpdatedAt.Before(before) || first.UpdatedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("UpdatedAt = %v, want about now", first.UpdatedAt)
	}
	want := in
	want.Version, want.UpdatedAt = 1, first.UpdatedAt
	if diff := cmp.Diff(want, first); diff != "" {
		t.Errorf("UpdateCredentials (-want +got):\n%s", diff)
	}
	loaded, found := mustLoad(t, s)
	if diff := cmp.Diff(first, loaded); !found || diff != "" {
		t.Errorf("LoadCredentials (found %v) (-want +got):\n%s", found, diff)
	}

	// Every field changes, including to empty.
	in2 := concur.Credentials{RefreshToken: "refresh-2", SeedHash: "cd34"}
	var gotCur concur.Credentials
	second, err := s.UpdateCredentials(t.Context(), func(cur concur.Credentials, found bool) (*concur.Credentials, error) {
		gotCur = cur
		return &in2, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(first, gotCur); diff != "" {
		t.Errorf("fn's cur (-want +got):\n%s", diff)
	}
	want2 := in2
	want2.Version, want2.UpdatedAt = 2, second.UpdatedAt
	if diff := cmp.Diff(want2, second); diff != "" {
		t.Errorf("second UpdateCredentials (-want +got):\n%s", diff)
	}
	if loaded, _ := mustLoad(t, h.open(t)); !cmp.Equal(second, loaded) {
		t.Errorf("another instance loads %+v, want %+v", loaded, second)
	}
}

func testCredentialsNoWrite(t *testing.T, h *harness) {
	s := h.open(t)
	stored := put(t, s, concur.Credentials{RefreshToken: "r"})
	got, err := s.UpdateCredentials(t.Context(), func(concur.Credentials, bool) (*concur.Credentials, error) {
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(stored, got); diff != "" {
		t.Errorf("fn returning nil: UpdateCredentials should return what is stored (-want +got):\n%s", diff)
	}
	if loaded, _ := mustLoad(t, s); loaded.Version != 1 {
		t.Errorf("Version = %d after fn returned nil, want 1 (nothing written)", loaded.Version)
	}
}

func testCredentialsRollback(t *testing.T, h *harness) {
	s := h.open(t)
	stored := put(t, s, concur.Credentials{RefreshToken: "r"})
	boom := errors.New("boom")
	_, err := s.UpdateCredentials(t.Context(), func(concur.Credentials, bool) (*concur.Credentials, error) {
		return &concur.Credentials{RefreshToken: "lost"}, boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("UpdateCredentials = %v, want fn's error", err)
	}
	if loaded, _ := mustLoad(t, s); !cmp.Equal(stored, loaded) {
		t.Errorf("after fn failed: stored %+v, want %+v", loaded, stored)
	}
}

// testCredentialsLockExcludes: while one instance is inside fn, another one's
// UpdateCredentials does not enter fn (nor read), until the first has committed.
func testCredentialsLockExcludes(t *testing.T, h *harness) {
	s1, s2 := h.open(t), h.open(t)
	var inside atomic.Int32
	entered, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := s1.UpdateCredentials(t.Context(), func(concur.Credentials, bool) (*concur.Credentials, error) {
			inside.Add(1)
			close(entered)
			<-release
			inside.Add(-1)
			return &concur.Credentials{RefreshToken: "first"}, nil
		})
		done <- err
	}()
	<-entered
	second := make(chan error, 1)
	var sawFirst bool
	go func() {
		_, err := s2.UpdateCredentials(t.Context(), func(cur concur.Credentials, found bool) (*concur.Credentials, error) {
			if inside.Load() != 0 {
				t.Error("two UpdateCredentials inside fn at once")
			}
			sawFirst = found && cur.RefreshToken == "first"
			return &concur.Credentials{RefreshToken: "second"}, nil
		})
		second <- err
	}()
	time.Sleep(300 * time.Millisecond) // give the second one time to (wrongly) get in
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	if !sawFirst {
		t.Error("the second UpdateCredentials did not see the first one's write")
	}
}

// testCredentialsNoLostUpdate: 2 instances x 20 goroutines increment a counter kept in
// RefreshToken: no increment is lost.
func testCredentialsNoLostUpdate(t *testing.T, h *harness) {
	stores := []store.Store{h.open(t), h.open(t)}
	const perStore = 20
	var wg sync.WaitGroup
	for _, s := range stores {
		for range perStore {
			wg.Go(func() {
				_, err := s.UpdateCredentials(t.Context(), func(cur concur.Credentials, _ bool) (*concur.Credentials, error) {
					n, _ := strconv.Atoi(cur.RefreshToken)
					cur.RefreshToken = strconv.Itoa(n + 1)
					return &cur, nil
				})
				if err != nil {
					t.Error(err)
				}
			})
		}
	}
	wg.Wait()
	got, _ := mustLoad(t, stores[0])
	if want := strconv.Itoa(len(stores) * perStore); got.RefreshToken != want || got.Version != int64(len(stores)*perStore) {
		t.Errorf("counter = %s, version %d; want %s, %s (lost updates)", got.RefreshToken, got.Version, want, want)
	}
}

func testCredentialsEncryptedAtRest(t *testing.T, h *harness) {
	s := h.open(t)
	const refresh, access = "refresh-token-PLAINTEXT-1234", "access-token-PLAINTEXT-5678"
	put(t, s, concur.Credentials{RefreshToken: refresh, AccessToken: access, SeedHash: "x"})
	var rt, at []byte
	if err := h.raw(t).QueryRowContext(t.Context(),
		"SELECT refresh_token, access_token FROM credentials").Scan(&rt, &at); err != nil {
		t.Fatal(err)
	}
	for _, col := range [][]byte{rt, at} {
		if len(col) == 0 {
			t.Error("a token column is empty")
		}
		if bytes.Contains(col, []byte("PLAINTEXT")) {
			t.Errorf("a token is stored in the clear: %q", col)
		}
	}
	if bytes.Equal(rt, at) {
		t.Error("both token columns hold the same bytes")
	}
}

func testCredentialsWrongKey(t *testing.T, h *harness) {
	put(t, h.open(t), concur.Credentials{RefreshToken: "r", AccessToken: "a"})
	other := h.openKey(t, newKey(t))
	if _, _, err := other.LoadCredentials(t.Context()); !errors.Is(err, concur.ErrUndecryptable) {
		t.Errorf("LoadCredentials with another key = %v, want ErrUndecryptable", err)
	}
	called := false
	_, err := other.UpdateCredentials(t.Context(), func(concur.Credentials, bool) (*concur.Credentials, error) {
		called = true
		return nil, nil
	})
	if !errors.Is(err, concur.ErrUndecryptable) || called {
		t.Errorf("UpdateCredentials with another key = %v (fn called: %v), want ErrUndecryptable, fn not called", err, called)
	}
}

// The redeeming marker's lease runs on the database's clock: live while it runs, not once
// it ended, written as given when no new lease is asked for, gone when cleared; the spent
// hashes are kept as given.
func testCredentialsRedeemingLease(t *testing.T, h *harness) {
	s := h.open(t)
	c := put(t, s, concur.Credentials{RefreshToken: "refresh-1", SpentSeeds: "aa", SpentTokens: "bb cc",
		Redeeming: concur.Redemption{TokenHash: "ab12", Lease: time.Hour}})
	if r := c.Redeeming; r.TokenHash != "ab12" || !r.Live || r.Lease != 0 ||
		r.Until.Before(time.Now().Add(59*time.Minute)) || r.Until.After(time.Now().Add(61*time.Minute)) {
		t.Errorf("marker with an hour's lease = %+v", r)
	}
	if c.SpentSeeds != "aa" || c.SpentTokens != "bb cc" {
		t.Errorf("spent = %q %q", c.SpentSeeds, c.SpentTokens)
	}
	if loaded, _ := mustLoad(t, s); !cmp.Equal(c, loaded) {
		t.Errorf("loaded %+v, want %+v", loaded, c)
	}
	kept := c // passed through unchanged: the lease is kept
	if got := put(t, s, kept); got.Redeeming.Until != c.Redeeming.Until || !got.Redeeming.Live {
		t.Errorf("marker written as read = %+v, want %+v", got.Redeeming, c.Redeeming)
	}
	// The write and its read-back are one transaction but two statements, each on the
	// database's clock: a lease is live at the read-back only if that came within the lease.
	// On a loaded machine two statements can be a lease of tens of milliseconds apart, so the
	// lease is a second, and a read-back that took longer than that is not held against it.
	const lease = time.Second
	wrote := time.Now()
	short := put(t, s, concur.Credentials{RefreshToken: "refresh-1",
		Redeeming: concur.Redemption{TokenHash: "ab12", Lease: lease}})
	if took := time.Since(wrote); !short.Redeeming.Live && took < lease {
		t.Errorf("a %v lease read back %v later is not live: %+v", lease, took, short.Redeeming)
	}
	time.Sleep(time.Until(short.Redeeming.Until) + 50*time.Millisecond) // past its end
	if loaded, _ := mustLoad(t, s); loaded.Redeeming.Live || loaded.Redeeming.TokenHash != "ab12" {
		t.Errorf("after its lease: %+v, want the marker, not live", loaded.Redeeming)
	}
	if cleared := put(t, s, concur.Credentials{RefreshToken: "refresh-2"}); cleared.Redeeming != (concur.Redemption{}) {
		t.Errorf("cleared marker = %+v", cleared.Redeeming)
	}
}
