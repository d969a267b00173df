package concur

import (
	"context"
	"errors"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// KeepAlive renews the grant on its own while ctx lasts, so that an idle gateway does not
// lose it: Concur's refresh tokens live six months, and Concur advises renewing regularly
// to keep them alive. Every tick (a tenth of the margin, between 1 s and an hour) it renews
// the token once its refresh token expires within Config.RefreshKeepAlive (see
// keepAliveDue), serialised across replicas like every refresh: a replica that finds
// another's renewal stored adopts it. Calls never wait for it, and its failure leaves them
// the token they use (until it expires as usual). A failed renewal, and a
// refresh token that still expires within the margin, are told to Config.OnSignal (once
// each until they change) and shown by Signals. It returns when ctx ends; it does nothing
// with a static access token or no margin.
func (c *Client) KeepAlive(ctx context.Context) {
	s := c.tokens
	if s.static != nil || s.keepAlive <= 0 {
		return
	}
	tick := min(max(s.keepAlive/10, time.Second), keepAliveMaxTick)
	// The first tick waits a little: a starting gateway's first token is its first call's
	// or probe's, so that it belongs to that call (its trace, its correlation ids).
	for wait := min(tick, keepAliveFirstTick); sleep(ctx, wait); wait = tick {
		s.keepAliveOnce(ctx)
	}
}

// The keep-alive's ticks: at most an hour apart, the first within 30 s.
const (
	keepAliveMaxTick   = time.Hour
	keepAliveFirstTick = 30 * time.Second
)

// keepAliveOnce is one tick: a token that calls may still use but whose grant is due is
// renewed by a refresh of the keep-alive's own (whose failure leaves the token in use);
// anything else is renewed as a call would renew it.
func (s *tokenSource) keepAliveOnce(ctx context.Context) {
	s.mu.Lock()
	cur := s.cur
	due := cur != nil && s.fresh(cur) && s.keepAliveDue(cur)
	var f *flight
	if due {
		f = s.startLocked(ctx, true)
	}
	s.mu.Unlock()
	var t *token
	var err error
	if f == nil {
		t, err = s.get(ctx) // a refresh is detached and bounded by its own budget
	} else {
		select {
		case <-f.done:
			t, err = f.tok, f.err
		case <-ctx.Done():
			return
		}
	}
	switch {
	case ctx.Err() != nil:
		return
	case err != nil:
		s.mu.Lock()
		s.keepAliveErr = safeReason(err) // /readyz shows it: its code and detail, not the whole chain
		s.mu.Unlock()
		s.sig.once(Signal{Kind: SignalKeepAliveFailed, Value: cleanSignal(err.Error())}) // for the log
		return
	}
	s.mu.Lock()
	s.keepAliveErr = ""
	s.mu.Unlock()
	s.sig.forget(SignalKeepAliveFailed)
	s.noteExpiry(t)
}

// noteExpiry tells, once, that t's refresh token expires within the keep-alive margin, or
// forgets it told so when it does not: after every refresh and every keep-alive tick.
func (s *tokenSource) noteExpiry(t *token) {
	if s.expiring(t.refreshExpiry) {
		s.sig.once(Signal{Kind: SignalRefreshExpiring, Value: t.refreshExpiry.UTC().Format(time.RFC3339), At: t.refreshExpiry})
	} else {
		s.sig.forget(SignalRefreshExpiring)
	}
}

// Signals reports what Concur signalled that an operator must hear: the refresh token's
// expiry and deprecation headers.
func (c *Client) Signals() Signals {
	out := c.sig.snapshot()
	s := c.tokens
	s.mu.Lock()
	out.RefreshExpiry, out.KeepAliveError = s.lastExpiry, s.keepAliveErr
	s.mu.Unlock()
	out.RefreshExpiring = s.expiring(out.RefreshExpiry)
	return out
}

// safeReason is err as a caller may see it: its code and its detail (batch.Error's details
// are caller-safe), never the chain beneath, which may name hosts or users of the store.
func safeReason(err error) string {
	e, ok := errors.AsType[*batch.Error](err)
	if !ok {
		return string(batch.CodeInternal)
	}
	if e.Detail == "" {
		return string(e.Code)
	}
	return cleanSignal(string(e.Code) + ": " + e.Detail)
}
