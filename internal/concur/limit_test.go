package concur

import (
	"context"
	"errors"
	"math"
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

func TestResilienceConfig(t *testing.T) {
	t.Parallel()
	valid := Config{BaseURL: "https://us.api.concursolutions.com", AccessToken: "static-token"}
	tests := []struct {
		name   string
		mutate func(*Config)
		field  string // the field the error names; "" for a valid config
	}{
		{"zero values take defaults", func(*Config) {}, ""},
		{"all set", func(c *Config) {
			c.BreakerThreshold, c.BreakerOpenInterval, c.MaxAttempts, c.RetryBudget = 1, time.Second, 1, time.Second
			c.RetryBaseDelay, c.RetryMaxDelay, c.MaxConcurrent, c.RateLimit, c.RateBurst = 1, 1, 1, 0.5, 2
		}, ""},
		{"negative threshold", func(c *Config) { c.BreakerThreshold = -1 }, "BreakerThreshold"},
		{"huge threshold", func(c *Config) { c.BreakerThreshold = math.MaxInt32 }, "BreakerThreshold"},
		{"negative open interval", func(c *Config) { c.BreakerOpenInterval = -time.Second }, "BreakerOpenInterval"},
		{"negative attempts", func(c *Config) { c.MaxAttempts = -1 }, "MaxAttempts"},
		{"negative budget", func(c *Config) { c.RetryBudget = -time.Second }, "RetryBudget"},
		{"negative base delay", func(c *Config) { c.RetryBaseDelay = -time.Second }, "RetryBaseDelay"},
		{"negative max delay", func(c *Config) { c.RetryMaxDelay = -time.Second }, "RetryMaxDelay"},
		{"negative concurrency", func(c *Config) { c.MaxConcurrent = -1 }, "MaxConcurrent"},
		{"negative rate", func(c *Config) { c.RateLimit = -1 }, "RateLimit"},
		{"NaN rate", func(c *Config) { c.RateLimit = math.NaN() }, "RateLimit"},
		{"infinite rate", func(c *Config) { c.RateLimit = math.Inf(1) }, "RateLimit"},
		{"negative burst", func(c *Config) { c.RateBurst = -1 }, "RateBurst"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := valid
			tt.mutate(&cfg)
			c, err := New(cfg)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("New: %v, want an error naming %s", err, tt.field)
			}
			if c != nil {
				t.Error("New returned a client with an error")
			}
		})
	}
	c, err := New(valid)
	if err != nil {
		t.Fatal(err)
	}
	want := resilience{threshold: 5, openInterval: 30 * time.Second, maxConcurrent: 8, burst: 1,
		retry: retryPolicy{attempts: 3, budget: 2 * DefaultTimeout, base: 250 * time.Millisecond, maxWait: 10 * time.Second}}
	if got := resilienceOf(valid, DefaultTimeout); got != want {
		t.Errorf("defaults = %+v, want %+v", got, want)
	}
	if cap(c.limits.slots) != 8 || c.limits.rate != nil || c.retry != want.retry {
		t.Errorf("client: %d slots, rate %v, retry %+v", cap(c.limits.slots), c.limits.rate, c.retry)
	}
}
