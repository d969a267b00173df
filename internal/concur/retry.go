package concur

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// retryPolicy says when a failed list or file call is tried again. A close is never
// retried: closing a closed batch regenerates its payment file.
type retryPolicy struct {
	attempts int           // Config.MaxAttempts: tries per call, the first included
	budget   time.Duration // Config.RetryBudget: the whole call, waits included
	base     time.Duration // Config.RetryBaseDelay: the first back-off's upper bound
	maxWait  time.Duration // Config.RetryMaxDelay: the longest single wait, back-off or Retry-After
}

// tried is what one try of a call tells the breaker and the retry policy besides its error.
type tried struct {
	api bool // the failure came from Concur's API, not from getting a token or a turn
	// consumer: the error is the list consumer's own, returned as is (not Concur's failure)
	consumer bool
	wait     time.Duration // the Retry-After Concur sent with a failure; 0: none (or unusable)
}

// exchange is one try of a call, within timeout; errors are *batch.Error.
type exchange func(ctx context.Context, timeout time.Duration) (tried, error)

// call runs try under the breaker and the concurrency cap, and, for list and file, again
// while the policy allows. Every try counts toward the breaker. Its error says the
// strongest Delivery of all tries (see classify.go): once a try may have reached Concur,
// the call may have.
func (c *Client) call(ctx context.Context, op operation, try exchange) error {
	deadline := time.Now().Add(c.retry.budget)
	strongest := batch.NotSent
	for n := 1; ; n++ {
		timeout := c.timeout
		if n > 1 {
			timeout = min(timeout, time.Until(deadline))
		}
		start := time.Now()
		t, err := c.once(ctx, timeout, try)
		observeTry(c.obs, ctx, op.label(), start, t.api || err == nil, err)
		if err == nil {
			return nil
		}
		if t.consumer {
			return err
		}
		if d := batch.DeliveryOf(err); rank(d) > rank(strongest) {
			strongest = d
		}
		wait, ok := c.retry.next(ctx, op, n, t, err, deadline, c.timeout)
		if !ok || !sleep(ctx, wait) {
			return withDelivery(err, strongest)
		}
	}
}

// once is one try through a slot, the rate limit and the breaker, in that order: the
// breaker admits a call only once it can be sent at once, so that a call that queued for
// its turn while the breaker opened is refused rather than sent to a failing Concur, and a
// half-open breaker's one probe is the only request in flight that it admitted. An open
// breaker refuses at once, without the wait for a turn.
func (c *Client) once(ctx context.Context, timeout time.Duration, try exchange) (t tried, err error) {
	if err := c.api.refuseIfOpen(); err != nil {
		return tried{}, err
	}
	release, err := c.limits.acquire(ctx)
	if err != nil {
		return tried{}, err
	}
	defer release()
	if err := c.limits.pace(ctx); err != nil {
		return tried{}, err
	}
	done, err := c.api.allow()
	if err != nil {
		return tried{}, err
	}
	v := neutral
	defer func() { done(v) }() // also when try panics: a half-open breaker must not wait forever
	t, err = try(ctx, timeout)
	v = verdictOf(ctx, t.api, err)
	return t, err
}

// next decides whether the n-th try's failure err is tried again, and after what wait.
// Retried: 503 and other 5xx, time-outs and connection failures of the API call, and a 429
// that says how long to wait. Never: a close, another 4xx, a 429 without Retry-After (Concur
// asks to slow down without saying how much: the caller gets its 429 and a minute's
// Retry-After instead of a sub-second retry), a failure to get a token, a refused or
// not-sent call, the caller's own end. The wait is the Retry-After when Concur sent one (a
// longer one than maxWait ends the retries), else a back-off with full jitter; the next try
// must start before the deadline with at least a quarter of the time-out left, and before
// the caller's own deadline.
func (p retryPolicy) next(ctx context.Context, op operation, n int, t tried, err error,
	deadline time.Time, timeout time.Duration) (time.Duration, bool) {
	if op == opClose || n >= p.attempts || !t.api || ctx.Err() != nil || !retryable(err) {
		return 0, false
	}
	if batch.ErrorCode(err) == batch.CodeUpstreamRateLimited && t.wait == 0 {
		return 0, false
	}
	wait := backoff(p.base, p.maxWait, n)
	if t.wait > 0 {
		if t.wait > p.maxWait {
			return 0, false
		}
		wait = t.wait
	}
	start := time.Now().Add(wait)
	if deadline.Sub(start) < timeout/4 {
		return 0, false
	}
	if d, ok := ctx.Deadline(); ok && !start.Before(d) {
		return 0, false
	}
	return wait, true
}

// retryable reports whether err is an outage or throttling answer of Concur's API.
func retryable(err error) bool {
	e, ok := errors.AsType[*batch.Error](err)
	if !ok {
		return false
	}
	switch e.Code {
	case batch.CodeUpstreamRateLimited, batch.CodeUpstreamTimeout, batch.CodeUpstreamUnreachable:
		return true
	case batch.CodeUpstreamUnavailable:
		return e.Upstream != nil // a 503, not a call that was never sent
	case batch.CodeUpstreamBadResponse:
		return e.Upstream != nil && e.Upstream.Status >= 500
	}
	return false
}

// backoff is the n-th wait (n from 1): uniformly random in [0, min(maxWait, base*2^(n-1))].
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
