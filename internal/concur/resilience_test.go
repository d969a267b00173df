package concur

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/google/go-cmp/cmp"
)

// The back-off grows with full jitter and never exceeds its cap.
func TestBackoff(t *testing.T) {
	t.Parallel()
	base, capped := 100*time.Millisecond, time.Second
	for n, ceil := range map[int]time.Duration{1: base, 2: 2 * base, 3: 4 * base, 5: capped, 50: capped} {
		for range 200 {
			if d := backoff(base, capped, n); d < 0 || d > ceil {
				t.Fatalf("backoff(n=%d) = %v, want within [0, %v]", n, d, ceil)
			}
		}
	}
	if d := backoff(0, capped, 3); d != 0 {
		t.Errorf("backoff with a zero base = %v", d)
	}
}

// Each kind of outage opens the breaker after exactly BreakerThreshold consecutive failures;
// then every call is refused at once, with a Retry-After, and nothing reaches Concur.
func TestBreakerOpensAfterConsecutiveFailures(t *testing.T) {
	t.Parallel()
	const threshold = 3
	tests := []struct {
		name    string
		op      operation
		fail    step // nil: Concur is unreachable (connection refused)
		timeout time.Duration
	}{
		{name: "list 503", op: opList, fail: serveStatus(503)},
		{name: "list 500 empty", op: opList, fail: serveEmpty(500)},
		{name: "list 500 with a message", op: opList, fail: serveStatus(500)},
		{name: "list 502 html", op: opList, fail: serveHTML(502)},
		{name: "list 504", op: opList, fail: serveEmpty(504)},
		{name: "list time-out", op: opList, fail: serveStall, timeout: 200 * time.Millisecond},
		{name: "list reset", op: opList, fail: serveReset},
		{name: "list connection refused", op: opList},
		{name: "close 503", op: opClose, fail: serveStatus(503)},
		{name: "close 500 empty", op: opClose, fail: serveEmpty(500)},
		{name: "close 502 html", op: opClose, fail: serveHTML(502)},
		{name: "close time-out", op: opClose, fail: serveStall, timeout: 200 * time.Millisecond},
		{name: "close reset", op: opClose, fail: serveReset},
		{name: "file 503", op: opFile, fail: serveStatus(503)},
		{name: "file reset", op: opFile, fail: serveReset},
		{name: "file time-out before headers", op: opFile, fail: serveStall, timeout: 200 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newScripted(t, serveOK)
			base := s.srv.URL
			if tt.fail == nil {
				base = closedURL(t)
			} else {
				s.def = tt.fail // no request has come yet
			}
			var tr transitions
			c, sent := newResilient(t, base, func(c *Config) {
				c.BreakerThreshold, c.OnBreakerStateChange = threshold, tr.hook
				if tt.timeout > 0 {
					c.Timeout = tt.timeout
				}
			})
			for i := range threshold {
				err := invoke(t.Context(), c, base, tt.op)
				if err == nil || errors.Is(err, batch.ErrCircuitOpen) {
					t.Fatalf("call %d: err = %v, want the outage itself", i+1, err)
				}
			}
			if got := c.BreakerState(BreakerAPI); got != BreakerOpen {
				t.Fatalf("after %d failures the breaker is %s, want open", threshold, got)
			}
			for _, op := range []operation{opList, opClose, opFile} {
				e := wantRefused(t, invoke(t.Context(), c, base, op))
				if e.RetryAfter > time.Minute || !strings.Contains(e.Detail, "3 times in a row") ||
					!strings.Contains(e.Detail, "circuit open") {
					t.Errorf("refusal: RetryAfter %v, Detail %q", e.RetryAfter, e.Detail)
				}
			}
			if n := sent.n.Load(); n != threshold {
				t.Errorf("the client sent %d requests, want %d: nothing while open", n, threshold)
			}
			if tt.fail != nil && s.total() != threshold {
				t.Errorf("Concur received %d requests, want %d", s.total(), threshold)
			}
			if diff := cmp.Diff([]string{"concur-api: closed -> open"}, tr.list()); diff != "" {
				t.Errorf("state changes (-want +got):\n%s", diff)
			}
			wantBreaker(t, c, BreakerToken, BreakerClosed) // the API failed, not the token endpoint
		})
	}
}

// Concur's business answers, throttling, unreadable 200s and the caller's own end say
// nothing about an outage: the breaker stays closed however many there are.
func TestBreakerIgnoresAnswersAndCallers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		op     operation
		answer step
		cancel bool // the caller gives up once the request has reached Concur
	}{
		{name: "400", op: opList, answer: serveStatus(400)},
		{name: "401", op: opList, answer: serveStatus(401)},
		{name: "403", op: opClose, answer: serveStatus(403)},
		{name: "404 close", op: opClose, answer: serveStatus(404)},
		{name: "404 file", op: opFile, answer: serveStatus(404)},
		{name: "409", op: opClose, answer: serveStatus(409)},
		{name: "429", op: opList, answer: serveStatus(429)},
		{name: "429 with Retry-After", op: opClose, answer: serveStatus(429, "Retry-After", "30")},
		{name: "close no-reports 500", op: opClose, answer: serveNoReports},
		{name: "redirect", op: opList, answer: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		}},
		{name: "unreadable 200", op: opList, answer: serveGarbage},
		{name: "caller gives up on a list", op: opList, answer: serveStall, cancel: true},
		{name: "caller gives up on a file", op: opFile, answer: serveStall, cancel: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			arrived := make(chan struct{})
			answer := tt.answer
			if tt.cancel {
				answer = serveHeld(arrived, nil, serveOK)
			}
			s := newScripted(t, answer)
			c, _ := newResilient(t, s.srv.URL, func(c *Config) { c.BreakerThreshold = 2 })
			const calls = 5
			for i := range calls {
				ctx, cancel := context.WithCancel(t.Context())
				if tt.cancel {
					go func() {
						select {
						case <-arrived:
						case <-ctx.Done():
						}
						cancel()
					}()
				}
				err := invoke(ctx, c, s.srv.URL, tt.op)
				cancel()
				if err == nil || errors.Is(err, batch.ErrCircuitOpen) {
					t.Fatalf("call %d: err = %v, want the answer's own error", i+1, err)
				}
			}
			wantBreaker(t, c, BreakerAPI, BreakerClosed)
			if s.total() != calls {
				t.Errorf("Concur received %d requests, want %d", s.total(), calls)
			}
		})
	}
}

// Consecutive means consecutive: an answer resets the count, what says nothing does not.
func TestBreakerCountsConsecutiveFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		steps []step
		want  string
	}{
		{"two failures", []step{serveStatus(503), serveStatus(503)}, BreakerOpen},
		{"an answer between", []step{serveStatus(503), serveStatus(404), serveStatus(503)}, BreakerClosed},
		{"a success between", []step{serveStatus(503), serveOK, serveStatus(503)}, BreakerClosed},
		{"throttling between", []step{serveStatus(503), serveStatus(429), serveStatus(503)}, BreakerOpen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newScripted(t, serveOK, tt.steps...)
			c, _ := newResilient(t, s.srv.URL, func(c *Config) { c.BreakerThreshold = 2 })
			for range tt.steps {
				_ = invoke(t.Context(), c, s.srv.URL, opList)
			}
			wantBreaker(t, c, BreakerAPI, tt.want)
		})
	}
}

// Half-open lets exactly one probe through; the calls that come meanwhile are refused at
// once. A probe that succeeds closes the breaker, one that fails opens it again.
func TestBreakerHalfOpenProbe(t *testing.T) {
	t.Parallel()
	for _, probeOK := range []bool{true, false} {
		name := map[bool]string{true: "probe succeeds", false: "probe fails"}[probeOK]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			arrived, release := make(chan struct{}), make(chan struct{})
			probeAnswer := serveStatus(503)
			if probeOK {
				probeAnswer = serveOK
			}
			s := newScripted(t, serveOK, serveStatus(503), serveHeld(arrived, release, probeAnswer))
			var tr transitions
			c, _ := newResilient(t, s.srv.URL, func(c *Config) {
				c.BreakerThreshold, c.BreakerOpenInterval, c.OnBreakerStateChange = 1, 50*time.Millisecond, tr.hook
			})
			if err := invoke(t.Context(), c, s.srv.URL, opList); err == nil {
				t.Fatal("the first call succeeded, want a 503")
			}
			waitState(t, c, BreakerAPI, BreakerHalfOpen)

			probe := make(chan error, 1)
			go func() { probe <- invoke(context.Background(), c, s.srv.URL, opClose) }()
			awaitArrival(t, arrived, probe)
			var wg sync.WaitGroup
			for _, op := range []operation{opList, opList, opClose, opFile, opFile} {
				wg.Go(func() {
					e := wantRefused(t, invoke(t.Context(), c, s.srv.URL, op))
					if e.RetryAfter != halfOpenWait || !strings.Contains(e.Detail, "half-open") {
						t.Errorf("refusal while probing: RetryAfter %v, Detail %q", e.RetryAfter, e.Detail)
					}
				})
			}
			wg.Wait()
			if got := s.total(); got != 2 {
				t.Errorf("Concur received %d requests while half-open, want 2 (the failure and the one probe)", got)
			}
			close(release)
			err := <-probe
			want := []string{"concur-api: closed -> open", "concur-api: open -> half-open"}
			if probeOK {
				if err != nil {
					t.Fatalf("probe: %v", err)
				}
				want = append(want, "concur-api: half-open -> closed")
				if err := invoke(t.Context(), c, s.srv.URL, opList); err != nil {
					t.Errorf("after the probe closed the breaker: %v", err)
				}
				if got := s.total(); got != 3 {
					t.Errorf("Concur received %d requests, want 3", got)
				}
			} else if err == nil {
				t.Fatal("the failing probe succeeded")
			} else {
				want = append(want, "concur-api: half-open -> open")
			}
			// Read before BreakerState, which may move a reopened breaker on to half-open.
			if diff := cmp.Diff(want, tr.list()); diff != "" {
				t.Errorf("state changes (-want +got):\n%s", diff)
			}
			if probeOK && c.BreakerState(BreakerAPI) != BreakerClosed {
				t.Errorf("breaker = %s after a successful probe", c.BreakerState(BreakerAPI))
			}
		})
	}
}

// A probe that says nothing (here: its caller gives up) leaves the breaker half-open and
// lets the next call probe: half-open never waits forever for a verdict.
func TestBreakerHalfOpenNeutralProbe(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{})
	s := newScripted(t, serveOK, serveStatus(503), serveHeld(arrived, nil, serveOK))
	c, _ := newResilient(t, s.srv.URL, func(c *Config) {
		c.BreakerThreshold, c.BreakerOpenInterval = 1, 50*time.Millisecond
	})
	_ = invoke(t.Context(), c, s.srv.URL, opList)
	waitState(t, c, BreakerAPI, BreakerHalfOpen)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		select {
		case <-arrived:
		case <-ctx.Done():
		}
		cancel()
	}()
	if err := invoke(ctx, c, s.srv.URL, opList); !errors.Is(err, context.Canceled) {
		t.Fatalf("probe: err = %v, want the caller's cancellation", err)
	}
	if got := c.BreakerState(BreakerAPI); got != BreakerHalfOpen {
		t.Fatalf("breaker = %s after a probe that said nothing, want half-open", got)
	}
	if err := invoke(t.Context(), c, s.srv.URL, opList); err != nil {
		t.Fatalf("next probe: %v", err)
	}
	wantBreaker(t, c, BreakerAPI, BreakerClosed)
}

// A call that queued for a slot while the breaker was closed, and got it after the breaker
// opened, is refused: it is not sent to a Concur that just failed.
func TestBreakerRefusesCallThatQueuedWhileClosed(t *testing.T) {
	t.Parallel()
	arrived, release := make(chan struct{}), make(chan struct{})
	s := newScripted(t, serveOK, serveHeld(arrived, release, serveStatus(503)))
	c, _ := newResilient(t, s.srv.URL, func(c *Config) { c.BreakerThreshold, c.MaxConcurrent = 1, 1 })
	first := make(chan error, 1)
	go func() { first <- invoke(t.Context(), c, s.srv.URL, opList) }()
	awaitArrival(t, arrived, first) // the first call holds the only slot
	queued := make(chan error, 1)
	go func() { queued <- invoke(t.Context(), c, s.srv.URL, opList) }()
	time.Sleep(50 * time.Millisecond) // let it queue (if it has not, it is refused at once: same outcome)
	close(release)
	if err := <-first; batch.ErrorCode(err) != batch.CodeUpstreamUnavailable || errors.Is(err, batch.ErrCircuitOpen) {
		t.Fatalf("first call: %v, want Concur's 503", err)
	}
	wantRefused(t, <-queued)
	if got := s.total(); got != 1 {
		t.Errorf("Concur received %d requests, want 1", got)
	}
}

// An open breaker refuses at once: a call does not first wait for its turn (here: the
// rate limit's, which would not come within the time-out).
func TestBreakerRefusesBeforeWaitingForATurn(t *testing.T) {
	t.Parallel()
	s := newScripted(t, serveStatus(503))
	c, _ := newResilient(t, s.srv.URL, func(c *Config) { c.BreakerThreshold, c.RateLimit = 1, 0.001 })
	wantCode(t, invoke(t.Context(), c, s.srv.URL, opList), batch.CodeUpstreamUnavailable)
	e := wantRefused(t, invoke(t.Context(), c, s.srv.URL, opList))
	if !strings.Contains(e.Detail, "circuit open") {
		t.Errorf("Detail = %q, want the circuit's", e.Detail)
	}
	if got := s.total(); got != 1 {
		t.Errorf("Concur received %d requests, want 1", got)
	}
}

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
				!errors.Is(err, context.DeadlineExceeded) || errors.Is(err, batch.ErrCircuitOpen) {
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
	wantBreaker(t, c, BreakerAPI, BreakerClosed) // calls that were not sent do not count
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
	wantBreaker(t, c, BreakerAPI, BreakerClosed)
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
	cfg.RetryBudget, cfg.RetryBaseDelay, cfg.RetryMaxDelay, cfg.RateLimit, cfg.RateBurst = time.Minute, time.Millisecond, time.Second, 0.5, 3
	if c, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	want = retryPolicy{attempts: 2, budget: time.Minute, base: time.Millisecond, maxWait: time.Second}
	if c.retry != want || c.limits.rate == nil || c.limits.rate.Burst() != cfg.RateBurst {
		t.Errorf("client: retry %+v, rate %v; want %+v and a burst of %d", c.retry, c.limits.rate, want, cfg.RateBurst)
	}
}

// The token endpoint has its own breaker: its outage opens it, refuses refreshes without
// sending them (the refresh token is not spent), leaves the API breaker closed, and a
// successful probe closes it.
func TestTokenBreaker(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.failTokens("status", http.StatusServiceUnavailable, "")
	var tr transitions
	c, _ := newClient(t, f, func(c *Config) {
		// Long enough that the breaker is still open for the third call, even under load.
		c.BreakerThreshold, c.BreakerOpenInterval, c.OnBreakerStateChange = 2, time.Second, tr.hook
	})
	t.Cleanup(c.CloseIdleConnections)
	for i := range 2 {
		_, err := listOf(t.Context(), c, batch.ListOpen)
		if e := wantCode(t, err, batch.CodeUpstreamUnavailable); errors.Is(err, batch.ErrCircuitOpen) || e.Upstream == nil {
			t.Fatalf("call %d: %v, want the token endpoint's 503", i+1, err)
		}
	}
	_, err := listOf(t.Context(), c, batch.ListOpen)
	if e := wantRefused(t, err); !strings.Contains(e.Detail, "token endpoint") {
		t.Errorf("Detail = %q, want it to name the token endpoint", e.Detail)
	}
	if n := f.tokenCalls(); n != 2 {
		t.Errorf("token endpoint received %d requests, want 2", n)
	}
	if c.BreakerState(BreakerToken) != BreakerOpen || c.BreakerState(BreakerAPI) != BreakerClosed {
		t.Errorf("token breaker %s, API breaker %s; want open and closed",
			c.BreakerState(BreakerToken), c.BreakerState(BreakerAPI))
	}
	if f.apiCalls() != 0 {
		t.Errorf("the API received %d calls without a token", f.apiCalls())
	}

	f.ClearFault()
	waitState(t, c, BreakerToken, BreakerHalfOpen)
	if _, err := listOf(t.Context(), c, batch.ListOpen); err != nil {
		t.Fatalf("after the token endpoint recovered: %v", err)
	}
	if diff := cmp.Diff([]string{"rt-0"}, f.redeemedTokens()); diff != "" {
		t.Errorf("redeemed refresh tokens (-want +got):\n%s", diff)
	}
	want := []string{"concur-token: closed -> open", "concur-token: open -> half-open", "concur-token: half-open -> closed"}
	if diff := cmp.Diff(want, tr.list()); diff != "" {
		t.Errorf("state changes (-want +got):\n%s", diff)
	}
}

// slowLock is a credential store whose lock takes a while to get (another replica renewing).
type slowLock struct {
	CredentialStore
	wait time.Duration
}

func (s slowLock) UpdateCredentials(ctx context.Context, fn func(Credentials, bool) (*Credentials, error)) (Credentials, error) {
	select {
	case <-time.After(s.wait):
	case <-ctx.Done():
	}
	return s.CredentialStore.UpdateCredentials(ctx, fn)
}

// A token call cut short because the credential store's lock took most of the refresh
// budget is not held against the token endpoint; one that had the whole time-out is.
func TestTokenBreakerLockWait(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		lock time.Duration
		want string
	}{
		{"whole time-out", 0, BreakerOpen},
		{"cut short by the lock wait", 500 * time.Millisecond, BreakerClosed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.slowTokens(time.Minute) // the client leaves first
			c, _ := newClient(t, f, func(c *Config) {
				c.Timeout, c.BreakerThreshold = 400*time.Millisecond, 1
				c.Credentials = slowLock{CredentialStore: newMemCredentials(), wait: tt.lock}
			})
			t.Cleanup(c.CloseIdleConnections)
			_, err := listOf(t.Context(), c, batch.ListOpen)
			if err == nil {
				t.Fatal("list succeeded without a token")
			}
			if got := c.BreakerState(BreakerToken); got != tt.want {
				t.Errorf("token breaker = %s, want %s (err %v)", got, tt.want, err)
			}
		})
	}
}
