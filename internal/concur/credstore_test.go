package concur

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/store"
)

// seededCredentials is an in-memory store that already holds c, as if a replica (or an
// earlier run) had stored it.
func seededCredentials(c store.Credentials) *memCredentials {
	m := newMemCredentials()
	c.Version = 1
	m.cur, m.found = c, true
	return m
}

// load reads the stored credentials under the store's lock.
func (m *memCredentials) load(t *testing.T) (store.Credentials, bool) {
	t.Helper()
	var found bool
	c, err := m.UpdateCredentials(t.Context(), func(_ store.Credentials, f bool) (*store.Credentials, error) {
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
	commits    []store.Credentials
	failLock   error
	failCommit error
}

func newRecordingStore() *recordingStore { return &recordingStore{mem: newMemCredentials()} }

func (r *recordingStore) fail(lock, commit error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failLock, r.failCommit = lock, commit
}

func (r *recordingStore) committed() []store.Credentials {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]store.Credentials(nil), r.commits...)
}

func (r *recordingStore) UpdateCredentials(ctx context.Context, fn func(store.Credentials, bool) (*store.Credentials, error)) (store.Credentials, error) {
	r.mu.Lock()
	failLock, failCommit := r.failLock, r.failCommit
	r.mu.Unlock()
	if failLock != nil {
		return store.Credentials{}, failLock
	}
	errCommit := errors.New("commit failed")
	wrote := false
	c, err := r.mem.UpdateCredentials(ctx, func(cur store.Credentials, found bool) (*store.Credentials, error) {
		next, err := fn(cur, found)
		grant := next != nil && (next.RefreshToken != cur.RefreshToken || next.AccessToken != cur.AccessToken)
		if err == nil && grant && failCommit != nil {
			return nil, errCommit // roll back
		}
		wrote = grant
		return next, err
	})
	if errors.Is(err, errCommit) {
		return store.Credentials{}, failCommit
	}
	if err == nil && wrote {
		r.mu.Lock()
		r.commits = append(r.commits, c)
		r.mu.Unlock()
	}
	return c, err
}

// refreshTokens lists the refresh tokens of commits, in order.
func refreshTokens(commits []store.Credentials) []string {
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
	write := func(ctx context.Context, rt string, fail error) (store.Credentials, error) {
		return m.UpdateCredentials(ctx, func(store.Credentials, bool) (*store.Credentials, error) {
			return &store.Credentials{RefreshToken: rt}, fail
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
	go m.UpdateCredentials(t.Context(), func(store.Credentials, bool) (*store.Credentials, error) {
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
