package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/finplat/payment-batch-gateway/api"
	"github.com/finplat/payment-batch-gateway/internal/auth"
	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/concur"
	"github.com/finplat/payment-batch-gateway/internal/concursim"
	"github.com/finplat/payment-batch-gateway/internal/httpapi"
	"github.com/finplat/payment-batch-gateway/internal/store"
)

const (
	employeeBatch = concursim.SeedOpenUSD
	emptyBatch    = concursim.SeedOpenEmpty
)

// env is the whole request path: HTTP handler -> domain -> Concur client -> a simulated
// Concur served over real HTTP.
type env struct {
	sim     *concursim.Sim
	simURL  string
	gateway *httptest.Server
}

type envOptions struct {
	timeout   time.Duration
	baseURL   string                                                  // overrides the simulator's URL as Concur base
	wrapSim   func(sim http.Handler, self func() string) http.Handler // interposes on the simulator
	simOption func(*concursim.Options)
	auth      *auth.Authenticator // nil: authentication disabled
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	opts := concursim.Options{ClientID: "gw", ClientSecret: "client-secret-value", RefreshToken: "refresh-token-value"}
	if o.simOption != nil {
		o.simOption(&opts)
	}
	sim, err := concursim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	var h http.Handler = sim
	var srv *httptest.Server
	if o.wrapSim != nil {
		h = o.wrapSim(sim, func() string { return srv.URL })
	}
	srv = httptest.NewServer(h)
	t.Cleanup(srv.Close)

	base := srv.URL
	if o.baseURL != "" {
		base = o.baseURL
	}
	if o.timeout == 0 {
		o.timeout = 5 * time.Second
	}
	cfg := clientConfig(base, o.timeout)
	cfg.ClientID, cfg.ClientSecret, cfg.RefreshToken = "gw", "client-secret-value", "refresh-token-value"
	up, err := concur.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), store.Config{DataDir: t.TempDir(), Key: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc := batch.NewService(up, st, batch.Options{})
	log := zerolog.New(zerolog.NewTestWriter(t))
	gw := httptest.NewServer(httpapi.NewHandler(httpapi.Deps{Log: log, Batches: svc,
		Idempotency: httpapi.Idempotency{Store: st}, Auth: o.auth}))
	t.Cleanup(gw.Close)
	return &env{sim: sim, simURL: srv.URL, gateway: gw}
}

func (e *env) post(t *testing.T, path string) (*http.Response, []byte) {
	t.Helper()
	return send(t, "POST", e.gateway.URL+path)
}

func send(t *testing.T, method, url string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func problemOf(t *testing.T, resp *http.Response, body []byte) api.Problem {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, body %s", ct, body)
	}
	var p api.Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("problem not JSON: %v: %s", err, body)
	}
	if p.Status != resp.StatusCode || p.RequestID == "" || p.RequestID != resp.Header.Get("X-Request-ID") {
		t.Fatalf("problem inconsistent with its answer: %+v", p)
	}
	return p
}

// TestErrorTable drives every row of the error table through a fake Concur server.
func TestErrorTable(t *testing.T) {
	t.Parallel()
	closedListener := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		u := "http://" + ln.Addr().String()
		ln.Close()
		return u
	}()

	tests := []struct {
		name       string
		o          envOptions
		fault      *concursim.Fault
		id         string
		status     int
		code       string
		retryAfter string
		upstream   int // Concur status expected in the problem, 0 for none
	}{
		{name: "invalid id", id: "bad.id", status: 400, code: "invalid_batch_id"},
		{name: "not in batch list", id: "no-such-batch", status: 404, code: "batch_not_found"},
		{name: "concur 404", id: employeeBatch, status: 404, code: "batch_not_found", upstream: 404,
			fault: &concursim.Fault{Op: "close", Mode: "status", Status: 404, Message: "The Batch ID is invalid."}},
		{name: "concur 400 batch id invalid", id: employeeBatch, status: 404, code: "batch_not_found", upstream: 400,
			fault: &concursim.Fault{Op: "close", Mode: "status", Status: 400, Message: "Batch ID 123 is invalid."}},
		{name: "concur 500 no reports", id: emptyBatch, status: 409, code: "batch_not_closable", upstream: 500},
		{name: "concur 409", id: employeeBatch, status: 409, code: "upstream_conflict", upstream: 409,
			fault: &concursim.Fault{Op: "close", Mode: "status", Status: 409, Message: "conflict"}},
		{name: "concur 401 after renewal", id: employeeBatch, status: 502, code: "upstream_auth_failed", upstream: 401,
			fault: &concursim.Fault{Op: "close", Mode: "status", Status: 401, Message: "Authorization header missing"}},
		{name: "concur 403 after renewal", id: employeeBatch, status: 502, code: "upstream_auth_failed", upstream: 403,
			fault: &concursim.Fault{Op: "close", Mode: "status", Status: 403, Message: "token revoked"}},
		{name: "concur 429 with Retry-After", id: employeeBatch, status: 429, code: "upstream_rate_limited", retryAfter: "120", upstream: 429,
			fault: &concursim.Fault{Op: "close", Mode: "status", Status: 429, Message: "slow down", RetryAfter: "120"}},
		{name: "concur 429 without Retry-After", id: employeeBatch, status: 429, code: "upstream_rate_limited", retryAfter: "60", upstream: 429,
			fault: &concursim.Fault{Op: "close", Mode: "status", Status: 429, Message: "slow down"}},
		{name: "concur 503", id: employeeBatch, status: 503, code: "upstream_unavailable", retryAfter: "300", upstream: 503,
			fault: &concursim.Fault{Op: "close", Mode: "status", Status: 503, Message: "maintenance"}},
		{name: "time-out", id: employeeBatch, status: 504, code: "upstream_timeout", retryAfter: "300", o: envOptions{timeout: 300 * time.Millisecond},
			fault: &concursim.Fault{Op: "close", Mode: "slow", Delay: concursim.Duration(3 * time.Second)}},
		{name: "unreachable", id: employeeBatch, status: 502, code: "upstream_unreachable", o: envOptions{baseURL: closedListener}},
		{name: "connection reset", id: employeeBatch, status: 502, code: "upstream_unreachable",
			fault: &concursim.Fault{Op: "close", Mode: "reset"}},
		{name: "malformed XML", id: employeeBatch, status: 502, code: "upstream_bad_response",
			fault: &concursim.Fault{Op: "close", Mode: "malformed"}},
		{name: "HTML error page", id: employeeBatch, status: 502, code: "upstream_bad_response", upstream: 502,
			fault: &concursim.Fault{Op: "close", Mode: "html"}},
		{name: "JSON instead of XML", id: employeeBatch, status: 502, code: "upstream_bad_response",
			fault: &concursim.Fault{Op: "close", Mode: "wrongtype"}},
		{name: "oversize answer", id: employeeBatch, status: 502, code: "upstream_bad_response",
			fault: &concursim.Fault{Op: "close", Mode: "huge"}},
		{name: "XML bomb", id: employeeBatch, status: 502, code: "upstream_bad_response",
			fault: &concursim.Fault{Op: "close", Mode: "bomb"}},
		{name: "deep XML", id: employeeBatch, status: 502, code: "upstream_bad_response",
			fault: &concursim.Fault{Op: "close", Mode: "deep"}},
		{name: "broken batch list", id: employeeBatch, status: 502, code: "upstream_bad_response",
			fault: &concursim.Fault{Op: "list", Mode: "malformed"}},
		{name: "other 4xx", id: employeeBatch, status: 502, code: "upstream_rejected", upstream: 400,
			fault: &concursim.Fault{Op: "close", Mode: "status", Status: 400, Message: "Request limit exceeded"}},
		{name: "token endpoint down", id: employeeBatch, status: 503, code: "upstream_unavailable", upstream: 503, retryAfter: "300",
			fault: &concursim.Fault{Op: "token", Mode: "status", Status: 503, Message: "maintenance"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tt.o)
			if tt.fault != nil {
				e.sim.SetFault(*tt.fault)
			}
			resp, body := e.post(t, "/batches/"+tt.id+"/close")
			p := problemOf(t, resp, body)
			if resp.StatusCode != tt.status || p.Code != tt.code {
				t.Fatalf("got %d %s, want %d %s: %s", resp.StatusCode, p.Code, tt.status, tt.code, body)
			}
			if got := resp.Header.Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After = %q, want %q", got, tt.retryAfter)
			}
			switch {
			case tt.upstream == 0 && p.Upstream != nil && tt.code != "upstream_bad_response":
				t.Errorf("unexpected upstream part: %+v", p.Upstream)
			case tt.upstream != 0 && (p.Upstream == nil || p.Upstream.Status != tt.upstream):
				t.Errorf("upstream = %+v, want Concur status %d", p.Upstream, tt.upstream)
			}
			for _, secret := range []string{"client-secret-value", "refresh-token-value"} {
				if strings.Contains(string(body), secret) {
					t.Errorf("a credential leaked into the answer")
				}
			}
			if tt.code == "batch_not_closable" && !strings.Contains(p.Detail, "does not contain any reports") {
				t.Errorf("Concur's message not in detail: %q", p.Detail)
			}
		})
	}
}

// The renewal after a 401/403 happens once and the close is retried once.
func TestAuthFailureRenewsOnceAndRetriesOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.sim.SetFault(concursim.Fault{Op: "close", Mode: "status", Status: 403, Message: "expired", Count: 1})
	resp, body := e.post(t, "/batches/"+employeeBatch+"/close")
	if resp.StatusCode != 200 {
		t.Fatalf("close after one 403: %d %s", resp.StatusCode, body)
	}
	st := e.sim.Stats()
	if st.TokenRefreshes != 2 || st.Closes[employeeBatch] != 1 {
		t.Errorf("refreshes=%d closes=%v, want 2 refreshes (initial + renewal) and 1 close", st.TokenRefreshes, st.Closes)
	}
}

// A Batch-URL pointing anywhere but the Concur host is refused, and that host never
// hears from the gateway.
func TestHostGuard(t *testing.T) {
	t.Parallel()
	var foreignHits atomic.Int32
	foreign := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		foreignHits.Add(1)
	}))
	t.Cleanup(foreign.Close)

	// Rewrite the simulator's batch list so every Batch-URL points at the foreign server.
	e := newEnv(t, envOptions{wrapSim: func(sim http.Handler, self func() string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.Contains(r.URL.Path, "/batchlist") {
				sim.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			sim.ServeHTTP(rec, r)
			for k, v := range rec.Header() {
				if k != "Content-Length" {
					w.Header()[k] = v
				}
			}
			w.WriteHeader(rec.Code)
			_, _ = io.WriteString(w, strings.ReplaceAll(rec.Body.String(), self(), foreign.URL))
		})
	}})
	resp, body := e.post(t, "/batches/"+employeeBatch+"/close")
	if p := problemOf(t, resp, body); resp.StatusCode != 502 || p.Code != "upstream_host_refused" {
		t.Fatalf("got %d %s", resp.StatusCode, body)
	}
	if n := foreignHits.Load(); n != 0 {
		t.Errorf("the foreign host received %d requests", n)
	}
}

// Any number of concurrent unknown ids cost Concur one refresh: the OPEN and the CLOSED list.
func TestUnknownIDFloodSharesOneListCall(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	// A slow list keeps the one fetch in flight while all 50 misses arrive.
	e.sim.SetFault(concursim.Fault{Op: "list", Mode: "slow", Delay: concursim.Duration(time.Second)})
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			resp, body := e.post(t, "/batches/unknown-"+string(rune('a'+i%26))+"/close")
			if resp.StatusCode != 404 {
				t.Errorf("unknown id: %d %s", resp.StatusCode, body)
			}
		})
	}
	wg.Wait()
	if n := e.sim.Stats().ListCalls; n != 2 {
		t.Errorf("50 concurrent unknown ids caused %d batch-list calls, want 2 (one refresh)", n)
	}
}

// The reference page's example response translates exactly, end to end.
func TestReferenceExampleTranslates(t *testing.T) {
	t.Parallel()
	const reference = `<BatchStatus xmlns="http://www.concursolutions.com/api/expense/paymentbatch/2011/11" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">
    <BatchStatus>CLOSED</BatchStatus>
    <File-Url>http:// www.concursolutions.com/api/expense/paymentbatch/v1.1/batch/n$s4MtBKgvoJxAYcbggR7eD2jRU$sxYjePU/file</File-Url>
    <Status>SUCCESS</Status>
    <JobQueueKey>d$wIUEkl72LW299WTjTlskdy</JobQueueKey>
</BatchStatus>`
	e := newEnv(t, envOptions{wrapSim: func(sim http.Handler, _ func() string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasSuffix(r.URL.Path, "/close") {
				sim.ServeHTTP(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/xml")
			_, _ = io.WriteString(w, reference)
		})
	}})
	resp, body := e.post(t, "/batches/12345678901234567890/close")
	want := `{"batchId":"12345678901234567890","batchStatus":"CLOSED","status":"SUCCESS","jobQueueKey":"d$wIUEkl72LW299WTjTlskdy","fileUrl":"/batches/12345678901234567890/file","closedAt":"<time>"}` + "\n"
	got := regexp.MustCompile(`"closedAt":"[^"]+"`).ReplaceAllString(string(body), `"closedAt":"<time>"`)
	if resp.StatusCode != 200 || got != want {
		t.Fatalf("got %d\n%s\nwant\n%s", resp.StatusCode, body, want)
	}
	// The example's File-Url (with its stray space) is not a URL we may send credentials to.
	resp, body = send(t, "GET", e.gateway.URL+"/batches/12345678901234567890/file")
	if p := problemOf(t, resp, body); resp.StatusCode != 502 {
		t.Errorf("file of the reference example: %d %s", resp.StatusCode, p.Code)
	}
}

// A caller that hangs up mid-close does not cancel the close: Concur closes the batch once,
// and the gateway records its File-Url, so the file can be fetched afterwards.
func TestCloseSurvivesCallerHangUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.sim.SetFault(concursim.Fault{Op: "close", Mode: "slow", Delay: concursim.Duration(2 * time.Second), Count: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", e.gateway.URL+"/batches/"+employeeBatch+"/close", nil)
	if err != nil {
		t.Fatal(err)
	}
	answered := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("answered %s", resp.Status)
		}
		answered <- err
	}()
	// The caller hangs up once the close is on its way to Concur (before that, giving up
	// rightly means no close), while Concur is still slow to answer.
	for e.sim.Stats().Requests["close"] == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-answered; !errors.Is(err, context.Canceled) {
		t.Fatalf("the caller was meant to give up first, got %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, _ := send(t, "GET", e.gateway.URL+"/batches/"+employeeBatch+"/file")
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the close was abandoned with its caller: file answers %s, Concur closes %v",
				resp.Status, e.sim.Stats().Closes)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := e.sim.Stats().Closes[employeeBatch]; n != 1 {
		t.Errorf("Concur closes = %d, want 1", n)
	}
}

// clientConfig is a concur.Config for the Concur at base, its token endpoint included, with
// the settings internal/config would set; the values are the tests' own. The caller adds
// the credentials.
func clientConfig(base string, timeout time.Duration) concur.Config {
	return concur.Config{BaseURL: base, TokenURL: base + "/oauth2/v0/token", AuthScheme: "Bearer", Timeout: timeout,
		BreakerThreshold: 5, BreakerOpenInterval: 30 * time.Second, MaxAttempts: 3, MaxConcurrent: 8}
}
