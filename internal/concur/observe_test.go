package concur

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

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

	f.set(func(f *fakeConcur) {
		f.tokenFail = func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": "unavailable"})
		}
	})
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

// Ready asks Concur for nothing while the token is fresh, renews a stale one, and reports
// a renewal that fails.
func TestReady(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	c, clock := newClient(t, f, nil)
	t.Cleanup(c.CloseIdleConnections)
	ctx := context.Background()
	for i := range 3 {
		if err := c.Ready(ctx); err != nil {
			t.Fatalf("Ready #%d: %v", i, err)
		}
	}
	if n := f.tokenCalls.Load(); n != 1 {
		t.Errorf("token requests = %d, want 1: a fresh token needs none", n)
	}
	f.set(func(f *fakeConcur) {
		f.tokenFail = func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusBadGateway, map[string]any{"error": "down"})
		}
	})
	if err := c.Ready(ctx); err != nil {
		t.Errorf("Ready with a fresh token while the token endpoint is down: %v", err)
	}
	clock.advance(2 * time.Hour)
	if err := c.Ready(ctx); err == nil {
		t.Error("Ready with an expired token and the token endpoint down: nil, want an error")
	}
	if n := f.tokenCalls.Load(); n != 2 {
		t.Errorf("token requests = %d, want 2", n)
	}

	static, _ := newResilient(t, closedURL(t), nil)
	if err := static.Ready(ctx); err != nil {
		t.Errorf("Ready with a static token: %v", err)
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
	for in, want := range map[time.Duration]time.Duration{0: DefaultTimeout, 5 * time.Second: 5 * time.Second} {
		tr := DefaultTransport(in)
		if tr.ResponseHeaderTimeout != want || tr.TLSHandshakeTimeout != 10*time.Second || tr.DialContext == nil {
			t.Errorf("DefaultTransport(%v): header time-out %v, TLS %v", in, tr.ResponseHeaderTimeout, tr.TLSHandshakeTimeout)
		}
	}
}
