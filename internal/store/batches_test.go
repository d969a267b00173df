package store_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/store"
)

func testUpsertBatches(t *testing.T, h *harness) {
	s := h.open(t)
	mustUpsert(t, s, at(0), testBatch("A", 1), testBatch("B", 1), testBatch("C", 1))

	b2 := testBatch("B", 2)
	b2.Status = "" // unknown: keeps OPEN
	c2 := testBatch("C", 2)
	c2.Status = batch.StatusClosed
	mustUpsert(t, s, at(time.Hour), b2, c2)

	want := map[string]batch.Batch{
		"A": withSeen(testBatch("A", 1), at(0), at(0)),
		"B": withSeen(withStatus(b2, batch.StatusOpen), at(0), at(time.Hour)),
		"C": withSeen(c2, at(0), at(time.Hour)),
	}
	for id, w := range want {
		if diff := cmp.Diff(w, mustGetBatch(t, s, id), ignoreClose); diff != "" {
			t.Errorf("batch %s (-want +got):\n%s", id, diff)
		}
	}

	// Concur never reopens a batch: a stale OPEN list (read before another replica saw the
	// batch CLOSED) must not downgrade it, or the next plain close would regenerate its file.
	c3 := testBatch("C", 3)
	c3.Status = batch.StatusOpen
	mustUpsert(t, s, at(90*time.Minute), c3)
	if got := mustGetBatch(t, s, "C"); got.Status != batch.StatusClosed || got.URL != c3.URL {
		t.Errorf("a stale OPEN entry after CLOSED: Status = %q URL = %q, want CLOSED and the newest URL", got.Status, got.URL)
	}

	// A status is never cleared by an unknown one, even on a new batch.
	d := testBatch("D", 1)
	d.Status = ""
	mustUpsert(t, s, at(2*time.Hour), d)
	if got := mustGetBatch(t, s, "D").Status; got != "" {
		t.Errorf("new batch with unknown status: Status = %q, want \"\"", got)
	}
}

func testUpsertBatchesDuplicates(t *testing.T, h *harness) {
	s := h.open(t)
	mustUpsert(t, s, at(0), testBatch("A", 1), testBatch("A", 2), testBatch("B", 1), testBatch("A", 3))
	if diff := cmp.Diff(withSeen(testBatch("A", 3), at(0), at(0)), mustGetBatch(t, s, "A"), ignoreClose); diff != "" {
		t.Errorf("a batch given thrice: the last should win (-want +got):\n%s", diff)
	}
	if err := s.UpsertBatches(t.Context(), nil, at(0)); err != nil {
		t.Errorf("UpsertBatches(nil): %v", err)
	}
}

func testUpsertBatchesInvalid(t *testing.T, h *harness) {
	s := h.open(t)
	err := s.UpsertBatches(t.Context(), []batch.Batch{testBatch("A", 1), {Name: "no id"}}, at(0))
	if err == nil {
		t.Fatal("UpsertBatches with an empty ID = nil error")
	}
	if _, err := s.GetBatch(t.Context(), "A"); !errors.Is(err, batch.ErrNotStored) {
		t.Errorf("after a failed upsert, GetBatch(A) = %v; want batch.ErrNotStored (nothing stored)", err)
	}
}

func testUpsertBatches100k(t *testing.T, h *harness) {
	if testing.Short() {
		t.Skip("100k batches: not in -short")
	}
	s := h.open(t)
	const n = 100_000
	batches := make([]batch.Batch, n)
	for i := range batches {
		batches[i] = testBatch(fmt.Sprintf("B%06d", i), i)
	}
	start := time.Now()
	mustUpsert(t, s, at(0), batches...)
	first := time.Since(start)
	for i := range batches {
		batches[i].Name += " renamed"
	}
	start = time.Now()
	mustUpsert(t, s, at(time.Minute), batches...)
	t.Logf("upsert of %d batches: %v new, %v existing", n, first, time.Since(start))

	var count int
	if err := h.raw(t).QueryRowContext(t.Context(), "SELECT count(*) FROM batches").Scan(&count); err != nil {
		t.Fatal(err)
	}
	if count != n {
		t.Errorf("%d batches stored, want %d", count, n)
	}
	for _, i := range []int{0, n / 2, n - 1} {
		want := withSeen(batches[i], at(0), at(time.Minute))
		if diff := cmp.Diff(want, mustGetBatch(t, s, batches[i].ID), ignoreClose); diff != "" {
			t.Errorf("batch %d (-want +got):\n%s", i, diff)
		}
	}
}

// testUpsertBatchesConcurrent: replicas upserting the same batches in different orders
// at once neither deadlock nor fail.
func testUpsertBatchesConcurrent(t *testing.T, h *harness) {
	stores := []store.Store{h.open(t), h.open(t)}
	const n = 2000
	forward := make([]batch.Batch, n)
	for i := range forward {
		forward[i] = testBatch(fmt.Sprintf("B%05d", i), i)
	}
	backward := slices.Clone(forward)
	slices.Reverse(backward)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			list := forward
			if i%2 == 1 {
				list = backward
			}
			if err := stores[i%2].UpsertBatches(t.Context(), list, at(time.Duration(i)*time.Second)); err != nil {
				t.Errorf("UpsertBatches %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	for _, id := range []string{"B00000", "B01999"} {
		mustGetBatch(t, stores[1], id)
	}
}

func testTimesTruncated(t *testing.T, h *harness) {
	s := h.open(t)
	seen := time.Date(2031, 5, 6, 7, 8, 9, 123456789, time.FixedZone("CEST", 2*3600))
	mustUpsert(t, s, seen, testBatch("A", 1))
	got := mustGetBatch(t, s, "A")
	want := seen.Truncate(time.Microsecond)
	if !got.LastSeen.Equal(want) || got.LastSeen.Location() != time.UTC {
		t.Errorf("LastSeen = %v, want %v in UTC", got.LastSeen, want)
	}
}

func testGetBatchNotFound(t *testing.T, h *harness) {
	s := h.open(t)
	mustUpsert(t, s, at(0), testBatch("A", 1))
	if b, err := s.GetBatch(t.Context(), "nope"); !errors.Is(err, batch.ErrNotStored) {
		t.Errorf("GetBatch(unknown) = %+v, %v; want batch.ErrNotStored", b, err)
	}
}

func testSetBatchStatus(t *testing.T, h *harness) {
	s := h.open(t)
	mustUpsert(t, s, at(0), testBatch("A", 1), testBatch("B", 1))
	if err := s.SetBatchStatus(t.Context(), "A", batch.StatusClosed); err != nil {
		t.Fatalf("SetBatchStatus: %v", err)
	}
	if got := mustGetBatch(t, s, "A").Status; got != batch.StatusClosed {
		t.Errorf("Status = %q, want CLOSED", got)
	}
	if got := mustGetBatch(t, s, "B").Status; got != batch.StatusOpen {
		t.Errorf("other batch: Status = %q, want OPEN", got)
	}
	if err := s.SetBatchStatus(t.Context(), "nope", batch.StatusClosed); !errors.Is(err, batch.ErrNotStored) {
		t.Errorf("SetBatchStatus(unknown) = %v, want batch.ErrNotStored", err)
	}
}

func withSeen(b batch.Batch, first, last time.Time) batch.Batch {
	b.FirstSeen, b.LastSeen = first, last
	return b
}

func withStatus(b batch.Batch, status string) batch.Batch {
	b.Status = status
	return b
}

// ignoreClose leaves a batch's close state out of a comparison of what the lists said.
var ignoreClose = cmpopts.IgnoreFields(batch.Batch{}, "Close")
