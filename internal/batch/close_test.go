package batch_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// scenario is a Service on the fake Concur and a fresh SQLite store, with the faults the
// test scripts, one per close, in order.
type scenario struct {
	t      *testing.T
	concur *fakeConcur
	svc    *batch.Service
	faults []fault
}

func newScenario(t *testing.T, skew time.Duration) *scenario {
	t.Helper()
	sc := &scenario{t: t, concur: newFakeConcur(1, []string{"b-1"})}
	sc.concur.fault = func(string) fault {
		if len(sc.faults) == 0 {
			return faultNone
		}
		f := sc.faults[0]
		sc.faults = sc.faults[1:]
		return f
	}
	sc.svc = batch.NewService(sc.concur, openStore(t), batch.Options{
		CloseLease: 2 * time.Second, SettleDelay: 150 * time.Millisecond, PollMin: time.Millisecond, PollMax: time.Millisecond,
		Now: func() time.Time { return time.Now().Add(skew) },
	})
	return sc
}

func (sc *scenario) close(kind, key string, faults ...fault) (batch.CloseResult, error) {
	sc.faults = append(sc.faults, faults...)
	ctx := context.WithValue(context.Background(), tagKey{}, reqTag{kind: kind, key: key})
	return sc.svc.Close(ctx, batch.CloseRequest{ID: "b-1", Caller: "payroll", IdempotencyKey: key,
		Regenerate: kind == "regenerate", Async: kind == "async"})
}

func (sc *scenario) regenerations() int {
	n := 0
	for _, e := range sc.concur.history() {
		if e.regen {
			n++
		}
	}
	return n
}

// Scenario 1: a close times out after Concur closed the batch (unknown); after the settle
// delay a regeneration is refused by Concur (503, or never sent). The next plain close must
// not go to Concur: the lost close is settled from the list first (CLOSED).
func TestScenario1RefusedRegenerationDoesNotHideAnUnknownClose(t *testing.T) {
	t.Parallel()
	for _, f := range []fault{faultAnswered, faultNotSent} {
		sc := newScenario(t, 0)
		if _, err := sc.close("close", "", faultActLost); batch.ErrorCode(err) != batch.CodeUpstreamTimeout {
			t.Fatalf("first close: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
		_, err := sc.close("regenerate", "", f)
		if err == nil {
			t.Fatalf("regeneration with fault %d succeeded", f)
		}
		_, err = sc.close("close", "")
		wantCode(t, err, batch.CodeBatchAlreadyClosed)
		if n := sc.regenerations(); n != 0 {
			t.Errorf("fault %d: Concur regenerated %d times", f, n)
		}
	}
}

// Scenario 3: a replica whose clock runs 90 s ahead still waits out the settle delay
// after another replica's lost close: the delay is the database's.
func TestScenario3SkewedClockWaitsForTheSettleDelay(t *testing.T) {
	t.Parallel()
	sc := newScenario(t, 90*time.Second)
	if _, err := sc.close("close", "", faultNoActLost); err == nil {
		t.Fatal("lost close succeeded")
	}
	_, err := sc.close("close", "")
	wantCode(t, err, batch.CodeCloseOutcomeUnknown)
	if got := len(sc.concur.history()); got != 1 {
		t.Errorf("Concur got %d closes within the settle delay, want 1", got)
	}
}

// Scenario 5: a close that never reached Concur is refused, not unknown: the next close
// goes ahead at once (an asynchronous one included).
func TestScenario5NotSentIsRefused(t *testing.T) {
	t.Parallel()
	sc := newScenario(t, 0)
	if _, err := sc.close("async", "", faultNotSent); batch.ErrorCode(err) != batch.CodeUpstreamAuthFailed {
		t.Fatalf("close: %v", err)
	}
	res, err := sc.close("async", "")
	if err != nil || !res.Accepted {
		t.Fatalf("the next asynchronous close: %+v, %v; want it accepted", res, err)
	}
}

// Scenario 9: a regeneration succeeded and its idempotency record was lost: the retry with
// the same key finds the attempt and replays it rather than regenerating again.
func TestScenario9RetryFindsTheAttemptByItsKey(t *testing.T) {
	t.Parallel()
	sc := newScenario(t, 0)
	if _, err := sc.close("close", ""); err != nil {
		t.Fatal(err)
	}
	first, err := sc.close("regenerate", "k1")
	if err != nil || !first.Regenerated {
		t.Fatalf("regeneration: %+v, %v", first, err)
	}
	again, err := sc.close("regenerate", "k1")
	if err != nil || again.FileURL != first.FileURL {
		t.Fatalf("retry: %+v, %v; want the first's answer", again, err)
	}
	if n := sc.regenerations(); n != 1 {
		t.Errorf("Concur regenerated %d times, want 1", n)
	}
	// A regeneration whose answer was lost is not made again under its key either.
	if _, err := sc.close("regenerate", "k2", faultActLost); err == nil {
		t.Fatal("lost regeneration succeeded")
	}
	time.Sleep(200 * time.Millisecond)
	_, err = sc.close("regenerate", "k2")
	wantCode(t, err, batch.CodeCloseOutcomeUnknown)
	if n := sc.regenerations(); n != 2 {
		t.Errorf("Concur regenerated %d times, want 2", n)
	}
}

// Scenario 10: Concur answers 200 with Status FAILURE: no 200 to the caller, no closedAt,
// and the batch is not refused for good: the list settles it.
func TestScenario10FailureIsNotASuccess(t *testing.T) {
	t.Parallel()
	sc2 := newScenario(t, 0)
	for range 20 { // FAILURE acts or not at random: either way the answer is no 200
		res, err := sc2.close("close", "", faultFailure200)
		if err == nil {
			t.Fatalf("FAILURE answered as a success: %+v", res)
		}
		wantCode(t, err, batch.CodeUpstreamBadResponse)
		time.Sleep(200 * time.Millisecond)
		if _, err := sc2.close("close", ""); err == nil || batch.ErrorCode(err) == batch.CodeBatchAlreadyClosed {
			return // settled from the list: closed (it acted) or closed now (it had not)
		}
	}
	t.Fatal("the batch was never settled after a FAILURE")
}

// Scenario 11: a download after an asynchronous close never closes the batch.
func TestScenario11ReadsNeverClose(t *testing.T) {
	t.Parallel()
	sc := newScenario(t, 0)
	if res, err := sc.close("async", ""); err != nil || !res.Accepted {
		t.Fatalf("async close: %+v, %v", res, err)
	}
	for range 3 {
		_, err := sc.svc.File(context.Background(), batch.FileRequest{ID: "b-1"})
		wantCode(t, err, batch.CodeFileNotReady)
	}
	for _, e := range sc.concur.history() {
		if !e.async {
			t.Errorf("a download made Concur close: %+v", e)
		}
	}
	// The finisher obtains the file, once, after the job ran.
	for range 50 {
		if err := sc.svc.FinishPass(context.Background()); err != nil {
			t.Fatal(err)
		}
		if f, err := sc.svc.File(context.Background(), batch.FileRequest{ID: "b-1"}); err == nil {
			f.Body.Close()
			if n := sc.regenerations(); n != 1 {
				t.Errorf("regenerations = %d, want the finisher's one", n)
			}
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the finisher never obtained the file")
}

// Scenario 12: ?regenerate=true is refused while a v1.2 job may still be queued.
func TestScenario12NoRegenerationWhileScheduled(t *testing.T) {
	t.Parallel()
	sc := newScenario(t, 0)
	if _, err := sc.close("async", "", faultActLost); err == nil {
		t.Fatal("lost async close succeeded")
	}
	_, err := sc.close("regenerate", "")
	wantCode(t, err, batch.CodeCloseInProgress)
	for _, e := range sc.concur.history() {
		if !e.async {
			t.Errorf("Concur got a v1.1 close while the v1.2 job may be queued: %+v", e)
		}
	}
}

// lostBegin is a store whose next lease-taking Apply commits and then reports a failure,
// as a connection cut after COMMIT does.
type lostBegin struct {
	batch.Store
	armed bool
}

func (s *lostBegin) Apply(ctx context.Context, c batch.Change) (batch.Batch, batch.Close, error) {
	b, att, err := s.Store.Apply(ctx, c)
	if err == nil && s.armed && c.Begin != nil && c.To != nil {
		s.armed = false
		return batch.Batch{}, batch.Close{}, errInjected
	}
	return b, att, err
}

// A close whose lease was taken though the store said it was not never reached Concur:
// it is released as refused at once, not left to turn unknown when its lease ends (which
// would refuse a regeneration under the same key for good).
func TestLostBeginIsReleasedAsRefused(t *testing.T) {
	t.Parallel()
	fc := newFakeConcur(1, []string{"b-1"})
	st := &lostBegin{Store: openStore(t)}
	svc := batch.NewService(fc, st, batch.Options{CloseLease: time.Minute, SettleDelay: time.Millisecond})
	ctx := context.Background()
	if _, err := svc.Close(ctx, batch.CloseRequest{ID: "b-1", Caller: "payroll", RequestID: "r1"}); err != nil {
		t.Fatal(err)
	}
	st.armed = true
	req := batch.CloseRequest{ID: "b-1", Caller: "payroll", RequestID: "r2", IdempotencyKey: "k", Regenerate: true}
	_, err := svc.Close(ctx, req)
	wantCode(t, err, batch.CodeStoreUnavailable)
	req.RequestID = "r3"
	res, err := svc.Close(ctx, req)
	if err != nil || !res.Regenerated {
		t.Fatalf("retry of the regeneration: %+v, %v; want it made (nothing was sent the first time)", res, err)
	}
}

// release ends only the attempt its own request began: another request of the same
// caller with the same X-Request-ID (a client retrying with the header) that holds the
// lease and may be sending is left alone.
func TestReleaseLeavesAnotherRequestsAttempt(t *testing.T) {
	t.Parallel()
	fc := newFakeConcur(1, []string{"b-1"})
	inner := openStore(t)
	// The first Apply with a Begin fails for real (nothing committed), after another
	// request with the same id took the lease meanwhile.
	st := &racingBegin{Store: inner}
	svc := batch.NewService(fc, st, batch.Options{CloseLease: time.Minute, SettleDelay: time.Millisecond})
	_, err := svc.Close(context.Background(), batch.CloseRequest{ID: "b-1", Caller: "payroll", RequestID: "same"})
	if err == nil {
		t.Fatal("the failed Begin succeeded")
	}
	b, err := inner.GetBatch(context.Background(), "b-1")
	if err != nil || b.Close.State != batch.StateClosing || b.Close.CloseID != st.other.ID {
		t.Fatalf("the other request's lease was released: %+v, %v", b.Close, err)
	}
}

// racingBegin fails the first lease-taking Apply without committing it, having let another
// request (same caller, same request id) take the lease first.
type racingBegin struct {
	batch.Store
	done  bool
	other batch.Close
}

func (s *racingBegin) Apply(ctx context.Context, c batch.Change) (batch.Batch, batch.Close, error) {
	if s.done || c.Begin == nil || c.To == nil {
		return s.Store.Apply(ctx, c)
	}
	s.done = true
	b, err := s.Store.GetBatch(ctx, c.BatchID)
	if err != nil {
		return batch.Batch{}, batch.Close{}, err
	}
	other := *c.Begin
	other.Claim = "the other request's own" // each request draws its own claim
	to := *c.To
	_, s.other, err = s.Store.Apply(ctx, batch.Change{BatchID: c.BatchID, From: b.Close.Version, To: &to, Begin: &other})
	if err != nil {
		return batch.Batch{}, batch.Close{}, err
	}
	return batch.Batch{}, batch.Close{}, errInjected
}

// A close's answer and its recorded copy carry one closedAt: the instant recorded.
func TestCloseAnswerAndRecordShareClosedAt(t *testing.T) {
	t.Parallel()
	svc, _, _ := newService(t, 0)
	ctx := context.Background()
	res, err := svc.Close(ctx, closeReq(employeeBatch))
	if err != nil {
		t.Fatal(err)
	}
	trail, err := svc.Closes(ctx, employeeBatch, 1)
	if err != nil || len(trail) != 1 {
		t.Fatalf("closes = %+v, %v", trail, err)
	}
	if res.ClosedAt.IsZero() || !res.ClosedAt.Equal(trail[0].Result().ClosedAt) {
		t.Errorf("answer's closedAt %v, recorded %v: want one instant", res.ClosedAt, trail[0].Result().ClosedAt)
	}
}

// A close's call to Concur ends a margin before the lease, measured from when the request
// began, not from when its last turn began: a request that first settles an unknown
// outcome (a batch-list read) has that time counted in its bound, so the whole request
// stays within the close budget, which the shutdown's grace period is sized for.
func TestCloseDeadlineCountsFromTheRequest(t *testing.T) {
	t.Parallel()
	const lease, listDelay = 2 * time.Second, 300 * time.Millisecond
	var deadlines []time.Duration // of each close's call, from when its request began
	var began time.Time
	up := &scriptedUp{
		lists: func(s batch.ListStatus) ([]batch.Summary, error) {
			time.Sleep(listDelay)
			if s == batch.ListOpen {
				return []batch.Summary{{ID: "b-1", URL: "https://c/b-1", Currency: "USD"}}, nil
			}
			return nil, nil
		},
		closes: func(ctx context.Context, _ string, n int) (batch.CloseResult, error) {
			d, _ := ctx.Deadline()
			deadlines = append(deadlines, d.Sub(began))
			if n == 1 { // lost: the outcome is unknown until the list settles it
				return batch.CloseResult{}, &batch.Error{Code: batch.CodeUpstreamTimeout, Delivery: batch.MaybeDelivered}
			}
			return batch.CloseResult{Status: "SUCCESS", BatchStatus: batch.StatusClosed, FileURL: "https://c/f"}, nil
		},
	}
	svc := batch.NewService(up, openStore(t), batch.Options{CloseLease: lease, SettleDelay: time.Millisecond})
	began = time.Now()
	if _, err := svc.Close(t.Context(), batch.CloseRequest{ID: "b-1"}); batch.ErrorCode(err) != batch.CodeUpstreamTimeout {
		t.Fatalf("first close: %v, want the lost close's upstream_timeout", err)
	}
	time.Sleep(10 * time.Millisecond) // past the settle delay
	began = time.Now()
	if res, err := svc.Close(t.Context(), batch.CloseRequest{ID: "b-1"}); err != nil || res.BatchStatus != batch.StatusClosed {
		t.Fatalf("second close (after settling the first as open): %+v, %v", res, err)
	}
	bound := lease - lease/10 + 100*time.Millisecond // the lease less its margin, and a slack well under a list read
	for i, d := range deadlines {
		if d > bound {
			t.Errorf("close %d: its call's deadline is %v after its request began, want at most %v", i+1, d, bound)
		}
	}
	if len(deadlines) != 2 {
		t.Errorf("%d closes sent, want 2", len(deadlines))
	}
}

// cancelOnClose cancels a context when the first v1.1 close reaches Concur.
type cancelOnClose struct {
	*fakeConcur
	cancel context.CancelFunc
}

func (u cancelOnClose) CloseBatch(ctx context.Context, url string) (batch.CloseResult, error) {
	u.cancel()
	return u.fakeConcur.CloseBatch(ctx, url)
}

// The finisher begins no close once its context ends (the shutdown): a pass cut short by
// it leaves the rest of the due batches for the next pass, instead of closing each of them
// during the grace period, where nothing waits for them.
func TestFinisherBeginsNoCloseAfterItsContextEnds(t *testing.T) {
	t.Parallel()
	fake := newFakeConcur(1, []string{"b-1", "b-2"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc := batch.NewService(cancelOnClose{fake, cancel}, openStore(t), batch.Options{
		CloseLease: 2 * time.Second, SettleDelay: 150 * time.Millisecond, PollMin: time.Millisecond, PollMax: time.Millisecond})
	for _, id := range []string{"b-1", "b-2"} {
		if res, err := svc.Close(context.Background(), batch.CloseRequest{ID: id, Async: true}); err != nil || !res.Accepted {
			t.Fatalf("async close of %s: %+v, %v", id, res, err)
		}
	}
	for range 200 { // Concur runs both jobs: both batches are due at the next pass
		_ = fake.ListBatches(context.Background(), batch.ListAll, func(batch.Summary) error { return nil })
	}
	if err := svc.FinishPass(ctx); err != nil {
		t.Fatal(err)
	}
	obtained := func() (n int) {
		for _, e := range fake.history() {
			if !e.async {
				n++
			}
		}
		return n
	}
	if n := obtained(); n != 1 {
		t.Fatalf("the pass that was told to stop made %d closes, want the one it had begun", n)
	}
	if err := svc.FinishPass(context.Background()); err != nil || obtained() != 2 {
		t.Errorf("the next pass: %v, %d closes in all, want 2", err, obtained())
	}
}

// interleaveKey runs another request to its end between a request's first look-up of its
// Idempotency-Key and its next read of the state: a second request with the same key that
// starts and finishes in between.
type interleaveKey struct {
	batch.Store
	afterKey atomic.Bool // run the other request right after the first key look-up, not at the next read
	keyed    atomic.Bool // a key was looked up
	done     atomic.Bool
	between  func()
}

func (s *interleaveKey) CloseByKey(ctx context.Context, batchID, caller, key string) (batch.Close, error) {
	c, err := s.Store.CloseByKey(ctx, batchID, caller, key)
	s.keyed.Store(true)
	if s.afterKey.Load() && s.done.CompareAndSwap(false, true) {
		s.between()
	}
	return c, err
}

// GetBatch runs the other request at the first read of the state after a key's look-up.
func (s *interleaveKey) GetBatch(ctx context.Context, id string) (batch.Batch, error) {
	if !s.afterKey.Load() && s.keyed.Load() && s.done.CompareAndSwap(false, true) {
		s.between()
	}
	return s.Store.GetBatch(ctx, id)
}

// Two requests with one Idempotency-Key regenerate a batch once, however they interleave:
// the key is looked up after the state is read, so a request that missed the other's
// attempt finds the state moved on when it takes the lease, and looks again. (Found by the
// model test, seed 18052 on PostgreSQL: the second request looked the key up before the
// first had begun, then regenerated after it had ended.)
func TestOneKeyRegeneratesOnceWhateverTheInterleaving(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		afterKey bool
	}{
		// The other request runs between this one's key look-up and its next read of the
		// state: that read finds the other's attempt (in progress or ended).
		{"at the next read of the state", false},
		// The other request runs right after this one's key look-up found nothing, before
		// this one takes the lease from the state it read: the lease's compare-and-set
		// fails, and the next turn finds the other's attempt by its key.
		{"before the lease is taken", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := newFakeConcur(1, []string{"b-1"})
			st := &interleaveKey{Store: openStore(t)}
			svc := batch.NewService(fake, st, batch.Options{CloseLease: 2 * time.Second, SettleDelay: 150 * time.Millisecond})
			ctx := context.Background()
			if _, err := svc.Close(ctx, batch.CloseRequest{ID: "b-1", Caller: "payroll"}); err != nil {
				t.Fatal(err)
			}
			regen := batch.CloseRequest{ID: "b-1", Caller: "payroll", IdempotencyKey: "k", Regenerate: true}
			var inner batch.CloseResult
			var innerErr error
			st.between = func() { inner, innerErr = svc.Close(ctx, regen) }
			st.afterKey.Store(tc.afterKey)
			outer, err := svc.Close(ctx, regen)
			if !st.done.Load() {
				t.Fatal("the other request never ran: the interleaving was not forced")
			}
			if err != nil || (innerErr != nil && batch.ErrorCode(innerErr) != batch.CodeCloseInProgress) {
				t.Fatalf("regenerations: inner %v, outer %v; want the outer's, and the inner's or its in-progress refusal", innerErr, err)
			}
			n := 0
			for _, e := range fake.history() {
				if e.regen {
					n++
				}
			}
			if n != 1 {
				t.Errorf("Concur regenerated batch b-1 %d times under one Idempotency-Key, want once", n)
			}
			if !outer.Regenerated || outer.FileURL == "" {
				t.Errorf("the outer request's answer %+v: want the regeneration (made, or replayed)", outer)
			}
			if tc.afterKey && (innerErr != nil || !outer.ClosedAt.Equal(inner.ClosedAt) || outer.FileURL != inner.FileURL) {
				t.Errorf("the outer request's answer %+v, the inner's %+v, %v: want the inner's regeneration, replayed", outer, inner, innerErr)
			}
		})
	}
}
