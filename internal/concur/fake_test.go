package concur

import (
	"context"
	"encoding/json"
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

const tokenPath = "/oauth2/v0/token"

// fakeConcur is a fake Concur: an OAuth2 token endpoint that rotates refresh tokens and
// refuses reused ones (400 invalid_grant, code 108), and the Payment Batch API behind
// Authorization with exactly one scheme (Bearer unless the test sets scheme), serving
// testdata fixtures unless a test installs its own handler.
type fakeConcur struct {
	t   *testing.T
	srv *httptest.Server

	tokenCalls atomic.Int64
	apiCalls   atomic.Int64

	mu            sync.Mutex
	expiresIn     any    // JSON value of expires_in: "3600" or 3600
	refreshExpiry any    // JSON value of refresh_expires_in; nil: not sent
	geolocation   string // returned with each token; "" for none
	scheme        string // the only Authorization scheme the API accepts: "Bearer" or "OAuth"
	refuseStatus  int    // the API's status for a missing or refused token: 403 or 401
	rotate        bool   // issue a new refresh token on every refresh
	tokenDelay    time.Duration
	tokenFail     http.HandlerFunc     // overrides the token endpoint when set
	mangle        func(map[string]any) // edits a successful token answer (after redeeming) when set
	api           http.HandlerFunc     // overrides the API (after auth) when set
	refresh       map[string]bool      // refresh tokens that may be redeemed
	access        map[string]bool      // access tokens Concur accepts
	redeemed      []string             // refresh tokens redeemed, in order
	presented     []string             // every refresh token presented, redeemed or not, in order
	n             int
}

func newFake(t *testing.T) *fakeConcur {
	t.Helper()
	f := &fakeConcur{
		t:             t,
		expiresIn:     "3600",
		refreshExpiry: 1893456000,
		scheme:        "Bearer",
		refuseStatus:  http.StatusForbidden,
		rotate:        true,
		refresh:       map[string]bool{"rt-0": true},
		access:        map[string]bool{},
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// set changes the fake's behaviour under its lock.
func (f *fakeConcur) set(fn func(f *fakeConcur)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// revokeAccess makes Concur refuse every access token issued so far (server-side expiry).
func (f *fakeConcur) revokeAccess() { f.set(func(f *fakeConcur) { clear(f.access) }) }

func (f *fakeConcur) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == tokenPath:
		f.tokenCalls.Add(1)
		f.serveToken(w, r)
	case strings.HasPrefix(r.URL.Path, apiPrefix):
		f.apiCalls.Add(1)
		f.serveAPI(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeConcur) serveToken(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	delay, fail := f.tokenDelay, f.tokenFail
	f.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if fail != nil {
		fail(w, r)
		return
	}
	if err := r.ParseForm(); err != nil || r.Method != http.MethodPost {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_request"})
		return
	}
	if r.PostForm.Get("client_id") != "client-id" || r.PostForm.Get("client_secret") != "client-secret" {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid_client", "code": 101})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	rt := r.PostForm.Get("refresh_token")
	f.presented = append(f.presented, rt)
	if r.PostForm.Get("grant_type") != "refresh_token" || !f.refresh[rt] {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_grant",
			"error_description": "Bad or expired refresh token", "code": 108})
		return
	}
	f.redeemed = append(f.redeemed, rt)
	f.n++
	newRT := rt
	if f.rotate {
		delete(f.refresh, rt)
		newRT = fmt.Sprintf("rt-%d", f.n)
		f.refresh[newRT] = true
	}
	at := fmt.Sprintf("at-%d", f.n)
	f.access[at] = true
	ans := map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": f.expiresIn,
		"refresh_token": newRT, "scope": "EXPRPT"}
	if f.refreshExpiry != nil {
		ans["refresh_expires_in"] = f.refreshExpiry
	}
	if f.geolocation != "" {
		ans["geolocation"] = f.geolocation
	}
	if f.mangle != nil {
		f.mangle(ans)
	}
	writeJSON(w, http.StatusOK, ans)
}

func (f *fakeConcur) serveAPI(w http.ResponseWriter, r *http.Request) {
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	f.mu.Lock()
	valid, api, refuse := scheme == f.scheme && f.access[tok], f.api, f.refuseStatus
	f.mu.Unlock()
	if !valid {
		writeXMLError(w, refuse, "Invalid or expired token")
		return
	}
	if api != nil {
		api(w, r)
		return
	}
	f.fixtures(w, r)
}

// fixtures serves testdata, with {{host}} replaced by the fake's own URL.
func (f *fakeConcur) fixtures(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(r.URL.Path, apiPrefix)
	switch {
	case r.Method == http.MethodGet && strings.HasPrefix(p, "v1.1/batchlist/"):
		f.serveFile(w, "testdata/list/namespaced.xml")
	case r.Method == http.MethodPost && strings.HasSuffix(p, "/close"):
		w.Header().Set("Content-Type", "application/xml; charset=utf-8")
		fmt.Fprintf(w, `<BatchStatus xmlns="http://www.concursolutions.com/api/expense/paymentbatch/2011/11">`+
			`<BatchStatus>CLOSED</BatchStatus><File-Url>%s/api/expense/paymentbatch/v1.1/batch/J0b$Run/file</File-Url>`+
			`<Status>SUCCESS</Status></BatchStatus>`, f.srv.URL)
	case r.Method == http.MethodGet && strings.HasSuffix(p, "/file"):
		w.Header().Set("Content-Type", "text/csv")
		fmt.Fprint(w, "a,b\n1,2\n")
	default:
		writeXMLError(w, http.StatusNotFound, "Not found")
	}
}

func (f *fakeConcur) serveFile(w http.ResponseWriter, name string) {
	b, err := os.ReadFile(name)
	if err != nil {
		f.t.Errorf("fixture: %v", err)
		http.Error(w, "no fixture", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	w.Write([]byte(strings.ReplaceAll(string(b), "{{host}}", f.srv.URL)))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
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

// redeemedTokens returns the refresh tokens the fake redeemed, in order.
func (f *fakeConcur) redeemedTokens() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.redeemed...)
}

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

// withDefaults sets what internal/config sets for the gateway: the Default constants,
// with timeout as Config.Timeout.
func (c Config) withDefaults(timeout time.Duration) Config {
	c.Timeout = timeout
	c.BreakerThreshold, c.BreakerOpenInterval = DefaultBreakerThreshold, DefaultBreakerOpenInterval
	c.MaxAttempts, c.MaxConcurrent = DefaultMaxAttempts, DefaultMaxConcurrent
	return c
}

func batchURL(host string) string {
	return host + "/api/expense/paymentbatch/v1.1/batch/pQ7v$sK2mLx9RtB4$pWcYe0nHa3Jd$xs"
}
