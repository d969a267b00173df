package concur

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestHostGuard(t *testing.T) {
	t.Parallel()
	const p = "/api/expense/paymentbatch/v1.1/batch/pQ7v$sK2m"
	tests := []struct {
		name string
		url  func(good, evil string) string
		code batch.Code
	}{
		{"foreign host", func(_, evil string) string { return evil + p }, batch.CodeUpstreamHostRefused},
		{"same host other port", func(good, _ string) string {
			return strings.Replace(good, "127.0.0.1:", "127.0.0.1:1", 1) + p
		}, batch.CodeUpstreamHostRefused},
		{"userinfo", func(good, _ string) string {
			return strings.Replace(good, "http://", "http://user:pw@", 1) + p
		}, batch.CodeUpstreamHostRefused},
		{"path outside the API", func(good, _ string) string { return good + "/oauth2/v0/token" }, batch.CodeUpstreamHostRefused},
		{"dot segments", func(good, _ string) string {
			return good + "/api/expense/paymentbatch/../../oauth2/v0/token"
		}, batch.CodeUpstreamHostRefused},
		{"encoded dot segments", func(good, _ string) string {
			return good + "/api/expense/paymentbatch/%2e%2e/x"
		}, batch.CodeUpstreamHostRefused},
		{"other scheme", func(good, _ string) string {
			return strings.Replace(good, "http://", "ftp://", 1) + p
		}, batch.CodeUpstreamHostRefused},
		{"relative", func(string, string) string { return p }, batch.CodeUpstreamHostRefused},
		{"unparseable", func(string, string) string { return "http:// www.concursolutions.com" + p }, batch.CodeUpstreamBadResponse},
		{"empty", func(string, string) string { return "  " }, batch.CodeUpstreamBadResponse},
		{"query on Batch-URL", func(good, _ string) string { return good + p + "?x=1" }, batch.CodeUpstreamBadResponse},
	}
	for _, tt := range tests {
		for _, op := range []operation{opClose, opFile} {
			t.Run(tt.name+"/"+op.String(), func(t *testing.T) {
				t.Parallel()
				f, evil := newFake(t), newRecorder(t)
				c, _ := newClient(t, f, nil)
				u := tt.url(f.srv.URL, evil.srv.URL)
				var err error
				if op == opClose {
					_, err = c.CloseBatch(t.Context(), u)
				} else {
					var file *batch.File
					if strings.TrimSpace(u) != "" {
						u += "/file"
					}
					if file, err = c.OpenFile(t.Context(), u); err == nil {
						file.Body.Close()
					}
				}
				if tt.name == "query on Batch-URL" && op == opFile {
					return // a File-Url may carry a query
				}
				wantCode(t, err, tt.code)
				if evil.calls.Load() != 0 || f.apiCalls() != 0 {
					t.Errorf("requests sent: foreign %d, Concur %d", evil.calls.Load(), f.apiCalls())
				}
			})
		}
	}
}

// Host case and the default port do not make a trusted origin foreign.
func TestHostGuardCanonicalOrigin(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	c, _ := newClient(t, f, nil)
	u := strings.Replace(batchURL(f.srv.URL), "http://127.0.0.1", "HTTP://127.0.0.1", 1)
	if _, err := c.CloseBatch(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	if got, want := originOf(mustURL(t, "HTTPS://Us.Api.Concursolutions.com:443/x")), "https://us.api.concursolutions.com"; got != want {
		t.Errorf("originOf = %q, want %q", got, want)
	}
}

// Defence in depth: the auth transport itself refuses an untrusted origin.
func TestAuthTransportRefusesForeignOrigin(t *testing.T) {
	t.Parallel()
	evil := newRecorder(t)
	rt := &authTransport{base: http.DefaultTransport, scheme: "Bearer", trustedBase: "https://us.api.concursolutions.com"}
	for _, ctx := range []context.Context{
		withToken(t.Context(), &token{access: "at-secret"}),
		withToken(t.Context(), &token{access: "at-secret", apiBase: "https://emea.api.concursolutions.com"}),
		t.Context(), // no token at all
	} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, evil.srv.URL+apiPrefix, http.NoBody)
		resp, err := rt.RoundTrip(req)
		if !errors.Is(err, errHostRefused) || resp != nil {
			t.Errorf("RoundTrip = %v, %v; want errHostRefused", resp, err)
		}
	}
	if evil.calls.Load() != 0 {
		t.Errorf("foreign host received %d requests", evil.calls.Load())
	}
}

// A redirect is not followed (Go would carry no Authorization across hosts, but we do not
// even go): a 3xx is a bad answer.
func TestRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	f, evil := newFake(t), newRecorder(t)
	f.serve(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, evil.srv.URL+r.URL.Path, http.StatusTemporaryRedirect)
	})
	c, _ := newClient(t, f, nil)
	for _, op := range []operation{opList, opClose, opFile} {
		e := wantCode(t, call(t.Context(), c, f, op), batch.CodeUpstreamBadResponse)
		if e.Upstream == nil || e.Upstream.Status != http.StatusTemporaryRedirect {
			t.Errorf("%s: Upstream = %+v", op, e.Upstream)
		}
	}
	if evil.calls.Load() != 0 || evil.auths.Load() != 0 {
		t.Errorf("redirect target received %d requests", evil.calls.Load())
	}
}

func closedURL(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	return srv.URL
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Under load the default transport reuses the connections of earlier calls: rounds of
// n calls at once open n connections in all, not more with every round (the standard
// library keeps only 2 idle per host).
func TestDefaultTransportKeepsItsConnections(t *testing.T) {
	t.Parallel()
	const n, rounds = 8, 3
	var opened atomic.Int32
	var arrived sync.WaitGroup
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		arrived.Done()
		arrived.Wait() // every call of the round is in flight at once
		_, _ = io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	tr := DefaultTransport(5 * time.Second)
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for range rounds {
		arrived.Add(n)
		var done sync.WaitGroup
		for range n {
			done.Go(func() {
				resp, err := client.Get(srv.URL)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			})
		}
		done.Wait()
	}
	if got := opened.Load(); got != n {
		t.Errorf("%d rounds of %d calls opened %d connections, want %d", rounds, n, got, n)
	}
}

var ignoreTook = cmpopts.IgnoreFields(seen{}, "Took")

// seen is one ConcurRequest as an Observer is told it.
type seen struct {
	Op, Outcome string
	Status      int
	Took        time.Duration
}

// observed records what the Client tells its Observer.
type observed struct {
	mu        sync.Mutex
	requests  []seen
	refreshes []bool
}

func (o *observed) ConcurRequest(op string, status int, outcome string, took time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.requests = append(o.requests, seen{Op: op, Status: status, Outcome: outcome, Took: took})
}

func (o *observed) TokenRefreshed(ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.refreshes = append(o.refreshes, ok)
}

func (o *observed) got() ([]seen, []bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]seen(nil), o.requests...), append([]bool(nil), o.refreshes...)
}

// Every try of a call is observed once, with Concur's status when this request got one
// and the outcome the try ended with: retries, refusals and the caller's end included.
func TestObserverSeesEveryTry(t *testing.T) {
	t.Parallel()
	slow := func(w http.ResponseWriter, r *http.Request) { time.Sleep(60 * time.Millisecond); serveOK(w, r) }
	tests := []struct {
		name   string
		steps  []step
		mutate func(*Config)
		calls  []operation
		cancel bool // the caller's context has ended before the call
		want   []seen
	}{
		{name: "list", calls: []operation{opList}, want: []seen{{Op: OpList, Status: 200, Outcome: OutcomeOK}}},
		{name: "close", calls: []operation{opClose}, want: []seen{{Op: OpClose, Status: 200, Outcome: OutcomeOK}}},
		{name: "file", calls: []operation{opFile}, want: []seen{{Op: OpFile, Status: 200, Outcome: OutcomeOK}}},
		{name: "list retried after a 503", steps: []step{serveStatus(503)}, calls: []operation{opList},
			mutate: func(c *Config) { c.MaxAttempts = 2 },
			want:   []seen{{Op: OpList, Status: 503, Outcome: "upstream_unavailable"}, {Op: OpList, Status: 200, Outcome: OutcomeOK}}},
		{name: "close 503", steps: []step{serveStatus(503)}, calls: []operation{opClose},
			want: []seen{{Op: OpClose, Status: 503, Outcome: "upstream_unavailable"}}},
		{name: "file reset", steps: []step{serveReset}, calls: []operation{opFile},
			want: []seen{{Op: OpFile, Status: 0, Outcome: "upstream_unreachable"}}},
		{name: "refused by the open breaker", steps: []step{serveStatus(502)}, calls: []operation{opList, opClose},
			mutate: func(c *Config) { c.BreakerThreshold = 1 },
			want:   []seen{{Op: OpList, Status: 502, Outcome: "upstream_bad_response"}, {Op: OpClose, Outcome: OutcomeCircuitOpen}}},
		{name: "the caller left", cancel: true, calls: []operation{opList},
			want: []seen{{Op: OpList, Outcome: OutcomeCallerGone}}},
		{name: "slow list", steps: []step{slow}, calls: []operation{opList},
			want: []seen{{Op: OpList, Status: 200, Outcome: OutcomeOK, Took: 60 * time.Millisecond}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newScripted(t, serveOK, tt.steps...)
			obs := &observed{}
			c, _ := newResilient(t, s.srv.URL, func(c *Config) {
				c.Observer = obs
				if tt.mutate != nil {
					tt.mutate(c)
				}
			})
			ctx, cancel := context.WithCancel(context.Background())
			if tt.cancel {
				cancel()
			}
			defer cancel()
			for _, op := range tt.calls {
				_ = invoke(ctx, c, s.srv.URL, op)
			}
			got, refreshes := obs.got()
			if diff := cmp.Diff(tt.want, got, ignoreTook); diff != "" {
				t.Errorf("observed (-want +got):\n%s", diff)
			}
			for i := range min(len(got), len(tt.want)) {
				if got[i].Took < tt.want[i].Took || got[i].Took <= 0 {
					t.Errorf("try %d took %v, want at least %v", i, got[i].Took, tt.want[i].Took)
				}
			}
			if len(refreshes) != 0 {
				t.Errorf("a static token was renewed: %v", refreshes)
			}
		})
	}
}

// Requests to the token endpoint are tries of OpToken, and each renewal is observed once,
// however many calls waited for it; a renewal that fails is observed as failed, and the
// call that needed it is observed without the token endpoint's status.
func TestObserverSeesTokenRequestsAndRenewals(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	obs := &observed{}
	c, clock := newClient(t, f, func(c *Config) { c.Observer = obs; c.MaxAttempts = 1 })
	t.Cleanup(c.CloseIdleConnections)
	ctx := context.Background()

	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { _ = invoke(ctx, c, f.srv.URL, opList) })
	}
	wg.Wait()
	got, refreshes := obs.got()
	want := []seen{{Op: OpToken, Status: 200, Outcome: OutcomeOK}}
	for range 4 {
		want = append(want, seen{Op: OpList, Status: 200, Outcome: OutcomeOK})
	}
	if diff := cmp.Diff(want, got, ignoreTook); diff != "" {
		t.Errorf("observed (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]bool{true}, refreshes); diff != "" {
		t.Errorf("renewals (-want +got):\n%s", diff)
	}

	f.failTokens("status", http.StatusServiceUnavailable, "")
	clock.advance(2 * time.Hour) // the token has expired: the next call renews it
	_ = invoke(ctx, c, f.srv.URL, opList)
	got, refreshes = obs.got()
	want = []seen{{Op: OpToken, Status: 503, Outcome: "upstream_unavailable"}, {Op: OpList, Outcome: "upstream_unavailable"}}
	if diff := cmp.Diff(want, got[5:], ignoreTook); diff != "" {
		t.Errorf("observed after the token endpoint failed (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]bool{true, false}, refreshes); diff != "" {
		t.Errorf("renewals (-want +got):\n%s", diff)
	}
}

func TestOperation(t *testing.T) {
	t.Parallel()
	for target, want := range map[string]string{
		"https://us.api.concursolutions.com/oauth2/v0/token":                           OpToken,
		"https://idp.example.com/token?x=/close":                                       OpToken,
		"https://h/api/expense/paymentbatch/v1.1/batchlist/OPEN":                       OpList,
		"https://h/api/expense/paymentbatch/v1.1/batch/K3y$1/close":                    OpClose,
		"https://h/api/expense/paymentbatch/v1.2/batch/K3y$1/close":                    OpClose,
		"https://h/api/expense/paymentbatch/v1.1/batch/J0b$Run/file":                   OpFile,
		"https://h/api/expense/paymentbatch/v1.1/batchlist/CLOSED?filter=/close#/file": OpList,
	} {
		if got := Operation(httptest.NewRequest(http.MethodGet, target, nil)); got != want {
			t.Errorf("Operation(%s) = %q, want %q", target, got, want)
		}
	}
}

func TestDefaultTransportKeepsTimeouts(t *testing.T) {
	t.Parallel()
	for _, in := range []time.Duration{time.Second, 5 * time.Second} {
		tr := DefaultTransport(in)
		if tr.ResponseHeaderTimeout != in || tr.TLSHandshakeTimeout != 10*time.Second || tr.DialContext == nil {
			t.Errorf("DefaultTransport(%v): header time-out %v, TLS %v", in, tr.ResponseHeaderTimeout, tr.TLSHandshakeTimeout)
		}
	}
}
