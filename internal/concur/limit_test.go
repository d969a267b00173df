package concur

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// With a slow Concur, at most MaxConcurrent requests are in flight; the others wait their
// turn and go out as slots free.
func TestMaxConcurrentCapsRequestsInFlight(t *testing.T) {
	t.Parallel()
	s := newScripted(t, serveDelayed(30*time.Millisecond, serveOK))
	c, _ := newResilient(t, s.srv.URL, func(c *Config) { c.MaxConcurrent = 2 })
	var wg sync.WaitGroup
	for i := range 8 {
		op := []operation{opList, opClose, opFile}[i%3]
		wg.Go(func() {
			if err := invoke(t.Context(), c, s.srv.URL, op); err != nil {
				t.Errorf("%v: %v", op, err)
			}
		})
	}
	wg.Wait()
	if got := s.total(); got != 8 {
		t.Errorf("Concur received %d requests, want 8", got)
	}
	if got := s.maxInFlight(); got < 1 || got > 2 {
		t.Errorf("Concur had %d requests in flight at once, want at most 2", got)
	}
}

// A call that gets no slot before its caller's deadline fails with upstream_unavailable,
// says nothing was sent, sends nothing, and does not count toward the breaker.
func TestMaxConcurrentWaitEndsWithCaller(t *testing.T) {
	t.Parallel()
	arrived, release := make(chan struct{}), make(chan struct{})
	s := newScripted(t, serveHeld(arrived, release, serveOK))
	c, _ := newResilient(t, s.srv.URL, func(c *Config) {
		c.MaxConcurrent, c.BreakerThreshold, c.Timeout = 2, 1, 10*time.Second
	})
	held := make(chan error, 2)
	for range 2 {
		go func() { held <- invoke(t.Context(), c, s.srv.URL, opList) }()
		awaitArrival(t, arrived, held)
	}
	var wg sync.WaitGroup
	for _, op := range []operation{opList, opClose, opFile} {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
			defer cancel()
			err := invoke(ctx, c, s.srv.URL, op)
			e, ok := errors.AsType[*batch.Error](err)
			if !ok || e.Code != batch.CodeUpstreamUnavailable || !strings.Contains(e.Detail, "nothing was sent") ||
				!errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrCircuitOpen) {
				t.Errorf("%v without a slot: %v, want upstream_unavailable, nothing sent, the caller's deadline", op, err)
			}
		})
	}
	wg.Wait()
	if got := s.total(); got != 2 {
		t.Errorf("Concur received %d requests, want the 2 that had slots", got)
	}
	close(release)
	for range 2 {
		if err := <-held; err != nil {
			t.Errorf("call with a slot: %v", err)
		}
	}
	if got := c.BreakerState(BreakerAPI); got != BreakerClosed {
		t.Errorf("breaker = %s: calls that were not sent counted as failures", got)
	}
}

// The wait for a slot is bounded by the time-out even when the caller would wait longer.
func TestLimitsWaitBounded(t *testing.T) {
	t.Parallel()
	l := newLimits(1, 0, 1, 50*time.Millisecond)
	release, err := l.acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.acquire(context.Background())
	e, ok := errors.AsType[*batch.Error](err)
	if !ok || e.Code != batch.CodeUpstreamUnavailable || !errors.Is(err, errQueueTimeout) ||
		!strings.Contains(e.Detail, "nothing was sent") || e.RetryAfter <= 0 {
		t.Fatalf("acquire without a slot: %v, want upstream_unavailable, nothing sent, with a Retry-After", err)
	}
	release()
	release, err = l.acquire(context.Background())
	if err != nil {
		t.Fatalf("acquire after the release: %v", err)
	}
	release()
}

// RateLimit spaces the requests sent to Concur.
func TestRateLimitPaces(t *testing.T) {
	t.Parallel()
	s := newScripted(t, serveOK)
	c, _ := newResilient(t, s.srv.URL, func(c *Config) { c.RateLimit, c.RateBurst = 20, 1 })
	const calls = 6
	start := time.Now()
	var wg sync.WaitGroup
	for range calls {
		wg.Go(func() {
			if err := invoke(t.Context(), c, s.srv.URL, opList); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	// 20 a second with a burst of 1: the 6th request goes out 250ms after the first at best.
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("%d requests took %v, want them paced at 20 a second", calls, d)
	}
	if got := s.total(); got != calls {
		t.Errorf("Concur received %d requests, want %d", got, calls)
	}
}

// A call whose rate-limit turn would come after the time-out fails at once, unsent, and
// does not count toward the breaker.
func TestRateLimitNoTurn(t *testing.T) {
	t.Parallel()
	s := newScripted(t, serveOK)
	c, _ := newResilient(t, s.srv.URL, func(c *Config) {
		c.RateLimit, c.Timeout, c.BreakerThreshold = 0.001, time.Second, 1
	})
	if err := invoke(t.Context(), c, s.srv.URL, opList); err != nil {
		t.Fatal(err)
	}
	err := invoke(t.Context(), c, s.srv.URL, opClose)
	e, ok := errors.AsType[*batch.Error](err)
	if !ok || e.Code != batch.CodeUpstreamUnavailable || !strings.Contains(e.Detail, "rate limit") ||
		!strings.Contains(e.Detail, "nothing was sent") {
		t.Fatalf("second call: %v, want upstream_unavailable from the rate limit, nothing sent", err)
	}
	if got := s.total(); got != 1 {
		t.Errorf("Concur received %d requests, want 1", got)
	}
	if got := c.BreakerState(BreakerAPI); got != BreakerClosed {
		t.Errorf("breaker = %s", got)
	}
}

// The knobs internal/config declares are used as given; concur's own take its defaults
// when zero.
func TestResilienceConfig(t *testing.T) {
	t.Parallel()
	cfg := Config{BaseURL: "https://us.api.concursolutions.com", AccessToken: "static-token"}.withDefaults(time.Second)
	cfg.MaxAttempts, cfg.MaxConcurrent = 2, 3
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := retryPolicy{attempts: 2, budget: 2 * time.Second, base: DefaultRetryBaseDelay, maxWait: DefaultRetryMaxDelay}
	if cap(c.limits.slots) != 3 || c.limits.rate != nil || c.retry != want {
		t.Errorf("client: %d slots, rate %v, retry %+v; want 3, nil, %+v", cap(c.limits.slots), c.limits.rate, c.retry, want)
	}
	cfg.RetryBudget, cfg.RetryBaseDelay, cfg.RetryMaxDelay, cfg.RateLimit = time.Minute, time.Millisecond, time.Second, 0.5
	if c, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	want = retryPolicy{attempts: 2, budget: time.Minute, base: time.Millisecond, maxWait: time.Second}
	if c.retry != want || c.limits.rate == nil || c.limits.rate.Burst() != DefaultRateBurst {
		t.Errorf("client: retry %+v, rate %v; want %+v and a burst of %d", c.retry, c.limits.rate, want, DefaultRateBurst)
	}
}
