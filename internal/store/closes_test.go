package store_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/finplat/payment-batch-gateway/internal/store"
)

// attempt returns an in-progress attempt of batch id begun at start, leased for a minute.
func attempt(id string, start time.Time, requestID string) store.Close {
	return store.Close{BatchID: id, Caller: "payroll", RequestID: requestID, IdempotencyKey: "key-" + requestID,
		StartedAt: start, LeaseUntil: start.Add(time.Minute), Outcome: store.OutcomeInProgress}
}

func mustBegin(t *testing.T, s store.Store, c store.Close) store.Begun {
	t.Helper()
	b, err := s.BeginClose(t.Context(), c)
	if err != nil {
		t.Fatalf("BeginClose(%s): %v", c.RequestID, err)
	}
	return b
}

func mustFinish(t *testing.T, s store.Store, c store.Close, o store.Outcome, end time.Time) store.Close {
	t.Helper()
	c.Outcome, c.EndedAt = o, end
	if o == store.OutcomeClosed && c.FileURL == "" && c.BatchStatus == "" {
		c.BatchStatus = store.StatusClosed // as a synchronous close answers
	}
	if err := s.FinishClose(t.Context(), c); err != nil {
		t.Fatalf("FinishClose(%d): %v", c.ID, err)
	}
	return c
}

func mustList(t *testing.T, s store.Store, id string, limit int) []store.Close {
	t.Helper()
	cs, err := s.ListCloses(t.Context(), id, limit)
	if err != nil {
		t.Fatalf("ListCloses: %v", err)
	}
	return cs
}

func testBeginCloseNotFound(t *testing.T, h *harness) {
	s := h.open(t)
	if _, err := s.BeginClose(t.Context(), attempt("nope", at(0), "r1")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("BeginClose(unknown batch) = %v, want ErrNotFound", err)
	}
	if _, err := s.RecordClose(t.Context(), refused("nope", at(0), "r2")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RecordClose(unknown batch) = %v, want ErrNotFound", err)
	}
}

func testBeginCloseExclusive(t *testing.T, h *harness) {
	s := h.open(t)
	mustUpsert(t, s, at(0), batch("A", 1), batch("B", 1))
	first := mustBegin(t, s, attempt("A", at(0), "r1"))
	_, err := s.BeginClose(t.Context(), attempt("A", at(30*time.Second), "r2"))
	if !errors.Is(err, store.ErrCloseInProgress) {
		t.Fatalf("second BeginClose within the lease = %v, want ErrCloseInProgress", err)
	}
	if got := mustList(t, s, "A", 10); len(got) != 1 || got[0].ID != first.Attempt.ID {
		t.Errorf("a refused BeginClose recorded something: %+v", got)
	}
	mustBegin(t, s, attempt("B", at(0), "r3")) // another batch is free

	mustFinish(t, s, first.Attempt, store.OutcomeFailed, at(40*time.Second))
	mustBegin(t, s, attempt("A", at(50*time.Second), "r4")) // the lease ends with the attempt
}

// testBeginCloseExclusiveConcurrent: 50 BeginClose at once from two instances (replicas):
// exactly one wins.
func testBeginCloseExclusiveConcurrent(t *testing.T, h *harness) {
	s1, s2 := h.open(t), h.open(t)
	mustUpsert(t, s1, at(0), batch("A", 1))
	const n = 50
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, n)
	)
	for i := range n {
		s := s1
		if i%2 == 1 {
			s = s2
		}
		wg.Go(func() {
			<-start
			_, errs[i] = s.BeginClose(t.Context(), attempt("A", at(time.Duration(i)*time.Millisecond), fmt.Sprint("r", i)))
		})
	}
	close(start)
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrCloseInProgress):
			t.Errorf("BeginClose %d: %v, want nil or ErrCloseInProgress", i, err)
		}
	}
	if won != 1 {
		t.Errorf("%d of %d concurrent BeginClose won, want exactly 1", won, n)
	}
	if got := mustList(t, s1, "A", 100); len(got) != 1 {
		t.Errorf("%d attempts recorded, want 1", len(got))
	}
}

func testBeginCloseExpiredLease(t *testing.T, h *harness) {
	s := h.open(t)
	mustUpsert(t, s, at(0), batch("A", 1))
	crashed := mustBegin(t, s, attempt("A", at(0), "r1")).Attempt // lease until at(1m)

	next := attempt("A", at(2*time.Minute), "r2")
	begun := mustBegin(t, s, next)
	want := crashed
	want.Outcome, want.EndedAt = store.OutcomeUnknown, next.StartedAt
	if begun.LastDecisive == nil {
		t.Fatal("LastDecisive = nil, want the crashed attempt, now unknown")
	}
	if !strings.Contains(begun.LastDecisive.Detail, "stopped mid-close") {
		t.Errorf("Detail = %q, want it to say the gateway stopped mid-close", begun.LastDecisive.Detail)
	}
	want.Detail = begun.LastDecisive.Detail
	if diff := cmp.Diff(&want, begun.LastDecisive); diff != "" {
		t.Errorf("LastDecisive (-want +got):\n%s", diff)
	}
	if begun.LastClosed != nil {
		t.Errorf("LastClosed = %+v, want nil", begun.LastClosed)
	}
	got := mustList(t, s, "A", 10)
	if len(got) != 2 || got[0].Outcome != store.OutcomeInProgress || got[1].Outcome != store.OutcomeUnknown {
		t.Errorf("attempts = %+v, want the new one in progress, the old one unknown", got)
	}

	// A lease is expired at its end, not before.
	third := attempt("A", begun.Attempt.LeaseUntil.Add(-time.Microsecond), "r3")
	if _, err := s.BeginClose(t.Context(), third); !errors.Is(err, store.ErrCloseInProgress) {
		t.Errorf("BeginClose a microsecond before the lease ends = %v, want ErrCloseInProgress", err)
	}
	third.StartedAt, third.LeaseUntil = begun.Attempt.LeaseUntil, begun.Attempt.LeaseUntil.Add(time.Minute)
	mustBegin(t, s, third)
}

func testBeginCloseHistory(t *testing.T, h *harness) {
	s := h.open(t)
	mustUpsert(t, s, at(0), batch("A", 1), batch("Other", 1))
	// The other batch's history must not leak into A's.
	other := mustBegin(t, s, attempt("Other", at(0), "o1")).Attempt
	mustFinish(t, s, other, store.OutcomeClosed, at(time.Second))

	first := mustBegin(t, s, attempt("A", at(time.Minute), "r1"))
	if first.LastDecisive != nil || first.LastClosed != nil {
		t.Errorf("first attempt: LastDecisive = %+v, LastClosed = %+v; want nil, nil", first.LastDecisive, first.LastClosed)
	}
	mustFinish(t, s, first.Attempt, store.OutcomeFailed, at(2*time.Minute))
	closed := mustFinish(t, s, mustBegin(t, s, attempt("A", at(3*time.Minute), "r2")).Attempt,
		store.OutcomeClosed, at(4*time.Minute))
	unknown := mustFinish(t, s, mustBegin(t, s, attempt("A", at(5*time.Minute), "r3")).Attempt,
		store.OutcomeUnknown, at(6*time.Minute))
	if _, err := s.RecordClose(t.Context(), refused("A", at(7*time.Minute), "r4")); err != nil {
		t.Fatal(err)
	}

	if got, err := s.LastClosed(t.Context(), "A"); err != nil || got.ID != closed.ID {
		t.Errorf("LastClosed = %d, %v; want attempt %d", got.ID, err, closed.ID)
	}
	if _, err := s.LastClosed(t.Context(), "no-such"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LastClosed of a batch never closed = %v, want ErrNotFound", err)
	}
	for _, tc := range []struct {
		after int64
		want  bool
	}{{closed.ID, true}, {unknown.ID, false}, {first.Attempt.ID, true}} {
		if got, err := s.UnknownAfter(t.Context(), "A", tc.after); err != nil || got != tc.want {
			t.Errorf("UnknownAfter(%d) = %v, %v; want %v", tc.after, got, err, tc.want)
		}
	}

	in := attempt("A", at(8*time.Minute), "r5")
	in.Regenerate = true
	begun := mustBegin(t, s, in)
	in.ID = begun.Attempt.ID
	if diff := cmp.Diff(in, begun.Attempt); diff != "" {
		t.Errorf("Attempt (-want +got):\n%s", diff)
	}
	wantBatch := withSeen(withStatus(batch("A", 1), store.StatusClosed), at(0), at(0)) // an attempt closed it
	if diff := cmp.Diff(wantBatch, begun.Batch); diff != "" {
		t.Errorf("Batch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(&unknown, begun.LastDecisive); diff != "" {
		t.Errorf("LastDecisive: the refused attempt does not count (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(&closed, begun.LastClosed); diff != "" {
		t.Errorf("LastClosed (-want +got):\n%s", diff)
	}
}

func testFinishClose(t *testing.T, h *harness) {
	s := h.open(t)
	mustUpsert(t, s, at(0), batch("A", 1), batch("B", 1))

	a := mustBegin(t, s, attempt("A", at(0), "r1")).Attempt
	a.Outcome, a.EndedAt, a.UpstreamStatus = store.OutcomeFailed, at(time.Second), 409
	a.ErrorCode, a.Detail, a.BatchStatus, a.Status = "batch_not_closable", "Concur said no", "OPEN", "FAILURE"
	if err := s.FinishClose(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	if got := mustGetBatch(t, s, "A").Status; got != store.StatusOpen {
		t.Errorf("after a failed close: batch status %q, want OPEN", got)
	}

	// An accepted asynchronous close (no File-Url, no BatchStatus) is closed, but the batch
	// is not until its job has run: its batch list will say so.
	asyncIn := attempt("B", at(0), "r-async")
	asyncIn.Async = true
	async := mustBegin(t, s, asyncIn).Attempt
	async.Outcome, async.EndedAt, async.Status, async.JobQueueKey = store.OutcomeClosed, at(time.Second), "SUCCESS", "$job"
	if err := s.FinishClose(t.Context(), async); err != nil {
		t.Fatal(err)
	}
	if got := mustGetBatch(t, s, "B").Status; got != store.StatusOpen {
		t.Errorf("after an accepted asynchronous close: batch status %q, want OPEN", got)
	}
	if l := mustList(t, s, "B", 1); len(l) != 1 || !l[0].Async {
		t.Errorf("the asynchronous attempt reads back as %+v, want Async", l)
	}

	b := mustBegin(t, s, attempt("A", at(time.Minute), "r2")).Attempt
	b.Outcome, b.EndedAt, b.UpstreamStatus = store.OutcomeClosed, at(61*time.Second), 200
	b.BatchStatus, b.Status, b.JobQueueKey, b.FileURL = "CLOSED", "SUCCESS", "job-1", "https://concur.example/file/1"
	if err := s.FinishClose(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	if got := mustGetBatch(t, s, "A").Status; got != store.StatusClosed {
		t.Errorf("after a successful close: batch status %q, want CLOSED", got)
	}
	if got := mustGetBatch(t, s, "B").Status; got != store.StatusOpen {
		t.Errorf("another batch: status %q, want OPEN", got)
	}
	if diff := cmp.Diff([]store.Close{b, a}, mustList(t, s, "A", 10)); diff != "" {
		t.Errorf("ListCloses (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		name string
		c    store.Close
		is   error
	}{
		{"unknown attempt", store.Close{ID: 999999, Outcome: store.OutcomeFailed}, store.ErrNotFound},
		{"still in progress", store.Close{ID: b.ID, Outcome: store.OutcomeInProgress}, nil},
		{"no outcome", store.Close{ID: b.ID}, nil},
	} {
		err := s.FinishClose(t.Context(), tc.c)
		if err == nil || (tc.is != nil && !errors.Is(err, tc.is)) {
			t.Errorf("FinishClose(%s) = %v, want an error (%v)", tc.name, err, tc.is)
		}
	}
}

func refused(id string, start time.Time, requestID string) store.Close {
	return store.Close{BatchID: id, Caller: "payroll", RequestID: requestID, Regenerate: true,
		StartedAt: start, EndedAt: start.Add(time.Millisecond), Outcome: store.OutcomeRefused,
		ErrorCode: "close_in_progress", Detail: "another close is in progress"}
}

func testRecordClose(t *testing.T, h *harness) {
	s := h.open(t)
	mustUpsert(t, s, at(0), batch("A", 1))
	in := store.Close{BatchID: "A", Caller: "c", RequestID: "r", IdempotencyKey: "k", Regenerate: true,
		StartedAt: at(0), EndedAt: at(time.Second), Outcome: store.OutcomeFailed, UpstreamStatus: 503,
		ErrorCode: "upstream_unavailable", Detail: "d", BatchStatus: "bs", Status: "st", JobQueueKey: "j",
		FileURL: "f"}
	got, err := s.RecordClose(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID <= 0 {
		t.Errorf("ID = %d, want > 0", got.ID)
	}
	in.ID = got.ID
	if diff := cmp.Diff(in, got); diff != "" {
		t.Errorf("RecordClose (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]store.Close{in}, mustList(t, s, "A", 1)); diff != "" {
		t.Errorf("ListCloses (-want +got):\n%s", diff)
	}
	second, err := s.RecordClose(t.Context(), refused("A", at(time.Minute), "r2"))
	if err != nil || second.ID <= got.ID {
		t.Errorf("second RecordClose = ID %d, %v; want an ID above %d", second.ID, err, got.ID)
	}
	if _, err := s.RecordClose(t.Context(), attempt("A", at(0), "r3")); err == nil {
		t.Error("RecordClose of an in-progress attempt = nil error, want one (BeginClose takes leases)")
	}
}

func testListCloses(t *testing.T, h *harness) {
	s := h.open(t)
	mustUpsert(t, s, at(0), batch("A", 1), batch("B", 1))
	var want []store.Close
	for i := range 5 {
		c, err := s.RecordClose(t.Context(), refused("A", at(time.Duration(i)*time.Minute), fmt.Sprint("r", i)))
		if err != nil {
			t.Fatal(err)
		}
		want = append([]store.Close{c}, want...) // newest first
		if _, err := s.RecordClose(t.Context(), refused("B", at(0), fmt.Sprint("b", i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		limit int
		want  []store.Close
	}{
		{1, want[:1]},
		{3, want[:3]},
		{5, want},
		{100, want},
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
