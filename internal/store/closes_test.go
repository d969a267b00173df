package store_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/store"
)

// attempt returns an in-progress attempt of batch id begun at start, leased for a minute.
func attempt(id string, start time.Time, requestID string) batch.Close {
	return batch.Close{BatchID: id, Caller: "payroll", RequestID: requestID, IdempotencyKey: "key-" + requestID,
		StartedAt: start, LeaseUntil: start.Add(time.Minute), Outcome: batch.OutcomeInProgress}
}

func refused(id string, start time.Time, requestID string) batch.Close {
	c := attempt(id, start, requestID)
	c.Outcome, c.EndedAt, c.LeaseUntil, c.ErrorCode = batch.OutcomeRefused, start, time.Time{}, "close_in_progress"
	return c
}

func mustGet(t *testing.T, s store.Store, id string) batch.Batch {
	t.Helper()
	b, err := s.GetBatch(t.Context(), id)
	if err != nil {
		t.Fatalf("GetBatch(%s): %v", id, err)
	}
	return b
}

// begin takes batch id's lease (open -> closing) as the domain does.
func begin(t *testing.T, s store.Store, id, requestID string) (batch.Batch, batch.Close, error) {
	t.Helper()
	b := mustGet(t, s, id)
	att := attempt(id, b.Close.Now, requestID)
	to := batch.CloseState{State: batch.StateClosing, Prev: b.Close.State}
	return s.Apply(t.Context(), batch.Change{BatchID: id, From: b.Close.Version, To: &to, Begin: &att})
}

func mustList(t *testing.T, s store.Store, id string, limit int) []batch.Close {
	t.Helper()
	cs, err := s.ListCloses(t.Context(), id, limit)
	if err != nil {
		t.Fatalf("ListCloses: %v", err)
	}
	return cs
}

// The close state is read with the database's clock, and a new batch is open.
func testCloseStateClock(t *testing.T, h *harness) {
	s := h.open(t)
	mustUpsert(t, s, at(0), testBatch("A", 1))
	before := time.Now().Add(-2 * time.Second)
	b := mustGet(t, s, "A")
	after := time.Now().Add(2 * time.Second)
	if b.Close.State != batch.StateOpen || b.Close.Version != 0 {
		t.Errorf("new batch close state = %+v, want open at version 0", b.Close)
	}
	if b.Close.Now.Before(before) || b.Close.Now.After(after) {
		t.Errorf("Close.Now = %v, want the database's clock, about %v", b.Close.Now, time.Now())
	}
}

// Apply is a compare-and-set: of two changes decided on one version, one wins; the other
// gets ErrStateChanged and writes nothing (its attempt is not inserted).
func testApplyCompareAndSet(t *testing.T, h *harness) {
	s := h.open(t)
	mustUpsert(t, s, at(0), testBatch("A", 1))
	b, att, err := begin(t, s, "A", "r1")
	if err != nil {
		t.Fatal(err)
	}
	if b.Close.State != batch.StateClosing || b.Close.CloseID != att.ID || att.ID == 0 || b.Close.Version != 1 ||
		!b.Close.LeaseUntil.Equal(att.LeaseUntil) || b.Close.Prev != batch.StateOpen {
		t.Fatalf("after begin: batch %+v, attempt %+v", b.Close, att)
	}
	stale := batch.CloseState{State: batch.StateClosing}
	other := attempt("A", at(0), "r2")
	if _, _, err := s.Apply(t.Context(), batch.Change{BatchID: "A", From: 0, To: &stale, Begin: &other}); !errors.Is(err, batch.ErrStateChanged) {
		t.Fatalf("Apply on a stale version = %v, want ErrStateChanged", err)
	}
	if got := mustList(t, s, "A", 10); len(got) != 1 {
		t.Errorf("a failed Apply inserted its attempt: %+v", got)
	}
	end := att
	end.Outcome, end.EndedAt, end.FileURL = batch.OutcomeClosed, b.Close.Now, "https://h/file"
	to := batch.CloseState{State: batch.StateClosed, FileClose: att.ID}
	b, rec, err := s.Apply(t.Context(), batch.Change{BatchID: "A", From: b.Close.Version, To: &to, End: &end})
	if err != nil {
		t.Fatal(err)
	}
	if b.Close.State != batch.StateClosed || b.Close.FileClose != att.ID || rec.Outcome != batch.OutcomeClosed {
		t.Errorf("after end: %+v, %+v", b.Close, rec)
	}
	// What Apply returns is the batch as stored (its state update's RETURNING): a re-read
	// differs only in the database's clock.
	again := mustGet(t, s, "A")
	returned := b
	returned.Close.Now, again.Close.Now = time.Time{}, time.Time{}
	if diff := cmp.Diff(again, returned); diff != "" || returned.Status != "CLOSED" {
		t.Errorf("Apply returned a batch other than the stored one (-stored +returned):\n%s", diff)
	}
	got, err := s.GetClose(t.Context(), att.ID)
	if err != nil || got.FileURL != "https://h/file" || got.Outcome != batch.OutcomeClosed || !got.LeaseUntil.IsZero() {
		t.Errorf("GetClose = %+v, %v", got, err)
	}
	if _, _, err := s.Apply(t.Context(), batch.Change{BatchID: "nope", From: 0, To: &to}); !errors.Is(err, batch.ErrNotStored) {
		t.Errorf("Apply on an unknown batch = %v, want batch.ErrNotStored", err)
	}
	r := refused("nope", at(0), "x")
	if _, _, err := s.Apply(t.Context(), batch.Change{BatchID: "nope", Begin: &r}); !errors.Is(err, batch.ErrNotStored) {
		t.Errorf("a refusal on an unknown batch = %v, want batch.ErrNotStored", err)
	}
}

// Many replicas deciding on one version: exactly one takes the lease.
func testApplyExclusiveConcurrent(t *testing.T, h *harness) {
	s := h.open(t)
	s2 := h.open(t)
	mustUpsert(t, s, at(0), testBatch("A", 1))
	b := mustGet(t, s, "A")
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		wins int
	)
	for i := range 8 {
		st := []store.Store{s, s2}[i%2]
		wg.Go(func() {
			att := attempt("A", b.Close.Now, fmt.Sprint("r", i))
			to := batch.CloseState{State: batch.StateClosing, Prev: batch.StateOpen}
			_, _, err := st.Apply(t.Context(), batch.Change{BatchID: "A", From: b.Close.Version, To: &to, Begin: &att})
			switch {
			case err == nil:
				mu.Lock()
				wins++
				mu.Unlock()
			case !errors.Is(err, batch.ErrStateChanged):
				t.Errorf("Apply: %v", err)
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("%d replicas took the lease, want 1", wins)
	}
}

// CloseByKey finds the caller's latest attempt with the key that reached Concur, not
// one that was refused, another caller's, or another batch's.
func testCloseByKey(t *testing.T, h *harness) {
	s := h.open(t)
	mustUpsert(t, s, at(0), testBatch("A", 1), testBatch("B", 1))
	_, att, err := begin(t, s, "A", "r1")
	if err != nil {
		t.Fatal(err)
	}
	r := refused("A", at(0), "r1") // the same key, refused later
	if _, _, err := s.Apply(t.Context(), batch.Change{BatchID: "A", Begin: &r}); err != nil {
		t.Fatal(err)
	}
	got, err := s.CloseByKey(t.Context(), "A", "payroll", "key-r1")
	if err != nil || got.ID != att.ID {
		t.Errorf("CloseByKey = %+v, %v; want attempt %d", got, err, att.ID)
	}
	for _, tc := range [][3]string{{"B", "payroll", "key-r1"}, {"A", "other", "key-r1"}, {"A", "payroll", "key-x"}} {
		if _, err := s.CloseByKey(t.Context(), tc[0], tc[1], tc[2]); !errors.Is(err, batch.ErrNotStored) {
			t.Errorf("CloseByKey%v = %v, want batch.ErrNotStored", tc, err)
		}
	}
}

// DueScheduled returns the scheduled batches whose check time has passed on the
// database's clock, and closings of the finisher whose lease expired.
func testDueScheduled(t *testing.T, h *harness) {
	s := h.open(t)
	mustUpsert(t, s, at(0), testBatch("A", 1), testBatch("B", 1), testBatch("C", 1))
	for id, check := range map[string]time.Duration{"A": -time.Second, "B": time.Hour} {
		b := mustGet(t, s, id)
		to := batch.CloseState{State: batch.StateScheduled, CheckAt: b.Close.Now.Add(check), SettleUntil: b.Close.Now.Add(time.Hour)}
		if _, _, err := s.Apply(t.Context(), batch.Change{BatchID: id, From: b.Close.Version, To: &to}); err != nil {
			t.Fatal(err)
		}
	}
	b := mustGet(t, s, "C")
	att := attempt("C", b.Close.Now.Add(-time.Hour), "r")
	att.LeaseUntil = b.Close.Now.Add(-time.Minute)
	to := batch.CloseState{State: batch.StateClosing, Prev: batch.StateScheduled}
	if _, _, err := s.Apply(t.Context(), batch.Change{BatchID: "C", From: b.Close.Version, To: &to, Begin: &att}); err != nil {
		t.Fatal(err)
	}
	due, err := s.DueScheduled(t.Context(), 10)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range due {
		ids = append(ids, d.ID)
	}
	if diff := cmp.Diff([]string{"C", "A"}, ids); diff != "" && cmp.Diff([]string{"A", "C"}, ids) != "" {
		t.Errorf("DueScheduled = %v, want A and C", ids)
	}
}

func testListCloses(t *testing.T, h *harness) {
	s := h.open(t)
	mustUpsert(t, s, at(0), testBatch("A", 1), testBatch("B", 1))
	var want []batch.Close
	for i := range 5 {
		r := refused("A", at(time.Duration(i)*time.Minute), fmt.Sprint("r", i))
		_, c, err := s.Apply(t.Context(), batch.Change{BatchID: "A", Begin: &r})
		if err != nil {
			t.Fatal(err)
		}
		want = append([]batch.Close{c}, want...) // newest first
		rb := refused("B", at(0), fmt.Sprint("b", i))
		if _, _, err := s.Apply(t.Context(), batch.Change{BatchID: "B", Begin: &rb}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		limit int
		want  []batch.Close
	}{
		{1, want[:1]},
		{3, want[:3]},
		{5, want},
		{1 << 30, want},
	} {
		if diff := cmp.Diff(tc.want, mustList(t, s, "A", tc.limit)); diff != "" {
			t.Errorf("ListCloses(A, %d) (-want +got):\n%s", tc.limit, diff)
		}
	}
	if got := mustList(t, s, "nope", 10); len(got) != 0 {
		t.Errorf("ListCloses(unknown) = %+v, want none", got)
	}
	for _, limit := range []int{0, -1} {
		if _, err := s.ListCloses(t.Context(), "A", limit); err == nil {
			t.Errorf("ListCloses(limit %d) = nil error, want one", limit)
		}
	}
}

// A close's upstream_correlation_id (Concur's concur-correlationid) round-trips: written
// with an attempt begun already ended, and with the end of one begun in progress, and read
// by GetClose, ListCloses and CloseByKey.
func testCloseCorrelationID(t *testing.T, h *harness) {
	s := h.open(t)
	mustUpsert(t, s, at(0), testBatch("A", 1))
	const endID, refusedID = "7C1D2B3A-4E5F-4A6B-8C7D-9E0F1A2B3C4D", "refused-answer-id"
	b, att, err := begin(t, s, "A", "r1")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetClose(t.Context(), att.ID); err != nil || got.UpstreamCorrelationID != "" {
		t.Fatalf("in progress: GetClose = %+v, %v; want no correlation id", got, err)
	}
	end := att
	end.Outcome, end.EndedAt, end.UpstreamStatus, end.UpstreamCorrelationID = batch.OutcomeClosed, b.Close.Now, 200, endID
	to := batch.CloseState{State: batch.StateClosed, FileClose: att.ID}
	b, rec, err := s.Apply(t.Context(), batch.Change{BatchID: "A", From: b.Close.Version, To: &to, End: &end})
	if err != nil || rec.UpstreamCorrelationID != endID {
		t.Fatalf("end: %+v, %v", rec, err)
	}
	r := refused("A", b.Close.Now, "r2")
	r.UpstreamCorrelationID = refusedID
	if _, _, err := s.Apply(t.Context(), batch.Change{BatchID: "A", Begin: &r}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetClose(t.Context(), att.ID); err != nil || got.UpstreamCorrelationID != endID {
		t.Errorf("GetClose = %+v, %v; want correlation id %q", got, err, endID)
	}
	if got, err := s.CloseByKey(t.Context(), "A", "payroll", "key-r1"); err != nil || got.UpstreamCorrelationID != endID {
		t.Errorf("CloseByKey = %+v, %v; want correlation id %q", got, err, endID)
	}
	list := mustList(t, s, "A", 10)
	if len(list) != 2 || list[0].UpstreamCorrelationID != refusedID || list[1].UpstreamCorrelationID != endID {
		t.Errorf("ListCloses = %+v; want %q then %q", list, refusedID, endID)
	}
}
