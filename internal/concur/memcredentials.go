package concur

import (
	"context"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/store"
)

// memCredentials is the CredentialStore used when Config.Credentials is nil: the grant lives
// in this process only (tests, tools). Like the real store, it runs fn under a lock, which
// a caller waits for no longer than its context allows.
type memCredentials struct {
	lock  chan struct{} // one slot: held while fn runs
	cur   store.Credentials
	found bool
}

func newMemCredentials() *memCredentials {
	return &memCredentials{lock: make(chan struct{}, 1)}
}

// UpdateCredentials follows store.Store's contract: fn's non-nil answer is stored (Version
// incremented, UpdatedAt set), nil leaves the credentials as they are, an error changes nothing.
func (m *memCredentials) UpdateCredentials(ctx context.Context, fn func(cur store.Credentials, found bool) (*store.Credentials, error)) (store.Credentials, error) {
	if err := ctx.Err(); err != nil {
		return store.Credentials{}, err
	}
	select {
	case m.lock <- struct{}{}:
	case <-ctx.Done():
		return store.Credentials{}, ctx.Err()
	}
	defer func() { <-m.lock }()
	next, err := fn(m.cur, m.found)
	if err != nil {
		return store.Credentials{}, err
	}
	if next != nil {
		c := *next
		c.Version, c.UpdatedAt = m.cur.Version+1, time.Now()
		m.cur, m.found = c, true
	}
	return m.cur, nil
}
