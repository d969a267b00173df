package batch_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/store"
)

// streamUp streams generated lists: open and closed summaries, the list failing with
// failAfter's error once it handed that many summaries (0: never).
type streamUp struct {
	scriptedUp
	mu           sync.Mutex
	open, closed int
	failAfter    int
	failWith     error
	handed       int // summaries handed to the consumer, over all lists
}

func (u *streamUp) ListBatches(_ context.Context, s batch.ListStatus, fn func(batch.Summary) error) error {
	u.mu.Lock()
	n, prefix, failAfter, failWith := u.open, "O", u.failAfter, u.failWith
	if s == batch.ListClosed {
		n, prefix = u.closed, "C"
	}
	u.mu.Unlock()
	for i := range n {
		if failAfter > 0 && i == failAfter {
			return failWith
		}
		u.mu.Lock()
		u.handed++
		u.mu.Unlock()
		id := fmt.Sprintf("%s%06d", prefix, i)
		if err := fn(batch.Summary{ID: id, URL: "https://c/" + id, Name: "n" + id, Currency: "USD"}); err != nil {
			return err
		}
	}
	return nil
}

func (u *streamUp) set(f func()) {
	u.mu.Lock()
	defer u.mu.Unlock()
	f()
}

// chunkStore records the size of every upsert and can fail the n-th one.
type chunkStore struct {
	store.Store
	mu     sync.Mutex
	sizes  []int
	failAt int // 1-based; 0: never
}

func (s *chunkStore) UpsertBatches(ctx context.Context, batches []batch.Batch, seenAt time.Time) error {
	s.mu.Lock()
	s.sizes = append(s.sizes, len(batches))
	fail := s.failAt == len(s.sizes)
	s.mu.Unlock()
	if fail {
		return errors.New("disk full")
	}
	return s.Store.UpsertBatches(ctx, batches, seenAt)
}

func (s *chunkStore) upserts() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.sizes...)
}

func newStreamService(t *testing.T, up *streamUp) (*batch.Service, *chunkStore, *clock) {
	t.Helper()
	st := &chunkStore{Store: openStore(t)}
	clk := &clock{now: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}
	return batch.NewService(up, st, batch.Options{Now: clk.Now}), st, clk
}

// countStored counts the stored batches with the status.
func countStored(t *testing.T, st store.Store, status string) int {
	t.Helper()
	n, after := 0, ""
	for {
		page, err := st.ListBatches(t.Context(), batch.BatchQuery{Status: status, After: after, Limit: store.MaxListBatches})
		if err != nil {
			t.Fatal(err)
		}
		n += len(page)
		if len(page) < store.MaxListBatches {
			return n
		}
		after = page[len(page)-1].ID
	}
}

// A refresh streams each list into the store in chunks of at most ListChunk batches, so
// its memory does not grow with the list; every batch is stored with its list's status.
func TestRefreshUpsertsInChunks(t *testing.T) {
	t.Parallel()
	open, closed := 2*batch.ListChunk+7, batch.ListChunk
	up := &streamUp{open: open, closed: closed}
	svc, st, clk := newStreamService(t, up)
	// Closed by the gateway before the refresh: the OPEN list must not downgrade it.
	if err := st.Store.UpsertBatches(t.Context(), []batch.Batch{{ID: "O000003", URL: "https://c/O000003",
		Status: batch.StatusClosed}}, clk.Now()); err != nil {
		t.Fatal(err)
	}
	page, err := svc.List(t.Context(), batch.ListRequest{Limit: 1})
	if err != nil || page.Stale != nil || !page.AsOf.Equal(clk.Now()) {
		t.Fatalf("List: freshness %+v, %v", page.Freshness, err)
	}
	want := []int{batch.ListChunk, batch.ListChunk, 7, batch.ListChunk}
	if got := st.upserts(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("upserts of %v batches, want %v", got, want)
	}
	if o, c := countStored(t, st, batch.StatusOpen), countStored(t, st, batch.StatusClosed); o != open-1 || c != closed+1 {
		t.Errorf("stored %d OPEN and %d CLOSED, want %d and %d", o, c, open-1, closed+1)
	}
}

// A list that fails part way keeps what was stored before the failure (true entries of
// Concur's list), but the refresh failed: AsOf does not move and the answer is stale.
func TestRefreshFailingMidList(t *testing.T) {
	t.Parallel()
	cut := &batch.Error{Code: batch.CodeUpstreamBadResponse, Detail: "cut"}
	up := &streamUp{open: 3 * batch.ListChunk, closed: 10, failAfter: batch.ListChunk + 10, failWith: cut}
	svc, st, clk := newStreamService(t, up)

	page, err := svc.List(t.Context(), batch.ListRequest{Limit: 1})
	if err != nil || batch.ErrorCode(page.Stale) != batch.CodeUpstreamBadResponse || !page.AsOf.IsZero() {
		t.Fatalf("List after a failed list: freshness %+v, %v; want stale, no asOf", page.Freshness, err)
	}
	if o := countStored(t, st, batch.StatusOpen); o != batch.ListChunk {
		t.Errorf("%d OPEN batches stored, want the %d of the chunk completed before the failure", o, batch.ListChunk)
	}

	up.set(func() { up.failAfter = 0 })
	clk.Advance(time.Minute)
	page, err = svc.List(t.Context(), batch.ListRequest{Limit: 1})
	if err != nil || page.Stale != nil || !page.AsOf.Equal(clk.Now()) {
		t.Fatalf("List after a good refresh: freshness %+v, %v", page.Freshness, err)
	}
	if o := countStored(t, st, batch.StatusOpen); o != 3*batch.ListChunk {
		t.Errorf("%d OPEN batches stored, want %d", o, 3*batch.ListChunk)
	}
}

// A store failure stops the list at once (the rest is not read), and fails the refresh
// with store_unavailable.
func TestRefreshStoreFailure(t *testing.T) {
	t.Parallel()
	up := &streamUp{open: 4 * batch.ListChunk}
	svc, st, _ := newStreamService(t, up)
	st.failAt = 2
	page, err := svc.List(t.Context(), batch.ListRequest{Limit: 1})
	if err != nil || batch.ErrorCode(page.Stale) != batch.CodeStoreUnavailable || !page.AsOf.IsZero() {
		t.Fatalf("List: freshness %+v, %v; want stale with store_unavailable", page.Freshness, err)
	}
	up.mu.Lock()
	handed := up.handed
	up.mu.Unlock()
	if handed != 2*batch.ListChunk {
		t.Errorf("%d summaries read, want %d: the OPEN list stops at the failed upsert", handed, 2*batch.ListChunk)
	}
}
