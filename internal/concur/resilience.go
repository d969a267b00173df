package concur

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
	"golang.org/x/time/rate"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// Breaker names and states, as Config.OnBreakerStateChange receives them.
const (
	BreakerAPI   = "concur-api"   // list, close and file calls
	BreakerToken = "concur-token" // the OAuth2 token endpoint

	BreakerClosed   = "closed"
	BreakerOpen     = "open"
	BreakerHalfOpen = "half-open"
)

// halfOpenWait is the Retry-After of a call refused while the one probe is in flight.
const halfOpenWait = time.Second

// A verdict is what one admitted call says about Concur's health, as the error gobreaker
// takes: nil (healthy: Concur answered as designed, a 200, a 4xx, the no-reports 500) is a
// success; errFailing is an outage (5xx, time-out, connection failure); errNeutral says
// nothing (the caller left, throttling, nothing sent) and is excluded.
var (
	errFailing = errors.New("failing")
	errNeutral = errors.New("neutral")
)

// breaker is a gobreaker two-step breaker that remembers when it opened and after how many
// failures, so that a refused call can say both.
type breaker struct {
	what     string // "Concur" or "Concur's token endpoint", for Details
	interval time.Duration
	cb       *gobreaker.TwoStepCircuitBreaker[struct{}]

	mu       sync.Mutex
	openedAt time.Time
	streak   int // consecutive failures behind the current open state
}

func newBreaker(name, what string, threshold int, interval time.Duration, hook func(name, from, to string)) *breaker {
	b := &breaker{what: what, interval: interval}
	limit := uint32(min(max(threshold, 1), math.MaxUint32)) // #nosec G115 -- clamped
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        name,
		MaxRequests: 1, // one probe when half-open
		Timeout:     interval,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= limit },
		IsExcluded:  func(err error) bool { return errors.Is(err, errNeutral) },
		// Called under gobreaker's lock: record, then tell the caller's hook.
		OnStateChange: func(_ string, from, to gobreaker.State) {
			b.mu.Lock()
			switch {
			case to == gobreaker.StateOpen && from == gobreaker.StateClosed:
				b.openedAt, b.streak = time.Now(), threshold
			case to == gobreaker.StateOpen: // the half-open probe failed
				b.openedAt, b.streak = time.Now(), b.streak+1
			}
			b.mu.Unlock()
			if hook != nil {
				hook(name, from.String(), to.String())
			}
		},
	})
	return b
}

// allow admits a call, which must report its verdict through done exactly once, or refuses it.
func (b *breaker) allow() (done func(error), err error) {
	done, err = b.cb.Allow()
	if err != nil {
		return nil, b.refused(errors.Is(err, gobreaker.ErrTooManyRequests))
	}
	return done, nil
}

// refuseIfOpen refuses a call at once while the breaker is open, before it waits for a
// slot. It admits nothing: allow still must.
func (b *breaker) refuseIfOpen() error {
	if b.cb.State() == gobreaker.StateOpen {
		return b.refused(false)
	}
	return nil
}

func (b *breaker) refused(halfOpen bool) *batch.Error {
	b.mu.Lock()
	openedAt, streak := b.openedAt, b.streak
	b.mu.Unlock()
	e := &batch.Error{Code: batch.CodeUpstreamUnavailable, Delivery: batch.NotSent, Err: batch.ErrCircuitOpen}
	if halfOpen {
		e.RetryAfter = halfOpenWait
		e.Detail = fmt.Sprintf("%s has failed %d times in a row; the gateway is letting one request through "+
			"to see whether it is back (circuit half-open), and did not send this one", b.what, streak)
		return e
	}
	e.RetryAfter = max(time.Until(openedAt.Add(b.interval)), time.Millisecond)
	e.Detail = fmt.Sprintf("%s has failed %d times in a row; the gateway stopped calling it for a while (circuit open)",
		b.what, streak)
	return e
}

func (b *breaker) state() string { return b.cb.State().String() }

// verdictOf judges a finished call. A call its caller cancelled (caller ended), or that
// failed before Concur's API was asked (!fromAPI: credentials, the wait for a slot), says
// nothing. Failing: every 5xx but the close's business 500, our own time-outs, connection
// failures, a 200 whose reading was cut or stalled. Neutral besides: a 429 (Concur is up but
// throttling; the retry honours its Retry-After), a refused host, an unparseable 200 (a shape
// problem, not an outage). Every other answer (4xx, 401/403 included) is healthy.
func verdictOf(caller context.Context, fromAPI bool, err error) (verdict error) {
	if err == nil {
		return nil
	}
	e, ok := errors.AsType[*batch.Error](err)
	if !fromAPI || !ok || caller.Err() != nil {
		return errNeutral
	}
	switch c := e.Code; {
	case c == batch.CodeUpstreamTimeout || c == batch.CodeUpstreamUnreachable,
		c == batch.CodeUpstreamUnavailable && e.Upstream != nil,
		c == batch.CodeUpstreamBadResponse && e.Upstream != nil && e.Upstream.Status >= 500:
		return errFailing
	case e.Upstream == nil, c == batch.CodeUpstreamRateLimited, c == batch.CodeUpstreamHostRefused:
		return errNeutral
	}
	return nil // healthy: Concur answered: a 4xx, a redirect, the no-reports 500
}

// busyWait is the Retry-After of a call that found no slot or rate token in time.
const busyWait = time.Second

// errQueueTimeout is the cancel cause of the bounded wait for a slot or a rate token.
var errQueueTimeout = errors.New("concur: no turn to call Concur within the time-out")

// limits caps what this process sends to Concur: at most cap(slots) calls in flight, and,
// when rate is set, no more than its rate of requests (token refreshes aside).
type limits struct {
	slots chan struct{}
	rate  *rate.Limiter // nil: no rate limit
	wait  time.Duration // the longest a call waits for its turn (Config.Timeout)
}

func newLimits(maxConcurrent int, perSecond float64, burst int, wait time.Duration) *limits {
	l := &limits{slots: make(chan struct{}, maxConcurrent), wait: wait}
	if perSecond > 0 {
		l.rate = rate.NewLimiter(rate.Limit(perSecond), burst)
	}
	return l
}

// acquire takes a slot, waiting at most l.wait and no longer than ctx lives (see notSent).
func (l *limits) acquire(ctx context.Context) (release func(), err error) {
	select {
	case l.slots <- struct{}{}:
		return l.release, nil
	default:
	}
	ctx, cancel := context.WithTimeoutCause(ctx, l.wait, errQueueTimeout)
	defer cancel()
	select {
	case l.slots <- struct{}{}:
		return l.release, nil
	case <-ctx.Done():
		return nil, l.notSent(ctx, fmt.Sprintf("the gateway already has %d requests to Concur in flight "+
			"and none ended within %v", cap(l.slots), l.wait))
	}
}

func (l *limits) release() { <-l.slots }

// pace waits for the rate limit, at most l.wait and no longer than ctx lives.
func (l *limits) pace(ctx context.Context) error {
	if l.rate == nil {
		return nil
	}
	ctx, cancel := context.WithTimeoutCause(ctx, l.wait, errQueueTimeout)
	defer cancel()
	if err := l.rate.Wait(ctx); err != nil {
		return l.notSent(ctx, fmt.Sprintf("the gateway's rate limit toward Concur (%g requests a second) "+
			"gave this request no turn in time", float64(l.rate.Limit())))
	}
	return nil
}

// notSent is the error of a call that gave up waiting for its turn. ctx is the bounded
// wait's context: when the caller's own context ended, the error wraps its error.
func (l *limits) notSent(ctx context.Context, busy string) *batch.Error {
	e := &batch.Error{Code: batch.CodeUpstreamUnavailable, RetryAfter: busyWait, Delivery: batch.NotSent,
		Detail: busy + "; nothing was sent to Concur", Err: errQueueTimeout}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, errQueueTimeout) {
		e.Detail = "the request ended while it waited for its turn to call Concur; nothing was sent to Concur"
		e.Err = ctx.Err()
	}
	return e
}

// retryPolicy says when a failed list or file call is tried again (never a close).
type retryPolicy struct {
	attempts int           // Config.MaxAttempts: tries per call, the first included
	budget   time.Duration // Config.RetryBudget: the whole call, waits included
	base     time.Duration // Config.RetryBaseDelay: the first back-off's upper bound
	maxWait  time.Duration // Config.RetryMaxDelay: the longest single wait, back-off or Retry-After
}

// next decides whether the n-th try's failure err is tried again, and after what wait.
// Retried: what verdictOf calls failing, and a 429 that says how long to wait. Never:
// another 4xx, a 429 without Retry-After (Concur asks to slow down without saying how much:
// the caller gets its 429 and a minute's Retry-After), a failure to get a token, a call not
// sent, the caller's own end, a Retry-After longer than maxWait. The wait is the
// Retry-After, else a back-off with full jitter; the next try must start before the
// deadline with at least a quarter of the time-out left, and before the caller's deadline.
func (p retryPolicy) next(ctx context.Context, n int, t tried, err error, deadline time.Time, timeout time.Duration) (time.Duration, bool) {
	throttled := batch.ErrorCode(err) == batch.CodeUpstreamRateLimited && t.wait > 0
	if n >= p.attempts || !t.api || ctx.Err() != nil || t.wait > p.maxWait ||
		(!throttled && verdictOf(ctx, true, err) != errFailing) {
		return 0, false
	}
	wait := cmp.Or(t.wait, backoff(p.base, p.maxWait, n))
	start := time.Now().Add(wait)
	if d, ok := ctx.Deadline(); deadline.Sub(start) < timeout/4 || (ok && !start.Before(d)) {
		return 0, false
	}
	return wait, true
}

// backoff is the n-th wait (n from 1), full jitter: uniform in [0, min(maxWait, base*2^(n-1))].
func backoff(base, maxWait time.Duration, n int) time.Duration {
	ceil := base
	for i := 1; i < n && ceil < maxWait; i++ {
		ceil *= 2
	}
	ceil = min(ceil, maxWait)
	if ceil <= 0 {
		return 0
	}
	return rand.N(ceil + 1) // #nosec G404 -- back-off jitter, not a secret
}

// sleep waits d, or less if ctx ends first (then it reports false).
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
