package config

import "time"

// ConcurRetryBudget is how long the Concur client may spend on one call with its retries:
// two time-outs.
func (c Config) ConcurRetryBudget() time.Duration { return 2 * c.ConcurTimeout }

// CloseBudget is the longest one close request may take, measured from when it began: a
// token refresh (a time-out), a refresh of the OPEN and CLOSED lists or the settling of an
// unknown outcome (a retry budget each list), the close with one renewal and retry (3
// time-outs), and after a not-found one more refresh (2 retry budgets) and close (3): 15
// time-outs. The server's write time-out, the close lease and the shutdown grace period
// derive from it. A request that uses up every bound at once (a token refresh that waits
// for another replica's, then a renewal and a not-found retry) has its call cut at the
// budget: its outcome is then unknown and settled from the batch list, never retried.
func (c Config) CloseBudget() time.Duration { return 7*c.ConcurTimeout + 4*c.ConcurRetryBudget() }

// CloseLease is how long a close holds its batch and its idempotency key: the longest
// close and a minute more. GATEWAY_IDEMPOTENCY_TTL must outlast it.
func (c Config) CloseLease() time.Duration { return c.CloseBudget() + time.Minute }

// ShutdownGrace is how long a shutdown lets in-flight requests (closes) finish.
func (c Config) ShutdownGrace() time.Duration { return c.CloseBudget() + 5*time.Second }

// Drain is how long a shutdown then waits, once the servers stopped, for what their
// callers left to be stored before the store closes: the rotated refresh token of a token
// refresh still running, and the close ends the store refused so far. Both drain at once,
// within this one window.
func (c Config) Drain() time.Duration { return 2 * c.ConcurTimeout }

// SpanFlush is how long a shutdown lastly waits for the buffered spans to be exported.
const SpanFlush = 5 * time.Second

// ShutdownBudget is the longest a shutdown can take after SIGTERM: the grace period, the
// drain and the span flush, one after the other. Whatever stops the gateway
// (Kubernetes' terminationGracePeriodSeconds, compose's stop_grace_period) must wait at
// least this long before it kills the process, or a close may be cut mid-flight and a
// rotated refresh token lost. With the default CONCUR_TIMEOUT of 60s it is 17m10s.
func (c Config) ShutdownBudget() time.Duration {
	return c.ShutdownGrace() + c.Drain() + SpanFlush
}
