package batch_test

import (
	"context"
	"errors"
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
	"github.com/finplat/payment-batch-gateway/internal/store"
)

const (
	employeeBatch = concursim.SeedOpenUSD
	closedBatch   = concursim.SeedClosedUSD // seeded CLOSED in Concur
)

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
	e := newTestEnv(t, minInterval)
	return e.svc, e.sim, e.clk, e.listHits
}

// testEnv is a Service on a simulated Concur, and what tests look at or reach around it.
type testEnv struct {
	svc      *batch.Service
	sim      *concursim.Sim
	clk      *clock
	listHits *atomic.Int32 // batch-list requests that reached the wire, faulted ones included
	st       store.Store   // the Service's store
}

func newTestEnv(t *testing.T, minInterval time.Duration) testEnv {
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
	up, err := concur.New(simClientConfig(srv.URL, 2*time.Second)) // one try: count the service's refreshes
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}
	st := openStore(t)
	svc := batch.NewService(up, st, batch.Options{BatchListMinInterval: minInterval, Now: clk.Now})
	return testEnv{svc: svc, sim: sim, clk: clk, listHits: &listHits, st: st}
}

// simClientConfig is a working concur.Config for a concursim.Sim at base (client "id",
// secret "secret", refresh token "refresh"): the settings internal/config would set, with
// values of the tests' own, and one try per call.
func simClientConfig(base string, timeout time.Duration) concur.Config {
	return concur.Config{
		BaseURL: base, TokenURL: base + "/oauth2/v0/token",
		ClientID: "id", ClientSecret: "secret", RefreshToken: "refresh", AuthScheme: "Bearer", Timeout: timeout,
		BreakerThreshold: 5, BreakerOpenInterval: 30 * time.Second, MaxAttempts: 1, MaxConcurrent: 8,
	}
}

// openStore opens a fresh SQLite store, the embedded default.
func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), store.Config{DataDir: t.TempDir(), Key: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func closeReq(id string) batch.CloseRequest {
	return batch.CloseRequest{ID: id, Caller: "test", RequestID: "req-" + id}
}

func wantCode(t *testing.T, err error, code batch.Code) {
	t.Helper()
	if got := batch.ErrorCode(err); got != code {
		t.Fatalf("error = %v (code %q), want code %q", err, got, code)
	}
}

// One refresh reads the OPEN and the CLOSED list: two calls.
const listCallsPerRefresh = 2

func TestUnknownIDsRefreshAtMostOncePerInterval(t *testing.T) {
	t.Parallel()
	svc, sim, clk := newService(t, time.Minute)
	ctx := context.Background()

	_, err := svc.Close(ctx, closeReq("unknown-1"))
	wantCode(t, err, batch.CodeBatchNotFound)
	for i := range 20 { // a flood within the interval costs nothing upstream
		_, err := svc.Close(ctx, closeReq("unknown-flood-"+string(rune('a'+i))))
		wantCode(t, err, batch.CodeBatchNotFound)
	}
	if n := sim.Stats().ListCalls; n != listCallsPerRefresh {
		t.Fatalf("batch-list calls within one interval = %d, want one refresh", n)
	}
	// Known ids are served from the store meanwhile.
	if _, err := svc.Close(ctx, closeReq(employeeBatch)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute + time.Second)
	_, err = svc.Close(ctx, closeReq("unknown-2"))
	wantCode(t, err, batch.CodeBatchNotFound)
	if n := sim.Stats().ListCalls; n != 2*listCallsPerRefresh {
		t.Fatalf("batch-list calls after the interval = %d, want two refreshes", n)
	}
}

func TestFailedListFetchIsRememberedWithinInterval(t *testing.T) {
	t.Parallel()
	svc, sim, clk, listHits := newServiceCounting(t, time.Minute)
	sim.SetFault(concursim.Fault{Op: "list", Mode: "status", Status: 503, Message: "maintenance"})
	for range 3 {
		_, err := svc.Close(context.Background(), closeReq(employeeBatch))
		wantCode(t, err, batch.CodeUpstreamUnavailable) // not a misleading 404
	}
	if n := listHits.Load(); n != listCallsPerRefresh {
		t.Fatalf("batch-list requests = %d, want one refresh: a failing list must not be hammered", n)
	}
	sim.ClearFault()
	clk.Advance(time.Minute + time.Second)
	if _, err := svc.Close(context.Background(), closeReq(employeeBatch)); err != nil {
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
		_, err := svc.Close(context.Background(), closeReq(employeeBatch))
		wantCode(t, err, batch.CodeBatchNotFound)
		st := sim.Stats()
		if st.ListCalls != 2*listCallsPerRefresh || st.Closes[employeeBatch] != 0 {
			t.Errorf("Concur %d: list calls %d (want lookup + one refresh), closes %v (want none)", f.Status, st.ListCalls, st.Closes)
		}
		// Concur answered: the attempt failed, it is not unknown.
		trail, err := svc.Closes(context.Background(), employeeBatch, 10)
		if err != nil || len(trail) != 1 || trail[0].Outcome != "failed" || trail[0].UpstreamStatus != f.Status {
			t.Errorf("audit trail = %+v, %v", trail, err)
		}
	}
}

func TestFileAfterClose(t *testing.T) {
	t.Parallel()
	svc, sim, _ := newService(t, 0)
	ctx := context.Background()
	_, err := svc.File(ctx, batch.FileRequest{ID: employeeBatch})
	wantCode(t, err, batch.CodeFileNotFound)
	_, err = svc.File(ctx, batch.FileRequest{ID: "../etc"})
	wantCode(t, err, batch.CodeInvalidBatchID)

	res, err := svc.Close(ctx, closeReq(employeeBatch))
	if err != nil || res.BatchStatus != "CLOSED" || res.Status != "SUCCESS" || res.FileURL == "" {
		t.Fatalf("Close = %+v, %v", res, err)
	}
	f, err := svc.File(ctx, batch.FileRequest{ID: employeeBatch})
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
		_, err := svc.Close(context.Background(), closeReq(id))
		wantCode(t, err, batch.CodeInvalidBatchID)
	}
	if st := sim.Stats(); st.ListCalls != 0 || st.TokenRequests != 0 {
		t.Errorf("invalid ids reached Concur: %+v", st)
	}
}

// Concurrent closes of one batch make one Concur close: a second would make Concur
// regenerate the payment file. The others are told it is in progress, or already closed.
func TestConcurrentClosesOfOneBatchMakeOneConcurClose(t *testing.T) {
	t.Parallel()
	svc, sim, _ := newService(t, 0)
	sim.SetFault(concursim.Fault{Op: "close", Mode: "slow", Delay: concursim.Duration(300 * time.Millisecond)})
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		codes = map[batch.Code]int{}
	)
	for range 20 {
		wg.Go(func() {
			_, err := svc.Close(context.Background(), closeReq(employeeBatch))
			mu.Lock()
			codes[batch.ErrorCode(err)]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if n := sim.Stats().Closes[employeeBatch]; n != 1 || codes[""] != 1 ||
		codes[batch.CodeCloseInProgress]+codes[batch.CodeBatchAlreadyClosed] != 19 {
		t.Fatalf("Concur saw %d closes; answers by code %v", n, codes)
	}
}

func TestRegenerationGuard(t *testing.T) {
	t.Parallel()
	svc, sim, _ := newService(t, 0)
	ctx := context.Background()
	first, err := svc.Close(ctx, closeReq(employeeBatch))
	if err != nil || first.Regenerated {
		t.Fatalf("first close: %+v, %v", first, err)
	}
	_, err = svc.Close(ctx, closeReq(employeeBatch))
	wantCode(t, err, batch.CodeBatchAlreadyClosed)
	e, _ := errors.AsType[*batch.Error](err)
	if e.Recorded == nil || e.Recorded.FileURL != first.FileURL || e.Recorded.JobQueueKey != first.JobQueueKey {
		t.Errorf("recorded = %+v, want the first close's result %+v", e.Recorded, first)
	}
	req := closeReq(employeeBatch)
	req.Regenerate = true
	again, err := svc.Close(ctx, req)
	if err != nil || !again.Regenerated {
		t.Fatalf("regenerate: %+v, %v", again, err)
	}
	if st := sim.Stats(); st.Closes[employeeBatch] != 2 || st.Regenerations[employeeBatch] != 1 {
		t.Errorf("closes %v, regenerations %v", st.Closes, st.Regenerations)
	}
	// A batch already in Concur's CLOSED list is refused without a recorded result.
	_, err = svc.Close(ctx, closeReq(closedBatch))
	wantCode(t, err, batch.CodeBatchAlreadyClosed)
	if e, _ := errors.AsType[*batch.Error](err); e.Recorded != nil {
		t.Errorf("recorded = %+v for a batch the gateway never closed", e.Recorded)
	}
}

// A close whose answer was lost is unknown; the next close reads the list. When Concur did
// close it, the next close is refused; when it did not, the next close goes ahead.
func TestUnknownOutcomeIsSettledFromTheList(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name      string
		fault     concursim.Fault
		wantCode  batch.Code
		wantClose int
	}{
		{"closed, answer lost", concursim.Fault{Op: "close", Mode: "lost", Count: 1}, batch.CodeBatchAlreadyClosed, 1},
		{"not closed, timed out", concursim.Fault{Op: "close", Mode: "slow", Delay: concursim.Duration(3 * time.Second), Count: 1}, "", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			svc, sim, _ := newService(t, time.Hour) // the re-read must ignore the refresh bound
			ctx := context.Background()
			sim.SetFault(tt.fault)
			_, err := svc.Close(ctx, closeReq(employeeBatch))
			if code := batch.ErrorCode(err); code != batch.CodeUpstreamUnreachable && code != batch.CodeUpstreamTimeout {
				t.Fatalf("first close: %v", err)
			}
			lists := sim.Stats().ListCalls
			_, err = svc.Close(ctx, closeReq(employeeBatch))
			wantCode(t, err, tt.wantCode)
			st := sim.Stats()
			if st.ListCalls != lists+listCallsPerRefresh || st.Closes[employeeBatch] != tt.wantClose || st.Regenerations[employeeBatch] != 0 {
				t.Errorf("list calls %d (before %d), closes %v, regenerations %v", st.ListCalls, lists, st.Closes, st.Regenerations)
			}
			trail, _ := svc.Closes(ctx, employeeBatch, 10)
			if len(trail) != 2 || trail[1].Outcome != "unknown" {
				t.Errorf("audit trail = %+v", trail)
			}
		})
	}
}
