package concur

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/time/rate"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

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

// acquire takes a slot, waiting at most l.wait and no longer than ctx lives. The error is
// an upstream_unavailable *batch.Error that says nothing was sent; it wraps ctx.Err() when
// the caller ended first.
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
	cause := context.Cause(ctx)
	if cause == nil || errors.Is(cause, errQueueTimeout) {
		return &batch.Error{Code: batch.CodeUpstreamUnavailable, RetryAfter: busyWait, Delivery: batch.NotSent,
			Detail: busy + "; nothing was sent to Concur", Err: errQueueTimeout}
	}
	return &batch.Error{Code: batch.CodeUpstreamUnavailable, RetryAfter: busyWait, Delivery: batch.NotSent,
		Detail: "the request ended while it waited for its turn to call Concur; nothing was sent to Concur",
		Err:    ctx.Err()}
}
