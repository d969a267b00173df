package concur

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// signalLog collects what a Client told its OnSignal.
type signalLog struct {
	mu   sync.Mutex
	sigs []Signal
}

func (l *signalLog) on(s Signal) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sigs = append(l.sigs, s)
}

func (l *signalLog) last() Signal {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.sigs) == 0 {
		return Signal{}
	}
	return l.sigs[len(l.sigs)-1]
}

func (l *signalLog) kinds() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, s := range l.sigs {
		out = append(out, s.Kind)
	}
	return out
}

// keepAliveRig is a token endpoint whose refresh tokens expire refreshLife after each
// refresh (or never move, with fixed), on the clients' test clock, and two clients on one
// store with a keep-alive margin of an hour, their access tokens living three hours.
type keepAliveRig struct {
	ts          *tokenServer
	a, b        *Client
	clock       *testClock
	logA        *signalLog
	fixed       atomic.Int64 // when not 0, the refresh expiry every answer gives (Unix seconds)
	failing     atomic.Bool
	noExpiresIn atomic.Bool // answers without expires_in: access tokens used until refused
	refreshN    atomic.Int64
}

func newKeepAliveRig(t *testing.T) *keepAliveRig {
	t.Helper()
	f := newFake(t)
	rig := &keepAliveRig{clock: &testClock{}, logA: &signalLog{}}
	rig.ts = newTokenServer(t, func(form map[string]string) (int, map[string]any) {
		if rig.failing.Load() {
			return http.StatusServiceUnavailable, map[string]any{"error": "temporarily_unavailable"}
		}
		n := rig.refreshN.Add(1)
		exp := rig.clock.now().Add(2 * time.Hour).Unix()
		if fixed := rig.fixed.Load(); fixed != 0 {
			exp = fixed
		}
		at := "at-k" + strconv.FormatInt(n, 10)
		f.AddAccessToken(at)
		ans := map[string]any{"access_token": at, "expires_in": 3 * 3600, "refresh_token": "rt-k" + strconv.FormatInt(n, 10),
			"refresh_expires_in": exp}
		if rig.noExpiresIn.Load() {
			delete(ans, "expires_in")
		}
		return 200, ans
	})
	creds := newRecordingStore()
	mk := func(log *signalLog) *Client {
		c, _ := newClient(t, f, func(c *Config) {
			c.TokenURL, c.Credentials, c.RefreshKeepAlive = rig.ts.srv.URL+"/oauth2/v0/token", creds, time.Hour
			if log != nil {
				c.OnSignal = log.on
			}
		})
		c.tokens.now = rig.clock.now
		return c
	}
	rig.a, rig.b = mk(rig.logA), mk(nil)
	return rig
}

// An idle gateway renews its grant before the refresh token expires, once, and a replica
// adopts that renewal without asking Concur.
func TestKeepAliveRenewsBeforeTheRefreshTokenExpires(t *testing.T) {
	t.Parallel()
	rig := newKeepAliveRig(t)
	ctx := t.Context()
	rig.a.tokens.keepAliveOnce(ctx)
	rig.b.tokens.keepAliveOnce(ctx)
	if n := rig.refreshN.Load(); n != 1 {
		t.Fatalf("refreshes = %d, want 1 (the first token, shared)", n)
	}
	first := rig.a.Signals().RefreshExpiry
	if first.IsZero() || rig.a.Signals().RefreshExpiring {
		t.Fatalf("signals = %+v", rig.a.Signals())
	}

	rig.clock.advance(50 * time.Minute) // not yet within the margin
	rig.a.tokens.keepAliveOnce(ctx)
	if n := rig.refreshN.Load(); n != 1 {
		t.Errorf("refreshes before the margin = %d, want 1", n)
	}
	rig.clock.advance(15 * time.Minute) // within it; the access token is still good for 1h55m
	rig.a.tokens.keepAliveOnce(ctx)
	rig.a.tokens.keepAliveOnce(ctx)
	if n := rig.refreshN.Load(); n != 2 {
		t.Fatalf("refreshes within the margin = %d, want exactly one more", n)
	}
	renewed := rig.a.Signals().RefreshExpiry
	if !renewed.After(first) || rig.a.Signals().RefreshExpiring {
		t.Errorf("after the keep-alive: expiry %v (was %v), signals %+v", renewed, first, rig.a.Signals())
	}
	// The replica's own token is due too, but the store holds the renewal: it adopts it.
	rig.b.tokens.keepAliveOnce(ctx)
	if n := rig.refreshN.Load(); n != 2 {
		t.Errorf("refreshes after the replica's keep-alive = %d, want 2", n)
	}
	if got := rig.b.Signals().RefreshExpiry; !got.Equal(renewed) {
		t.Errorf("replica's expiry %v, want %v", got, renewed)
	}
	if k := rig.logA.kinds(); len(k) != 0 {
		t.Errorf("signals told: %v, want none", k)
	}
}

// A refresh token Concur does not extend is renewed early once, not at every tick, and is
// reported as expiring, once; so is a keep-alive whose renewal fails.
func TestKeepAliveReportsWhatItCannotFix(t *testing.T) {
	t.Parallel()
	rig := newKeepAliveRig(t)
	ctx := t.Context()
	rig.fixed.Store(rig.clock.now().Add(2 * time.Hour).Unix())
	rig.a.tokens.keepAliveOnce(ctx)
	rig.clock.advance(65 * time.Minute)
	for range 3 {
		rig.a.tokens.keepAliveOnce(ctx)
	}
	if n := rig.refreshN.Load(); n != 2 {
		t.Errorf("refreshes = %d, want 2: one keep-alive renewal, then none while the access token lasts", n)
	}
	if !rig.a.Signals().RefreshExpiring {
		t.Errorf("signals = %+v, want RefreshExpiring", rig.a.Signals())
	}
	if got := rig.logA.kinds(); !slices.Equal(got, []string{SignalRefreshExpiring}) {
		t.Errorf("told %v, want one %s", got, SignalRefreshExpiring)
	}

	// The access token runs out; Concur fails the renewal: told once, however many ticks.
	rig.failing.Store(true)
	rig.clock.advance(3 * time.Hour)
	for range 3 {
		rig.a.tokens.keepAliveOnce(ctx)
	}
	if got := rig.logA.kinds(); !slices.Equal(got, []string{SignalRefreshExpiring, SignalKeepAliveFailed}) {
		t.Errorf("told %v", got)
	}
	if got := rig.a.Signals().KeepAliveError; got != "upstream_unavailable: Concur's token endpoint is unavailable" {
		t.Errorf("keep-alive error %q: want the failure's code and detail, nothing beneath", got)
	}
	if got := rig.a.Signals().RefreshExpiry; got.IsZero() {
		t.Errorf("the expiry must outlive the token: signals %+v", rig.a.Signals())
	}
}

// Deprecation headers are told once per distinct value and shown by Signals, the earliest
// Sunset first; they come from whichever answer carried them.
func TestDeprecationSignals(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	var sunset atomic.Value
	sunset.Store("Sat, 31 Oct 2027 23:59:59 GMT")
	f.InterceptAPI(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Sunset", sunset.Load().(string))
			w.Header().Set("X-Api-Warn", "Payment Batch v1.1 is deprecated; use v4")
			next.ServeHTTP(w, r)
		})
	})
	log := &signalLog{}
	c, _ := newClient(t, f, func(c *Config) { c.OnSignal = log.on })
	for range 3 {
		if _, err := listOf(t.Context(), c, batch.ListOpen); err != nil {
			t.Fatal(err)
		}
	}
	if got := log.kinds(); !slices.Equal(got, []string{SignalSunset, SignalAPIWarn}) {
		t.Fatalf("told %v", got)
	}
	s := c.Signals()
	want := time.Date(2027, 10, 31, 23, 59, 59, 0, time.UTC)
	if !s.Sunset.Equal(want) || s.SunsetOperation != OpList || s.APIWarn != "Payment Batch v1.1 is deprecated; use v4" {
		t.Errorf("signals = %+v", s)
	}
	sunset.Store("Mon, 01 Mar 2027 00:00:00 GMT") // an earlier one wins at once, and is told a minute later
	if _, err := listOf(t.Context(), c, batch.ListOpen); err != nil {
		t.Fatal(err)
	}
	if s := c.Signals(); s.Sunset.Month() != time.March || len(log.kinds()) != 2 {
		t.Errorf("signals %+v, told %v", s, log.kinds())
	}
	c.sig.now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	if _, err := listOf(t.Context(), c, batch.ListOpen); err != nil {
		t.Fatal(err)
	}
	if got := log.last(); got.Kind != SignalSunset || got.At.Month() != time.March || len(log.kinds()) != 3 {
		t.Errorf("told %v, last %+v: want the held-back March sunset told now", log.kinds(), got)
	}
}

// A keep-alive renewal that fails costs the callers nothing: their access token is still
// good for hours, and they keep using it.
func TestKeepAliveFailureLeavesCallsAlone(t *testing.T) {
	t.Parallel()
	rig := newKeepAliveRig(t)
	ctx := t.Context()
	if _, err := listOf(ctx, rig.a, batch.ListOpen); err != nil {
		t.Fatal(err)
	}
	rig.failing.Store(true)
	rig.clock.advance(65 * time.Minute) // within the margin; the access token lasts 1h55m more
	rig.a.tokens.keepAliveOnce(ctx)
	if got := rig.logA.kinds(); !slices.Equal(got, []string{SignalKeepAliveFailed}) {
		t.Errorf("told %v, want the keep-alive's failure", got)
	}
	before := rig.refreshN.Load()
	for range 3 {
		if _, err := listOf(ctx, rig.a, batch.ListOpen); err != nil {
			t.Fatalf("a call while the keep-alive fails: %v", err)
		}
	}
	if n := len(rig.ts.received()); n > 2 {
		t.Errorf("token requests = %d (refreshes %d before): calls must not retry the keep-alive's renewal", n, before)
	}
}

// A grant whose access tokens carry no expires_in (used until Concur refuses them) is
// kept alive too; and the expiry reported is the grant's in use, even when it is unknown.
func TestKeepAliveWithoutExpiresIn(t *testing.T) {
	t.Parallel()
	rig := newKeepAliveRig(t)
	rig.noExpiresIn.Store(true)
	ctx := t.Context()
	rig.a.tokens.keepAliveOnce(ctx)
	rig.clock.advance(65 * time.Minute)
	rig.a.tokens.keepAliveOnce(ctx)
	rig.a.tokens.keepAliveOnce(ctx)
	if n := rig.refreshN.Load(); n != 2 {
		t.Errorf("refreshes = %d, want 2: the first token, and one keep-alive renewal", n)
	}

	// Concur rotates the refresh token and stops saying when it expires: the old date is
	// not reported.
	rig.fixed.Store(-1)
	rig.clock.advance(65 * time.Minute)
	rig.a.tokens.keepAliveOnce(ctx)
	if n := rig.refreshN.Load(); n != 3 {
		t.Fatalf("refreshes = %d, want 3", n)
	}
	if s := rig.a.Signals(); !s.RefreshExpiry.IsZero() || s.RefreshExpiring {
		t.Errorf("signals = %+v: want the expiry unknown, not the last grant's", s)
	}
}

// clockedStore makes UpdatedAt follow the test clock, as the real store's follows the
// real one (every write: a marker, a release, a commit).
type clockedStore struct {
	inner CredentialStore
	now   func() time.Time
	mu    sync.Mutex
	last  time.Time
}

func (c *clockedStore) UpdateCredentials(ctx context.Context, fn func(Credentials, bool) (*Credentials, error)) (Credentials, error) {
	return c.inner.UpdateCredentials(ctx, func(cur Credentials, found bool) (*Credentials, error) {
		c.mu.Lock()
		cur.UpdatedAt = c.last
		c.mu.Unlock()
		next, err := fn(cur, found)
		if next != nil && err == nil {
			c.mu.Lock()
			c.last = c.now()
			c.mu.Unlock()
		}
		return next, err
	})
}

// One failed keep-alive renewal of a grant without expires_in does not stop the keep-alive
// (the stored token's UpdatedAt, moved by the failure's marker, is not its issue time).
func TestKeepAliveRecoversAfterAFailureWithoutExpiresIn(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	clock := &testClock{}
	var failing atomic.Bool
	var n atomic.Int64
	ts := newTokenServer(t, func(form map[string]string) (int, map[string]any) {
		if failing.Load() {
			return http.StatusServiceUnavailable, map[string]any{"error": "temporarily_unavailable"}
		}
		k := n.Add(1)
		at := "at-z" + strconv.FormatInt(k, 10)
		f.AddAccessToken(at)
		return 200, map[string]any{"access_token": at, "refresh_token": "rt-z" + strconv.FormatInt(k, 10),
			"refresh_expires_in": clock.now().Add(2 * time.Hour).Unix()}
	})
	st := &clockedStore{inner: newMemCredentials(), now: clock.now}
	c, _ := newClient(t, f, func(c *Config) {
		c.TokenURL, c.Credentials, c.RefreshKeepAlive = ts.srv.URL+"/oauth2/v0/token", st, time.Hour
	})
	c.tokens.now = clock.now
	ctx := t.Context()
	c.tokens.keepAliveOnce(ctx) // the first token
	clock.advance(65 * time.Minute)
	failing.Store(true)
	c.tokens.keepAliveOnce(ctx) // fails: marker and release written now
	failing.Store(false)
	clock.advance(time.Minute)
	c.tokens.keepAliveOnce(ctx)
	c.tokens.keepAliveOnce(ctx)
	if got := n.Load(); got != 2 {
		t.Errorf("successful refreshes = %d, want 2 (the first, and the keep-alive's after Concur recovered); signals %+v",
			got, c.Signals())
	}
}

// A new header value held back by the pace is told once the minute has passed.
func TestPacedHeaderValueToldLater(t *testing.T) {
	t.Parallel()
	log := &signalLog{}
	s := newSignals(log.on)
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	h := func(v string) http.Header { return http.Header{"X-Api-Warn": {v}} }
	s.answered(OpList, h("A"))
	now = now.Add(10 * time.Second)
	s.answered(OpClose, h("B")) // held back
	now = now.Add(2 * time.Minute)
	s.answered(OpClose, h("B"))
	s.answered(OpList, h("A"))
	if got := log.kinds(); len(got) != 2 || log.last().Value != "B" {
		t.Errorf("told %v (last %+v), want A, then B after the minute", got, log.last())
	}
}
