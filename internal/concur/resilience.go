package concur

import (
	"cmp"
	"math"
	"time"
)

// How the Client degrades when Concur misbehaves.
//
// Breakers. Two gobreaker breakers per Client: BreakerAPI around every list, close and
// file call, and BreakerToken around the token endpoint. The token endpoint has its own
// because a refresh is single-flight and detached from its callers: its failures are
// counted once per request actually sent, not once per caller waiting for it, and a dead
// token endpoint does not hide a healthy API (callers with a live token go on). An API call
// is admitted by BreakerAPI before it asks for a token, so an open API breaker triggers no
// refresh either; and only once it holds its slot and its rate turn, so that a call that
// queued while the breaker opened is refused, not sent, and a half-open breaker's probe is
// the one request it admitted. A breaker opens after Config.BreakerThreshold consecutive
// failures (see verdictOf), refuses calls for Config.BreakerOpenInterval with
// upstream_unavailable, ErrCircuitOpen and a Retry-After of the time left (at once, without
// queueing for a slot), then lets one probe through: success closes it, failure opens it
// again, and a probe that says nothing (the caller left, 429, nothing sent) lets the next
// call probe. A refused call was never sent: for a close that is "Concur did not act".
//
// Retries (retry.go). Only the batch list and a file download before its body are tried
// again, on 503, other 5xx, time-outs, connection failures and a 429 with a Retry-After
// (one without is not retried: Concur asks to slow down); never a close after its request
// may have left (a closed batch closed again regenerates its payment file), never on
// another 4xx, never after a failure to get a token. Each try is admitted by the breaker
// and counts toward it. Tries stop at Config.MaxAttempts, at Config.RetryBudget, and when
// the caller's context ends.
//
// Limits (limit.go). At most Config.MaxConcurrent calls in flight to Concur per Client
// (a token refresh runs within its caller's slot), and, with Config.RateLimit, a paced
// request rate. A call that gets no turn within Timeout, or whose context ends while it
// waits, fails with upstream_unavailable and was not sent; it does not count toward the
// breaker.

// resilience is Config's resilience settings with the defaults applied.
type resilience struct {
	threshold     int
	openInterval  time.Duration
	maxConcurrent int
	burst         int
	retry         retryPolicy
}

func resilienceOf(cfg Config, timeout time.Duration) resilience {
	return resilience{
		threshold:     cmp.Or(cfg.BreakerThreshold, DefaultBreakerThreshold),
		openInterval:  cmp.Or(cfg.BreakerOpenInterval, DefaultBreakerOpenInterval),
		maxConcurrent: cmp.Or(cfg.MaxConcurrent, DefaultMaxConcurrent),
		burst:         cmp.Or(cfg.RateBurst, DefaultRateBurst),
		retry: retryPolicy{
			attempts: cmp.Or(cfg.MaxAttempts, DefaultMaxAttempts),
			budget:   cmp.Or(cfg.RetryBudget, 2*timeout),
			base:     cmp.Or(cfg.RetryBaseDelay, DefaultRetryBaseDelay),
			maxWait:  cmp.Or(cfg.RetryMaxDelay, DefaultRetryMaxDelay),
		},
	}
}

// maxBreakerThreshold keeps the threshold within gobreaker's uint32 counts.
const maxBreakerThreshold = 1 << 20

func validateResilience(cfg Config, bad func(field, why string)) {
	for _, f := range []struct {
		name string
		neg  bool
	}{
		{"BreakerThreshold", cfg.BreakerThreshold < 0},
		{"BreakerOpenInterval", cfg.BreakerOpenInterval < 0},
		{"MaxAttempts", cfg.MaxAttempts < 0},
		{"RetryBudget", cfg.RetryBudget < 0},
		{"RetryBaseDelay", cfg.RetryBaseDelay < 0},
		{"RetryMaxDelay", cfg.RetryMaxDelay < 0},
		{"MaxConcurrent", cfg.MaxConcurrent < 0},
		{"RateBurst", cfg.RateBurst < 0},
	} {
		if f.neg {
			bad(f.name, "must not be negative")
		}
	}
	if cfg.BreakerThreshold > maxBreakerThreshold {
		bad("BreakerThreshold", "is too large")
	}
	if cfg.RateLimit < 0 || math.IsNaN(cfg.RateLimit) || math.IsInf(cfg.RateLimit, 0) {
		bad("RateLimit", "must be a finite number of requests a second, 0 for none")
	}
}
