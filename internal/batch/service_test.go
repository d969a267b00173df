package batch_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/concur"
	"github.com/finplat/payment-batch-gateway/internal/concursim"
)

const employeeBatch = "6f1c2a9e-3b7d-4e58-9a41-0c2d8e7f5b13"

// clock is a manual clock for the refresh bound.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// newService wires the real Concur client to a simulated Concur over HTTP.
func newService(t *testing.T, minInterval time.Duration) (*batch.Service, *concursim.Sim, *clock) {
	t.Helper()
	svc, sim, clk, _ := newServiceCounting(t, minInterval)
	return svc, sim, clk
}

// newServiceCounting also counts every batch-list request that reaches the wire,
// including those the simulator answers with an injected fault.
func newServiceCounting(t *testing.T, minInterval time.Duration) (*batch.Service, *concursim.Sim, *clock, *atomic.Int32) {
	t.Helper()
	sim, err := concursim.New(concursim.Options{ClientID: "id", ClientSecret: "secret", RefreshToken: "refresh"})
	if err != nil {
		t.Fatal(err)
	}
	var listHits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/batchlist") {
			listHits.Add(1)
		}
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(sim.Close)
	up, err := concur.New(concur.Config{
		BaseURL: srv.URL, TokenURL: srv.URL + "/oauth2/v0/token",
		ClientID: "id", ClientSecret: "secret", RefreshToken: "refresh", Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}
	return batch.NewService(up, batch.Options{BatchListMinInterval: minInterval, Now: clk.Now}), sim, clk, &listHits
}

func wantCode(t *testing.T, err error, code batch.Code) {
	t.Helper()
	if got := batch.ErrorCode(err); got != code {
		t.Fatalf("error = %v (code %q), want code %q", err, got, code)
	}
}

func TestUnknownIDsRefreshAtMostOncePerInterval(t *testing.T) {
	t.Parallel()
	svc, sim, clk := newService(t, time.Minute)
	ctx := context.Background()

	_, err := svc.Close(ctx, "unknown-1")
	wantCode(t, err, batch.CodeBatchNotFound)
	for i := range 20 { // a flood within the interval costs nothing upstream
		_, err := svc.Close(ctx, "unknown-flood-"+string(rune('a'+i)))
		wantCode(t, err, batch.CodeBatchNotFound)
	}
	if n := sim.Stats().ListCalls; n != 1 {
		t.Fatalf("batch-list calls within one interval = %d, want 1", n)
	}
	// Known ids are served from the cache meanwhile.
	if _, err := svc.Close(ctx, employeeBatch); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute + time.Second)
	_, err = svc.Close(ctx, "unknown-2")
	wantCode(t, err, batch.CodeBatchNotFound)
	if n := sim.Stats().ListCalls; n != 2 {
		t.Fatalf("batch-list calls after the interval = %d, want 2", n)
	}
}

func TestFailedListFetchIsRememberedWithinInterval(t *testing.T) {
	t.Parallel()
	svc, sim, clk, listHits := newServiceCounting(t, time.Minute)
	sim.SetFault(concursim.Fault{Op: "list", Mode: "status", Status: 503, Message: "maintenance"})
	for range 3 {
		_, err := svc.Close(context.Background(), employeeBatch)
		wantCode(t, err, batch.CodeUpstreamUnavailable) // not a misleading 404
	}
	if n := listHits.Load(); n != 1 {
		t.Fatalf("batch-list requests = %d, want 1: a failing list must not be hammered", n)
	}
	sim.ClearFault()
	clk.Advance(time.Minute + time.Second)
	if _, err := svc.Close(context.Background(), employeeBatch); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

func TestConcurNotFoundRefreshesListOnceAndDoesNotClose(t *testing.T) {
	t.Parallel()
	for _, f := range []concursim.Fault{
		{Op: "close", Mode: "status", Status: 404, Message: "The Batch ID is invalid.", Count: 1},
		{Op: "close", Mode: "status", Status: 400, Message: "Batch ID is invalid.", Count: 1},
	} {
		svc, sim, _ := newService(t, 0)
		sim.SetFault(f)
		_, err := svc.Close(context.Background(), employeeBatch)
		wantCode(t, err, batch.CodeBatchNotFound)
		st := sim.Stats()
		if st.ListCalls != 2 || st.Closes[employeeBatch] != 0 {
			t.Errorf("Concur %d: list calls %d (want 2: lookup + one refresh), closes %v (want none)", f.Status, st.ListCalls, st.Closes)
		}
	}
}

func TestFileAfterClose(t *testing.T) {
	t.Parallel()
	svc, sim, _ := newService(t, 0)
	ctx := context.Background()
	_, err := svc.File(ctx, employeeBatch)
	wantCode(t, err, batch.CodeFileNotFound)
	_, err = svc.File(ctx, "../etc")
	wantCode(t, err, batch.CodeInvalidBatchID)

	res, err := svc.Close(ctx, employeeBatch)
	if err != nil || res.BatchStatus != "CLOSED" || res.Status != "SUCCESS" || res.FileURL == "" {
		t.Fatalf("Close = %+v, %v", res, err)
	}
	f, err := svc.File(ctx, employeeBatch)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Body.Close()
	body, err := io.ReadAll(f.Body)
	if err != nil || len(body) == 0 || f.ContentType != "text/csv" || f.ContentLength != int64(len(body)) {
		t.Fatalf("file: %q %d bytes (Content-Length %d), %v", f.ContentType, len(body), f.ContentLength, err)
	}
	if sim.Stats().FilesServed != 1 {
		t.Errorf("files served = %d", sim.Stats().FilesServed)
	}
}

func TestInvalidIDNeverReachesConcur(t *testing.T) {
	t.Parallel()
	svc, sim, _ := newService(t, 0)
	for _, id := range []string{"", "a/b", "a%2Fb", "..", "x?y=1", "6f1c2a9e$", "bätch"} {
		_, err := svc.Close(context.Background(), id)
		wantCode(t, err, batch.CodeInvalidBatchID)
	}
	if st := sim.Stats(); st.ListCalls != 0 || st.TokenRequests != 0 {
		t.Errorf("invalid ids reached Concur: %+v", st)
	}
}

// Concurrent closes of one batch share one Concur close: a second close would make Concur
// regenerate the payment file.
func TestConcurrentClosesOfOneBatchShareOneConcurClose(t *testing.T) {
	t.Parallel()
	svc, sim, _ := newService(t, 0)
	sim.SetFault(concursim.Fault{Op: "close", Mode: "slow", Delay: concursim.Duration(300 * time.Millisecond)})
	var wg sync.WaitGroup
	results := make([]batch.CloseResult, 20)
	for i := range results {
		wg.Go(func() {
			res, err := svc.Close(context.Background(), employeeBatch)
			if err != nil {
				t.Errorf("close %d: %v", i, err)
			}
			results[i] = res
		})
	}
	wg.Wait()
	if n := sim.Stats().Closes[employeeBatch]; n != 1 {
		t.Fatalf("Concur saw %d closes of one batch, want 1", n)
	}
	for i, r := range results {
		if r != results[0] || r.JobQueueKey == "" {
			t.Errorf("caller %d got %+v, caller 0 got %+v", i, r, results[0])
		}
	}
}
