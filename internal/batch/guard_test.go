package batch_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/store"
)

// scriptedUp is an Upstream whose answers each test scripts, counting the closes Concur got.
type scriptedUp struct {
	mu         sync.Mutex
	lists      func(status batch.ListStatus) ([]batch.Summary, error)
	closes     func(ctx context.Context, url string, n int) (batch.CloseResult, error)
	closeCalls []string
}

func (u *scriptedUp) ListBatches(_ context.Context, s batch.ListStatus, fn func(batch.Summary) error) error {
	u.mu.Lock()
	list, err := u.lists(s)
	u.mu.Unlock()
	return each(list, err, fn)
}

// each hands the summaries of a fake list to fn, as a streaming Upstream does.
func each(list []batch.Summary, err error, fn func(batch.Summary) error) error {
	if err != nil {
		return err
	}
	for _, s := range list {
		if err := fn(s); err != nil {
			return err
		}
	}
	return nil
}

func (u *scriptedUp) CloseBatch(ctx context.Context, url string) (batch.CloseResult, error) {
	u.mu.Lock()
	u.closeCalls = append(u.closeCalls, url)
	n := len(u.closeCalls)
	u.mu.Unlock()
	return u.closes(ctx, url, n)
}

func (u *scriptedUp) CloseBatchAsync(ctx context.Context, url string) (batch.CloseResult, error) {
	return u.CloseBatch(ctx, url)
}

func (u *scriptedUp) OpenFile(context.Context, string) (*batch.File, error) {
	return nil, errors.New("no files here")
}

func (u *scriptedUp) sent() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.closeCalls)
}

// inList returns a lists function that holds the batch in the OPEN or the CLOSED list.
func inList(id, url string, closed *bool, down *bool) func(batch.ListStatus) ([]batch.Summary, error) {
	return func(s batch.ListStatus) ([]batch.Summary, error) {
		if down != nil && *down {
			return nil, &batch.Error{Code: batch.CodeUpstreamUnavailable, Detail: "503"}
		}
		if (s == batch.ListClosed) == *closed {
			return []batch.Summary{{ID: id, URL: url}}, nil
		}
		return nil, nil
	}
}

var closedOK = batch.CloseResult{Status: "SUCCESS", BatchStatus: "CLOSED", FileURL: "https://c/file"}

// An unknown outcome stays unknown until a batch-list read settles it: an attempt that
// never reached Concur (its settling read failed) must not hide it, or the next close
// would go to Concur without looking and regenerate the file.
func TestUnknownOutcomeSurvivesAFailedSettle(t *testing.T) {
	t.Parallel()
	const id = "G1"
	closed, down := false, false
	up := &scriptedUp{lists: inList(id, "https://c/u1", &closed, &down)}
	up.closes = func(_ context.Context, _ string, n int) (batch.CloseResult, error) {
		if n == 1 {
			closed = true // Concur closed it; the answer was lost
			return batch.CloseResult{}, &batch.Error{Code: batch.CodeUpstreamTimeout, Detail: "timeout"}
		}
		return closedOK, nil
	}
	clk := &clock{now: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}
	svc := batch.NewService(up, openStore(t), batch.Options{Now: clk.Now})
	ctx := context.Background()

	_, err := svc.Close(ctx, closeReq(id))
	wantCode(t, err, batch.CodeUpstreamTimeout)
	clk.Advance(time.Second)
	down = true
	_, err = svc.Close(ctx, closeReq(id))
	wantCode(t, err, batch.CodeUpstreamUnavailable)
	clk.Advance(time.Second)
	down = false
	_, err = svc.Close(ctx, closeReq(id))
	wantCode(t, err, batch.CodeBatchAlreadyClosed)
	if n := up.sent(); n != 1 {
		t.Fatalf("Concur got %d closes without ?regenerate=true, want 1", n)
	}
	list, err := svc.Closes(ctx, id, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := list[1].Outcome; got != string(store.OutcomeRefused) {
		t.Errorf("the attempt whose settling read failed: outcome %q, want refused (it never reached Concur)", got)
	}
}

// After Concur says "not found", the refreshed list decides: a batch it now shows CLOSED
// (closed in Concur's own UI) is not closed again.
func TestNotFoundRetryRespectsTheRefreshedStatus(t *testing.T) {
	t.Parallel()
	const id = "G2"
	closed := false
	url := "https://c/old"
	up := &scriptedUp{lists: func(s batch.ListStatus) ([]batch.Summary, error) {
		if (s == batch.ListClosed) == closed {
			return []batch.Summary{{ID: id, URL: url}}, nil
		}
		return nil, nil
	}}
	up.closes = func(_ context.Context, u string, _ int) (batch.CloseResult, error) {
		if u == "https://c/old" {
			closed, url = true, "https://c/new" // someone closed it in Concur meanwhile
			return batch.CloseResult{}, &batch.Error{Code: batch.CodeBatchNotFound, Detail: "not found"}
		}
		return closedOK, nil
	}
	svc := batch.NewService(up, openStore(t), batch.Options{})
	_, err := svc.Close(context.Background(), closeReq(id))
	wantCode(t, err, batch.CodeBatchAlreadyClosed)
	if n := up.sent(); n != 1 {
		t.Fatalf("Concur got %d closes; the second would regenerate the file", n)
	}
}

// flakyFinish fails FinishClose a number of times.
type flakyFinish struct {
	batch.Store
	mu    sync.Mutex
	fails int
}

func (f *flakyFinish) FinishClose(ctx context.Context, c store.Close) error {
	f.mu.Lock()
	fail := f.fails > 0
	f.fails--
	f.mu.Unlock()
	if fail {
		return errors.New("connection reset")
	}
	return f.Store.FinishClose(ctx, c)
}

// A passing database blip when the close is recorded must not lose the File-Url Concur
// returned: only a regeneration could get it back.
func TestFileURLSurvivesAFailedRecord(t *testing.T) {
	t.Parallel()
	const id = "G3"
	closed := false
	up := &scriptedUp{lists: inList(id, "https://c/u", &closed, nil)}
	up.closes = func(context.Context, string, int) (batch.CloseResult, error) { return closedOK, nil }
	st := &flakyFinish{Store: openStore(t), fails: 2}
	svc := batch.NewService(up, st, batch.Options{})
	if _, err := svc.Close(context.Background(), closeReq(id)); err != nil {
		t.Fatal(err)
	}
	list, err := svc.Closes(context.Background(), id, 10)
	if err != nil {
		t.Fatal(err)
	}
	if list[0].Outcome != string(store.OutcomeClosed) || list[0].Result.FileURL != closedOK.FileURL {
		t.Fatalf("recorded attempt: %+v, want closed with its File-Url", list[0])
	}
}

// A close runs within its lease: its context ends before the lease does, so no other
// replica can take the batch while this close may still reach Concur.
func TestCloseRunsWithinItsLease(t *testing.T) {
	t.Parallel()
	const id = "G4"
	closed := false
	up := &scriptedUp{lists: inList(id, "https://c/u", &closed, nil)}
	var deadline time.Time
	up.closes = func(ctx context.Context, _ string, _ int) (batch.CloseResult, error) {
		deadline, _ = ctx.Deadline()
		return closedOK, nil
	}
	lease := 10 * time.Minute
	start := time.Now()
	svc := batch.NewService(up, openStore(t), batch.Options{CloseLease: lease})
	if _, err := svc.Close(context.Background(), closeReq(id)); err != nil {
		t.Fatal(err)
	}
	if deadline.IsZero() || deadline.After(start.Add(lease)) {
		t.Errorf("the close's deadline is %v, want one before the lease ends (%v)", deadline, start.Add(lease))
	}
}

// Right after a close whose outcome is unknown, Concur may still be working on it: its
// batch list may say OPEN for a batch it is closing. Within the settle delay no close is
// sent, a regeneration included; after it, the list is read and decides.
func TestUnknownOutcomeWaitsForTheSettleDelay(t *testing.T) {
	t.Parallel()
	const id = "G5"
	closed := false
	up := &scriptedUp{lists: inList(id, "https://c/u", &closed, nil)}
	up.closes = func(_ context.Context, _ string, n int) (batch.CloseResult, error) {
		if n == 1 {
			return batch.CloseResult{}, &batch.Error{Code: batch.CodeUpstreamTimeout, Detail: "timeout"}
		}
		return closedOK, nil
	}
	clk := &clock{now: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}
	svc := batch.NewService(up, openStore(t), batch.Options{Now: clk.Now, SettleDelay: time.Minute})
	ctx := context.Background()
	_, err := svc.Close(ctx, closeReq(id))
	wantCode(t, err, batch.CodeUpstreamTimeout)

	clk.Advance(30 * time.Second)
	_, err = svc.Close(ctx, closeReq(id))
	wantCode(t, err, batch.CodeCloseOutcomeUnknown)
	if e, ok := errors.AsType[*batch.Error](err); !ok || e.RetryAfter <= 0 || e.RetryAfter > 30*time.Second {
		t.Errorf("Retry-After = %v, want the rest of the settle delay", e.RetryAfter)
	}
	regen := closeReq(id)
	regen.Regenerate = true
	_, err = svc.Close(ctx, regen)
	wantCode(t, err, batch.CodeCloseOutcomeUnknown)
	if n := up.sent(); n != 1 {
		t.Fatalf("Concur got %d closes within the settle delay, want 1", n)
	}

	clk.Advance(31 * time.Second) // the list still says OPEN: the first close did not go through
	if _, err := svc.Close(ctx, closeReq(id)); err != nil {
		t.Fatalf("after the settle delay: %v", err)
	}
}
