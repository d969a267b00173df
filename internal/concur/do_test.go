package concur

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/concursim"
)

func TestAcceptedContentTypes(t *testing.T) {
	t.Parallel()
	for _, ct := range []string{"application/xml", "text/xml; charset=utf-8", "application/vnd.concur+xml", "Application/XML;charset=\"utf-8\""} {
		t.Run(ct, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.serve(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", ct)
				fmt.Fprint(w, "<BatchStatus><Status>SUCCESS</Status></BatchStatus>")
			})
			c, _ := newClient(t, f, nil)
			if res, err := c.CloseBatch(t.Context(), batchURL(f.srv.URL)); err != nil || res.Status != "SUCCESS" {
				t.Fatalf("CloseBatch = %+v, %v", res, err)
			}
		})
	}
}

// The consumer's time (the store writing what the list holds) is not Concur's: a consumer
// slower than the whole time-out neither times the call out, nor has the list read again,
// nor counts against Concur in the breaker.
func TestListSlowConsumerNotChargedToConcur(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	serveList(f, 400) // over 64 KiB: the body is still being read when the consumer stalls
	c, _ := newClient(t, f, func(c *Config) {
		c.Timeout = 2 * time.Second // the decoding of the list, under -race on a loaded machine, fits in it
		c.MaxAttempts = 3
		c.BreakerThreshold = 1
		c.RetryBudget = 10 * time.Second
		c.RetryBaseDelay = time.Millisecond
	})
	n := 0
	err := c.ListBatches(t.Context(), batch.ListOpen, func(batch.Summary) error {
		if n++; n == 130 || n == 260 {
			time.Sleep(2200 * time.Millisecond) // one chunk's upsert on a busy store
		}
		return nil
	})
	if err != nil || n != 400 || f.apiCalls() != 1 || c.BreakerState(BreakerAPI) != "closed" {
		t.Errorf("err=%v, %d summaries, %d list calls, breaker %s; want nil, 400, 1, closed",
			err, n, f.apiCalls(), c.BreakerState(BreakerAPI))
	}
}

// newRetrying is a Client that tries a list or a download up to 3 times, against a scripted
// Concur that answers first, then as all is well; short gives it a 300ms time-out.
func newRetrying(t *testing.T, first step, short bool) (*scripted, *Client) {
	t.Helper()
	s := newScripted(t, serveOK, first)
	c, _ := newResilient(t, s.srv.URL, func(c *Config) {
		c.MaxAttempts, c.RetryBudget = 3, 10*time.Second
		if short {
			c.Timeout = 300 * time.Millisecond
		}
	})
	return s, c
}

// The batch list is tried again after an outage or a throttle that says how long to wait,
// and a Retry-After is honoured.
func TestListRetried(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		first     step
		leastWait time.Duration // the retry must not come sooner: the Retry-After
	}{
		{name: "503", first: serveStatus(503)},
		{name: "503 with Retry-After", first: serveStatus(503, "Retry-After", "1"), leastWait: time.Second},
		{name: "500 empty", first: serveEmpty(500)},
		{name: "502 html", first: serveHTML(502)},
		{name: "504", first: serveEmpty(504)},
		{name: "time-out", first: serveStall},
		{name: "reset", first: serveReset},
		{name: "429 with Retry-After", first: serveStatus(429, "Retry-After", "1"), leastWait: time.Second},
		// Concur may throttle with retry-after: 0: the retry still waits a second.
		{name: "429 with Retry-After 0", first: serveStatus(429, "Retry-After", "0"), leastWait: time.Second},
		{name: "429 with a past Retry-After", first: serveStatus(429, "Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT"),
			leastWait: time.Second},
		{name: "cut while reading the list", first: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/xml")
			w.Header().Set("Content-Length", "1000")
			_, _ = io.WriteString(w, "<BatchList><BatchSummary>")
			http.NewResponseController(w).Flush()
			serveReset(w, r)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, c := newRetrying(t, tt.first, tt.name == "time-out")
			start := time.Now()
			if _, err := listOf(t.Context(), c, batch.ListOpen); err != nil {
				t.Fatalf("list: %v", err)
			}
			wantRequests(t, s, opList, 2)
			if waited := time.Since(start); waited < tt.leastWait {
				t.Errorf("retried after %v, before the Retry-After of %v", waited, tt.leastWait)
			}
		})
	}
}

// Concur's answers, a throttle without a wait and a wait longer than RetryMaxDelay are not
// tried again: the caller gets the first answer.
func TestListNotRetried(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		answer     step
		code       batch.Code
		retryAfter time.Duration // when set, the error's
	}{
		{name: "400", answer: serveStatus(400), code: batch.CodeUpstreamRejected},
		{name: "401", answer: serveStatus(401), code: batch.CodeUpstreamAuthFailed},
		{name: "403", answer: serveStatus(403), code: batch.CodeUpstreamAuthFailed},
		{name: "404", answer: serveStatus(404), code: batch.CodeUpstreamBadResponse},
		{name: "409", answer: serveStatus(409), code: batch.CodeUpstreamConflict},
		{name: "429 without Retry-After", answer: serveStatus(429), code: batch.CodeUpstreamRateLimited, retryAfter: time.Minute},
		{name: "503 with a too long Retry-After", answer: serveStatus(503, "Retry-After", "30"),
			code: batch.CodeUpstreamUnavailable, retryAfter: 30 * time.Second},
		{name: "429 with a too long Retry-After", answer: serveStatus(429, "Retry-After", "30"),
			code: batch.CodeUpstreamRateLimited, retryAfter: 30 * time.Second},
		{name: "unreadable 200", answer: serveGarbage, code: batch.CodeUpstreamBadResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newScripted(t, tt.answer)
			c, _ := newResilient(t, s.srv.URL, func(c *Config) {
				c.MaxAttempts, c.RetryMaxDelay, c.RetryBudget = 5, 2*time.Second, time.Hour
			})
			start := time.Now()
			_, err := listOf(t.Context(), c, batch.ListOpen)
			e := wantCode(t, err, tt.code)
			if tt.retryAfter != 0 && e.RetryAfter != tt.retryAfter {
				t.Errorf("RetryAfter = %v, want %v", e.RetryAfter, tt.retryAfter)
			}
			wantRequests(t, s, opList, 1)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v: the Retry-After was waited for", d)
			}
		})
	}
}

// Retries stop at MaxAttempts, at the budget, before the caller's deadline, and at an open
// breaker; each try counts toward the breaker.
func TestListRetriesBounded(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		answer   step
		mutate   func(*Config)
		deadline time.Duration // the caller's, when set
		want     int           // requests Concur receives
		refused  bool          // the last try is the breaker's refusal
	}{
		{name: "max attempts", answer: serveStatus(503), mutate: func(c *Config) { c.MaxAttempts = 3 }, want: 3},
		{name: "one attempt", answer: serveStatus(503), mutate: func(c *Config) { c.MaxAttempts = 1 }, want: 1},
		{name: "budget spent", answer: serveStatus(503), mutate: func(c *Config) {
			c.MaxAttempts, c.Timeout, c.RetryBudget = 5, time.Second, time.Millisecond
		}, want: 1},
		{name: "Retry-After beyond the caller's deadline", answer: serveStatus(503, "Retry-After", "5"),
			mutate: func(c *Config) { c.MaxAttempts, c.RetryBudget = 5, time.Minute }, deadline: 3 * time.Second, want: 1},
		{name: "breaker opens", answer: serveStatus(503), mutate: func(c *Config) {
			c.MaxAttempts, c.BreakerThreshold = 5, 2
		}, want: 2, refused: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newScripted(t, tt.answer)
			c, _ := newResilient(t, s.srv.URL, tt.mutate)
			ctx := t.Context()
			if tt.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.deadline)
				defer cancel()
			}
			_, err := listOf(ctx, c, batch.ListOpen)
			wantCode(t, err, batch.CodeUpstreamUnavailable)
			if got := errors.Is(err, batch.ErrCircuitOpen); got != tt.refused {
				t.Errorf("refused by the breaker: %v, want %v (%v)", got, tt.refused, err)
			}
			wantRequests(t, s, opList, tt.want)
		})
	}
}

// A close is never tried again once its request may have reached Concur: closing a closed
// batch regenerates its payment file.
func TestCloseNeverRetried(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		answer step
		code   batch.Code
	}{
		{"503", serveStatus(503), batch.CodeUpstreamUnavailable},
		{"503 with a short Retry-After", serveStatus(503, "Retry-After", "1"), batch.CodeUpstreamUnavailable},
		{"429 with a short Retry-After", serveStatus(429, "Retry-After", "1"), batch.CodeUpstreamRateLimited},
		{"500 empty", serveEmpty(500), batch.CodeUpstreamBadResponse},
		{"502 html", serveHTML(502), batch.CodeUpstreamBadResponse},
		{"time-out", serveStall, batch.CodeUpstreamTimeout},
		{"reset", serveReset, batch.CodeUpstreamUnreachable},
		{"unreadable 200", serveGarbage, batch.CodeUpstreamBadResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newScripted(t, tt.answer)
			c, _ := newResilient(t, s.srv.URL, func(c *Config) {
				c.MaxAttempts, c.RetryBudget = 5, time.Minute
				if tt.code == batch.CodeUpstreamTimeout {
					c.Timeout = 300 * time.Millisecond
				}
			})
			err := invoke(t.Context(), c, s.srv.URL, opClose)
			wantCode(t, err, tt.code)
			wantRequests(t, s, opClose, 1)
		})
	}
}

// A close cut on a kept-alive connection is not replayed by the transport either.
func TestCloseResetOnReusedConnectionSentOnce(t *testing.T) {
	t.Parallel()
	s := newScripted(t, serveOK, serveOK, serveReset)
	cfg := Config{BaseURL: s.srv.URL, AccessToken: "static-token"}.withDefaults(time.Second)
	cfg.MaxAttempts = 5
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	if err := invoke(t.Context(), c, s.srv.URL, opClose); err != nil {
		t.Fatalf("first close: %v", err)
	}
	wantCode(t, invoke(t.Context(), c, s.srv.URL, opClose), batch.CodeUpstreamUnreachable)
	if got := s.count(opClose); got != 2 {
		t.Errorf("Concur received %d closes for 2 calls, want 2", got)
	}
}

// A file download is tried again until its headers arrive, never after.
func TestFileRetriedBeforeHeadersOnly(t *testing.T) {
	t.Parallel()
	cut := func(w http.ResponseWriter, r *http.Request) { // headers and part of the body, then a reset
		w.Header().Set("Content-Type", "text/csv")
		w.Header().Set("Content-Length", "1000")
		_, _ = io.WriteString(w, "a,b\n")
		http.NewResponseController(w).Flush()
		serveReset(w, r)
	}
	stallBody := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/csv")
		_, _ = io.WriteString(w, "a,b\n")
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
	}
	tests := []struct {
		name  string
		first step
		open  bool       // OpenFile succeeds
		code  batch.Code // of the body's read, when open
		want  int        // file requests Concur receives
	}{
		{name: "503 before headers", first: serveStatus(503), open: true, want: 2},
		{name: "reset before headers", first: serveReset, open: true, want: 2},
		{name: "time-out before headers", first: serveStall, open: true, want: 2},
		{name: "cut after headers", first: cut, code: batch.CodeUpstreamUnreachable, want: 1},
		{name: "stalled after headers", first: stallBody, code: batch.CodeUpstreamTimeout, want: 1},
		{name: "404", first: serveStatus(404), code: batch.CodeFileNotFound, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, c := newRetrying(t, tt.first, strings.Contains(tt.name, "time-out") || strings.Contains(tt.name, "stalled"))
			err := invoke(t.Context(), c, s.srv.URL, opFile)
			if tt.open {
				if err != nil {
					t.Fatalf("download: %v", err)
				}
			} else {
				wantCode(t, err, tt.code)
			}
			wantRequests(t, s, opFile, tt.want)
		})
	}
}

// Concur revoked the token server-side: one 403, one renewal, one retry that succeeds.
func TestRenewOn403(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	c, _ := newClient(t, f, nil)
	if _, err := listOf(t.Context(), c, batch.ListAll); err != nil {
		t.Fatal(err)
	}
	f.revokeAccess()
	if _, err := c.CloseBatch(t.Context(), batchURL(f.srv.URL)); err != nil {
		t.Fatal(err)
	}
	if got := f.tokenCalls(); got != 2 {
		t.Errorf("token calls = %d, want 2", got)
	}
	if got := f.apiCalls(); got != 3 {
		t.Errorf("API calls = %d, want 3 (list, refused close, retried close)", got)
	}
}

func TestTimeoutAndCancel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		cancel   time.Duration // cancel the caller's ctx after this; 0: never
		code     batch.Code
		canceled bool
	}{
		{name: "our time-out", code: batch.CodeUpstreamTimeout},
		{name: "caller cancels", cancel: 30 * time.Millisecond, code: batch.CodeUpstreamTimeout, canceled: true},
	}
	for _, tt := range tests {
		for _, op := range []operation{opList, opClose, opFile} {
			t.Run(tt.name+"/"+op.String(), func(t *testing.T) {
				t.Parallel()
				f := newFake(t)
				timeout := 100 * time.Millisecond
				if tt.cancel != 0 {
					timeout = time.Second
				}
				c, _ := newClient(t, f, func(c *Config) { c.Timeout = timeout })
				c.tokens.get(t.Context()) // take the token out of the picture
				f.SetFault(concursim.Fault{Mode: "slow", Delay: concursim.Duration(2 * time.Second)})
				ctx := t.Context()
				if tt.cancel != 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithCancel(ctx)
					time.AfterFunc(tt.cancel, cancel)
				}
				start := time.Now()
				err := call(ctx, c, f, op)
				wantCode(t, err, tt.code)
				if got := errors.Is(err, context.Canceled); got != tt.canceled {
					t.Errorf("errors.Is(err, context.Canceled) = %v, want %v (%v)", got, tt.canceled, err)
				}
				if d := time.Since(start); d > time.Second {
					t.Errorf("took %v", d)
				}
			})
		}
	}
}

// The batch list is read as a stream through its own cap; past it the answer is refused.
func TestListOverLimit(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	body := serveList(f, 1000)
	c, _ := newClient(t, f, nil)
	c.listLimit = int64(len(body))
	if got, err := listOf(t.Context(), c, batch.ListAll); err != nil || len(got) != 1000 {
		t.Fatalf("at the limit: %d, %v", len(got), err)
	}
	c.listLimit = int64(len(body)) - 1
	_, err := listOf(t.Context(), c, batch.ListAll)
	wantCode(t, err, batch.CodeUpstreamBadResponse)
}
