package concur

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/concursim"
)

// scripted is the simulator for the resilience tests: it holds one batch (b-1, Batch-URL
// key K3y$1, payment file J0b$Run) and accepts the static token of newResilient. Each
// API request it authorises is answered with the next step of its script, then with its
// default step; serveOK passes the request to the simulator. It counts how many requests
// it holds at once.
type scripted struct {
	*concursim.Sim
	srv *httptest.Server
	correlations

	mu       sync.Mutex
	steps    []step
	def      step
	inFlight int
	peak     int // the most requests held at once
}

// step answers one request.
type step func(w http.ResponseWriter, r *http.Request)

func newScripted(t *testing.T, def step, steps ...step) *scripted {
	t.Helper()
	sim, err := concursim.New(concursim.Options{
		ClientID: "client-id", ClientSecret: "client-secret", RefreshToken: "rt-0",
		Batches: []concursim.Batch{{ID: "b-1", Name: "B", Total: "10.00", Currency: "USD", Count: 1,
			Type: concursim.TypeEmployee, Key: "K3y$1", FileKey: "J0b$Run"}},
	})
	if err != nil {
		t.Fatalf("concursim.New: %v", err)
	}
	sim.AddAccessToken("static-token")
	s := &scripted{Sim: sim, def: def, steps: steps}
	sim.InterceptAPI(s.script)
	s.srv = httptest.NewServer(s.stamp(sim))
	t.Cleanup(func() { s.srv.Close(); sim.Close() })
	return s
}

// script answers with the next step, the simulator's answer (next) at hand for serveOK.
func (s *scripted) script(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.inFlight++
		s.peak = max(s.peak, s.inFlight)
		answer := s.def
		if len(s.steps) > 0 {
			answer, s.steps = s.steps[0], s.steps[1:]
		}
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			s.inFlight--
			s.mu.Unlock()
		}()
		answer(w, r.WithContext(context.WithValue(r.Context(), simAnswer{}, next)))
	})
}

// simAnswer is the context key of the simulator's own answer to a scripted request.
type simAnswer struct{}

// count is how many requests of op Concur received.
func (s *scripted) count(op operation) int {
	return s.Stats().Requests[[...]string{opList: "list", opClose: "close", opFile: "file"}[op]]
}

// total is how many API requests Concur received.
func (s *scripted) total() int { return s.count(opList) + s.count(opClose) + s.count(opFile) }

func (s *scripted) maxInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// serveOK answers as Concur does when all is well: the simulator's list, close or file.
func serveOK(w http.ResponseWriter, r *http.Request) {
	r.Context().Value(simAnswer{}).(http.Handler).ServeHTTP(w, r)
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

// serveXML answers 200 with body as XML.
func serveXML(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		fmt.Fprint(w, body)
	}
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

// wantRefused asserts err is the breaker's refusal: upstream_unavailable, batch.ErrCircuitOpen,
// a Retry-After, nothing sent.
func wantRefused(t *testing.T, err error) *batch.Error {
	t.Helper()
	e, isErr := errors.AsType[*batch.Error](err)
	if !isErr || e.Code != batch.CodeUpstreamUnavailable || !errors.Is(err, batch.ErrCircuitOpen) {
		t.Fatalf("err = %v, want upstream_unavailable caused by batch.ErrCircuitOpen", err)
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

const tokenPath = "/oauth2/v0/token"

// fakeConcur is Concur for the client's tests: the simulator (internal/concursim) at an
// httptest server, accepting client-id/client-secret and the refresh token rt-0, naming
// the tokens it issues at-1, rt-1, at-2…, accepting Bearer only, sending no geolocation,
// and holding the two batches of testdata/list/namespaced.xml, the first with a payment
// file at J0b$Run. edit adjusts the options.
type fakeConcur struct {
	*concursim.Sim
	srv *httptest.Server
	correlations
}

func newFake(t *testing.T, edit ...func(*concursim.Options)) *fakeConcur {
	t.Helper()
	opts := concursim.Options{
		ClientID: "client-id", ClientSecret: "client-secret", RefreshToken: "rt-0",
		CountedTokens: true, AuthScheme: "Bearer", NoGeolocation: true,
		Batches: []concursim.Batch{
			{ID: "6f1c2a9e-3b7d-4e58-9a41-0c2d8e7f5b13", Name: "Expense Pay US", Total: "1289.40", Currency: "USD",
				Count: 7, Type: concursim.TypeEmployee, PaymentMethod: "Expense Pay by Concur",
				Key: "pQ7v$sK2mLx9RtB4$pWcYe0nHa3Jd$xs", FileKey: "J0b$Run"},
			{ID: "12345678901234567890", Name: "Corporate Card", Total: "0.00", Currency: "EUR",
				Type: concursim.TypeCardProgram, PaymentMethod: "Company Check (via Accounts Payable)", Key: "aB3$cD4eF5"},
		},
	}
	for _, e := range edit {
		e(&opts)
	}
	sim, err := concursim.New(opts)
	if err != nil {
		t.Fatalf("concursim.New: %v", err)
	}
	f := &fakeConcur{Sim: sim}
	f.srv = httptest.NewServer(f.stamp(sim))
	t.Cleanup(func() { f.srv.Close(); sim.Close() })
	return f
}

// correlations puts a concur-correlationid on every answer of a fake Concur, as Concur
// does (fake-corr-1, fake-corr-2…, unless the handler sets its own), and records what
// each answer went out with, so tests compare with what was sent whoever chose it.
type correlations struct {
	mu   sync.Mutex
	n    int
	sent []sentCorrelation
}

// sentCorrelation is one answer's: its request path and the header value it carried.
type sentCorrelation struct{ path, id string }

func (c *correlations) stamp(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.n++
		w.Header().Set("Concur-Correlationid", fmt.Sprint("fake-corr-", c.n))
		c.mu.Unlock()
		next.ServeHTTP(&stampWriter{ResponseWriter: w, c: c, path: r.URL.Path}, r)
	})
}

// sentAPI returns the correlation ids the API's answers carried, in order (the token
// endpoint's left out).
func (c *correlations) sentAPI() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []string
	for _, s := range c.sent {
		if s.path != tokenPath {
			ids = append(ids, s.id)
		}
	}
	return ids
}

// sentAll returns the correlation ids every answer carried, the token endpoint's included,
// in order.
func (c *correlations) sentAll() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []string
	for _, s := range c.sent {
		ids = append(ids, s.id)
	}
	return ids
}

// lastAPI is the correlation id of the API's latest answer; the test fails without one.
func (c *correlations) lastAPI(t *testing.T) string {
	t.Helper()
	ids := c.sentAPI()
	if len(ids) == 0 {
		t.Fatal("Concur's API sent no answer")
	}
	return ids[len(ids)-1]
}

// stampWriter records the correlation id an answer goes out with. Unwrap lets
// http.ResponseController reach the connection (flush, hijack).
type stampWriter struct {
	http.ResponseWriter
	c     *correlations
	path  string
	noted bool
}

func (w *stampWriter) note() {
	if w.noted {
		return
	}
	w.noted = true
	w.c.mu.Lock()
	w.c.sent = append(w.c.sent, sentCorrelation{path: w.path, id: w.Header().Get("Concur-Correlationid")})
	w.c.mu.Unlock()
}

func (w *stampWriter) WriteHeader(code int) { w.note(); w.ResponseWriter.WriteHeader(code) }

func (w *stampWriter) Write(b []byte) (int, error) { w.note(); return w.ResponseWriter.Write(b) }

func (w *stampWriter) Flush() { w.note(); _ = http.NewResponseController(w.ResponseWriter).Flush() }

func (w *stampWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// tokenCalls is how many requests reached the token endpoint.
func (f *fakeConcur) tokenCalls() int64 { return int64(f.Stats().Requests["token"]) }

// apiCalls is how many requests reached the API, refused ones included.
func (f *fakeConcur) apiCalls() int64 {
	n := f.Stats().Requests
	return int64(n["list"] + n["close"] + n["file"])
}

// redeemedTokens returns the refresh tokens Concur redeemed, in order.
func (f *fakeConcur) redeemedTokens() []string { return f.Stats().RedeemedTokens }

// presentedTokens returns every refresh token presented to Concur, in order.
func (f *fakeConcur) presentedTokens() []string { return f.Stats().PresentedTokens }

// revokeAccess makes Concur refuse every access token issued so far (server-side expiry).
func (f *fakeConcur) revokeAccess() { f.ExpireAccessTokens() }

// serve answers every authorised API request with h instead of the simulator; nil
// restores the simulator's answers.
func (f *fakeConcur) serve(h http.HandlerFunc) {
	if h == nil {
		f.InterceptAPI(nil)
		return
	}
	f.InterceptAPI(func(http.Handler) http.Handler { return h })
}

// observe calls fn with every authorised API request before the simulator answers it.
func (f *fakeConcur) observe(fn func(r *http.Request)) {
	f.InterceptAPI(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fn(r)
			next.ServeHTTP(w, r)
		})
	})
}

// failTokens installs a fault on the token endpoint until cleared.
func (f *fakeConcur) failTokens(mode string, status int, retryAfter string) {
	f.SetFault(concursim.Fault{Op: "token", Mode: mode, Status: status, RetryAfter: retryAfter})
}

// slowTokens delays every token answer by d until the fault is cleared.
func (f *fakeConcur) slowTokens(d time.Duration) {
	f.SetFault(concursim.Fault{Op: "token", Mode: "slow", Delay: concursim.Duration(d)})
}

// serveFixture answers with the XML of testdata file name, {{host}} replaced by host.
func serveFixture(t *testing.T, w http.ResponseWriter, name, host string) {
	b, err := os.ReadFile(name)
	if err != nil {
		t.Errorf("fixture: %v", err)
		http.Error(w, "no fixture", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	w.Write([]byte(strings.ReplaceAll(string(b), "{{host}}", host)))
}

// writeXMLError answers like Concur does on an error.
func writeXMLError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<Error><Message>%s</Message><Server-Time>2024-03-05T14:02:11</Server-Time>"+
		"<Id>8A7C3F0E-5B21-4D9A-A1E2-7F6B5C4D3E21</Id></Error>", msg)
}

// recorder is a second server that must never be contacted: it counts what reaches it.
type recorder struct {
	srv   *httptest.Server
	calls atomic.Int64
	auths atomic.Int64 // requests that carried an Authorization header
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	rec := &recorder{}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.calls.Add(1)
		if r.Header.Get("Authorization") != "" {
			rec.auths.Add(1)
		}
		w.Header().Set("Content-Type", "application/xml")
		fmt.Fprint(w, "<BatchStatus><Status>SUCCESS</Status></BatchStatus>")
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

// testClock is a clock that tests can move forward, safely across goroutines.
type testClock struct{ offset atomic.Int64 }

func (c *testClock) now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

func (c *testClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// newClient builds a Client against f in refresh-token mode; mutate adjusts the config.
func newClient(t *testing.T, f *fakeConcur, mutate func(*Config)) (*Client, *testClock) {
	t.Helper()
	cfg := Config{
		BaseURL:      f.srv.URL,
		TokenURL:     f.srv.URL + tokenPath,
		ClientID:     "client-id",
		ClientSecret: "client-secret",
		RefreshToken: "rt-0",
	}.withDefaults(5 * time.Second)
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	clock := &testClock{}
	c.tokens.now = clock.now
	c.tokens.retryMin, c.tokens.retryMax = 5*time.Millisecond, 50*time.Millisecond
	t.Cleanup(func() { // ends the background commits of an unsaved grant
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		c.Drain(ctx)
	})
	return c, clock
}

// withDefaults sets, for a test, what internal/config sets for the gateway (which New
// requires), with timeout as Config.Timeout. The values are the tests', not the gateway's
// defaults: those are declared once, in internal/config.
func (c Config) withDefaults(timeout time.Duration) Config {
	c.Timeout, c.AuthScheme = timeout, "Bearer"
	c.BreakerThreshold, c.BreakerOpenInterval = 5, 30*time.Second
	c.MaxAttempts, c.MaxConcurrent, c.RateBurst = 3, 8, 1
	return c
}

func batchURL(host string) string {
	return host + "/api/expense/paymentbatch/v1.1/batch/pQ7v$sK2mLx9RtB4$pWcYe0nHa3Jd$xs"
}

// serveList makes f answer every API call with a batch list of n summaries, and returns it.
func serveList(f *fakeConcur, n int) []byte {
	body := batchListXML(n, f.srv.URL)
	f.serve(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		_, _ = w.Write(body)
	})
	return body
}

// listAtOnce runs n lists on each of clients, all at once; every one must succeed.
func listAtOnce(t *testing.T, n int, clients ...*Client) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n*len(clients))
	for range n {
		for _, c := range clients {
			wg.Go(func() {
				_, err := listOf(t.Context(), c, batch.ListAll)
				errs <- err
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// wantRequests checks how many requests of op the scripted Concur received.
func wantRequests(t *testing.T, s *scripted, op operation, want int) {
	t.Helper()
	if got := s.count(op); got != want {
		t.Errorf("Concur received %d %q requests, want %d", got, op, want)
	}
}

// wantBreaker checks the state of c's breaker name.
func wantBreaker(t *testing.T, c *Client, name, want string) {
	t.Helper()
	if got := c.BreakerState(name); got != want {
		t.Errorf("%s breaker = %s, want %s", name, got, want)
	}
}
