package concur

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// scripted is a fake Concur API for the resilience tests. It accepts any token, counts the
// requests it receives per operation and how many it holds at once, and answers each with
// the next step of its script, then with its default step.
type scripted struct {
	srv *httptest.Server

	mu       sync.Mutex
	steps    []step
	def      step
	got      map[operation]int
	inFlight int
	peak     int // the most requests held at once
}

// step answers one request.
type step func(w http.ResponseWriter, r *http.Request)

func newScripted(t *testing.T, def step, steps ...step) *scripted {
	t.Helper()
	s := &scripted{def: def, steps: steps, got: map[operation]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *scripted) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.got[opOf(r)]++
	s.inFlight++
	s.peak = max(s.peak, s.inFlight)
	next := s.def
	if len(s.steps) > 0 {
		next, s.steps = s.steps[0], s.steps[1:]
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()
	next(w, r)
}

// count is how many requests of op Concur received.
func (s *scripted) count(op operation) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[op]
}

// total is how many API requests Concur received.
func (s *scripted) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[opList] + s.got[opClose] + s.got[opFile]
}

func (s *scripted) maxInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

func opOf(r *http.Request) operation {
	switch {
	case strings.HasSuffix(r.URL.Path, "/close"):
		return opClose
	case strings.HasSuffix(r.URL.Path, "/file"):
		return opFile
	}
	return opList
}

// serveOK answers as Concur does when all is well: the list, the close or the file.
func serveOK(w http.ResponseWriter, r *http.Request) {
	switch opOf(r) {
	case opClose:
		w.Header().Set("Content-Type", "application/xml")
		fmt.Fprintf(w, `<BatchStatus><BatchStatus>CLOSED</BatchStatus><File-Url>http://%s/api/expense/paymentbatch/v1.1/batch/J0b$Run/file</File-Url>`+
			`<Status>SUCCESS</Status></BatchStatus>`, r.Host)
	case opFile:
		w.Header().Set("Content-Type", "text/csv")
		fmt.Fprint(w, "a,b\n1,2\n")
	default:
		w.Header().Set("Content-Type", "application/xml")
		fmt.Fprintf(w, `<BatchList><BatchSummary><BatchName>B</BatchName><BatchID>b-1</BatchID>`+
			`<Batch-URL>http://%s/api/expense/paymentbatch/v1.1/batch/K3y$1</Batch-URL></BatchSummary></BatchList>`, r.Host)
	}
}

// serveStatus answers with Concur's XML error; header is name, value pairs.
func serveStatus(code int, header ...string) step {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		writeXMLError(w, code, "Simulated "+http.StatusText(code))
	}
}

// serveHTML answers like a proxy in front of Concur.
func serveHTML(code int) step {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(code)
		fmt.Fprintf(w, "<html><body><h1>%d</h1></body></html>", code)
	}
}

// serveEmpty answers code without a body.
func serveEmpty(code int) step {
	return func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) }
}

// serveNoReports is the close's business 500.
func serveNoReports(w http.ResponseWriter, r *http.Request) {
	writeXMLError(w, http.StatusInternalServerError, "The batch you attempted to close does not contain any reports.")
}

// serveGarbage is a 200 that is not XML.
func serveGarbage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/xml")
	fmt.Fprint(w, "<BatchList><BatchSummary>")
}

// serveReset reads the request, then drops the connection without an answer.
func serveReset(w http.ResponseWriter, r *http.Request) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	conn.Close()
}

// serveStall never answers: the client's time-out (or its caller) ends the request.
func serveStall(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

// serveHeld signals arrived when a request comes, then waits for release before it answers
// with then (or gives up with the client).
func serveHeld(arrived chan<- struct{}, release <-chan struct{}, then step) step {
	return func(w http.ResponseWriter, r *http.Request) {
		if arrived != nil {
			select {
			case arrived <- struct{}{}:
			case <-r.Context().Done(): // nobody expected it: a test failing, not hanging
				return
			}
		}
		select {
		case <-release:
			then(w, r)
		case <-r.Context().Done():
		}
	}
}

// serveDelayed answers with then after d.
func serveDelayed(d time.Duration, then step) step {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(d):
			then(w, r)
		case <-r.Context().Done():
		}
	}
}

// countingTransport counts the requests the client sends (also those no server receives).
type countingTransport struct {
	base http.RoundTripper
	n    atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.base.RoundTrip(r)
}

// newResilient is a Client with a static token against base, with small time values, no
// retries (MaxAttempts 1) unless mutate says otherwise, and a fresh connection per request,
// so that the server's counts are exactly the requests the client sent.
func newResilient(t *testing.T, base string, mutate func(*Config)) (*Client, *countingTransport) {
	t.Helper()
	rt := &countingTransport{base: &http.Transport{DisableKeepAlives: true}}
	cfg := Config{BaseURL: base, AccessToken: "static-token", Transport: rt}.withDefaults(2 * time.Second)
	cfg.MaxAttempts, cfg.RetryBaseDelay, cfg.BreakerOpenInterval = 1, time.Millisecond, time.Minute
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c, rt
}

// invoke runs op against the Concur at base: a list, a close, or a whole file download.
func invoke(ctx context.Context, c *Client, base string, op operation) error {
	switch op {
	case opList:
		_, err := listOf(ctx, c, batch.ListOpen)
		return err
	case opClose:
		_, err := c.CloseBatch(ctx, base+"/api/expense/paymentbatch/v1.1/batch/K3y$1")
		return err
	default:
		f, err := c.OpenFile(ctx, base+"/api/expense/paymentbatch/v1.1/batch/J0b$Run/file")
		if err != nil {
			return err
		}
		defer f.Body.Close()
		_, err = io.Copy(io.Discard, f.Body)
		return err
	}
}

// wantRefused asserts err is the breaker's refusal: upstream_unavailable, ErrCircuitOpen,
// a Retry-After, nothing sent.
func wantRefused(t *testing.T, err error) *batch.Error {
	t.Helper()
	e, isErr := errors.AsType[*batch.Error](err)
	if !isErr || e.Code != batch.CodeUpstreamUnavailable || !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("err = %v, want upstream_unavailable caused by ErrCircuitOpen", err)
	}
	if e.RetryAfter <= 0 {
		t.Errorf("RetryAfter = %v, want a wait", e.RetryAfter)
	}
	if e.Upstream != nil {
		t.Errorf("Upstream = %+v on a call that was not sent", e.Upstream)
	}
	return e
}

// waitState polls the named breaker until it reaches want (its open interval is short).
func waitState(t *testing.T, c *Client, name, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for c.BreakerState(name) != want {
		if time.Now().After(deadline) {
			t.Fatalf("breaker %s is %s, want %s", name, c.BreakerState(name), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// transitions records what OnBreakerStateChange is told.
type transitions struct {
	mu  sync.Mutex
	got []string
}

func (tr *transitions) hook(name, from, to string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.got = append(tr.got, name+": "+from+" -> "+to)
}

func (tr *transitions) list() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]string(nil), tr.got...)
}

// awaitArrival waits until a held request has reached Concur; it fails the test if the
// call ends first (its result comes on done).
func awaitArrival(t *testing.T, arrived <-chan struct{}, done <-chan error) {
	t.Helper()
	select {
	case <-arrived:
	case err := <-done:
		t.Fatalf("the call ended before it reached Concur: %v", err)
	}
}
