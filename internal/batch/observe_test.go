package batch_test

import (
	"context"
	"maps"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/concur"
	"github.com/finplat/payment-batch-gateway/internal/concursim"
)

// recorder is a batch.Observer that counts what it is told.
type recorder struct {
	mu     sync.Mutex
	counts map[string]int
}

func (r *recorder) add(k string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.counts == nil {
		r.counts = map[string]int{}
	}
	r.counts[k]++
}

func (r *recorder) BatchLookup(hit bool) {
	if hit {
		r.add("lookup hit")
	} else {
		r.add("lookup miss")
	}
}

func (r *recorder) BatchListRefreshed(ok bool) {
	if ok {
		r.add("refresh ok")
	} else {
		r.add("refresh failed")
	}
}

func (r *recorder) CloseObserved(outcome string) { r.add("close " + outcome) }

func (r *recorder) snapshot() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.counts)
}

// The directory tells its Observer every lookup (hit: from the store; miss: it caused or
// joined a refresh) and every refresh it fetched (not those answered from the last fetch
// within the interval), and the outcome of every recorded attempt.
func TestObserverSeesLookupsRefreshesAndCloseOutcomes(t *testing.T) {
	t.Parallel()
	sim, err := concursim.New(concursim.Options{ClientID: "id", ClientSecret: "secret", RefreshToken: "refresh"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	t.Cleanup(sim.Close)
	up, err := concur.New(simClientConfig(srv.URL, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(up.CloseIdleConnections)
	rec := &recorder{}
	clk := &clock{now: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}
	svc := batch.NewService(up, openStore(t),
		batch.Options{BatchListMinInterval: time.Minute, Now: clk.Now, Observer: rec})
	ctx := context.Background()
	const cardBatch, emptyBatch = concursim.SeedOpenCard, concursim.SeedOpenEmpty

	steps := []struct {
		name string
		run  func()
		want map[string]int // what this step adds
	}{
		{"a known-to-Concur id first misses and refreshes", func() {
			_, err := svc.Close(ctx, closeReq(employeeBatch))
			wantCode(t, err, "")
		}, map[string]int{"lookup miss": 1, "refresh ok": 1, "close closed": 1}},
		{"the same id again is a hit, refused by the guard", func() {
			_, err := svc.Close(ctx, closeReq(employeeBatch))
			wantCode(t, err, batch.CodeBatchAlreadyClosed)
		}, map[string]int{"lookup hit": 1, "close refused": 1}},
		{"an unknown id within the interval misses without a fetch", func() {
			_, err := svc.Close(ctx, closeReq("unknown-1"))
			wantCode(t, err, batch.CodeBatchNotFound)
		}, map[string]int{"lookup miss": 1}},
		{"a close Concur refuses with 503 failed", func() {
			sim.SetFault(concursim.Fault{Op: "close", Mode: "status", Status: 503, Count: 1})
			_, err := svc.Close(ctx, closeReq(cardBatch))
			wantCode(t, err, batch.CodeUpstreamUnavailable)
		}, map[string]int{"lookup hit": 1, "close failed": 1}},
		{"a close whose connection is cut is unknown", func() {
			sim.SetFault(concursim.Fault{Op: "close", Mode: "reset", Count: 1})
			_, err := svc.Close(ctx, closeReq(emptyBatch))
			wantCode(t, err, batch.CodeUpstreamUnreachable)
		}, map[string]int{"lookup hit": 1, "close unknown": 1}},
		{"a refresh that cannot read the list failed", func() {
			clk.Advance(2 * time.Minute)
			sim.SetFault(concursim.Fault{Op: "list", Mode: "status", Status: 503, Count: 2})
			_, err := svc.Close(ctx, closeReq("unknown-2"))
			wantCode(t, err, batch.CodeUpstreamUnavailable)
		}, map[string]int{"lookup miss": 1, "refresh failed": 1}},
	}
	want := map[string]int{}
	for _, s := range steps {
		s.run()
		for k, v := range s.want {
			want[k] += v
		}
		if diff := cmp.Diff(want, rec.snapshot()); diff != "" {
			t.Fatalf("after %q, observed (-want +got):\n%s", s.name, diff)
		}
	}
}
