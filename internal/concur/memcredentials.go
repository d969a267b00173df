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
	next, err := fn(m.read(), m.found)
	if err != nil {
		return store.Credentials{}, err
	}
	if next != nil {
		c := *next
		c.Version, c.UpdatedAt = m.cur.Version+1, time.Now()
		switch r := &c.Redeeming; {
		case r.TokenHash == "":
			*r = store.Redemption{}
		case r.Lease > 0:
			r.Until, r.Lease = time.Now().Add(r.Lease), 0
		}
		m.cur, m.found = c, true
	}
	return m.read(), nil
}

// read is the stored credentials with the marker's liveness as of now (this process's
// clock: the only one there is).
func (m *memCredentials) read() store.Credentials {
	c := m.cur
	c.Redeeming.Live = c.Redeeming.TokenHash != "" && time.Now().Before(c.Redeeming.Until)
	return c
}
