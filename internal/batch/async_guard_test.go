package batch_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// jobUp models Concur's v1.2 close honestly: a v1.2 close schedules a job (even when its
// answer is lost), the batch shows CLOSED only once the job ran; every close of a closed
// batch (v1.1, or a job that runs on a closed batch) regenerates the file.
type jobUp struct {
	mu          sync.Mutex
	id, url     string
	closed      bool
	pendingJobs int
	async, sync int
	asyncErr    error // returned by v1.2 after scheduling (answer lost)
	syncErr     []error
}

func (u *jobUp) ListBatches(_ context.Context, s batch.ListStatus, fn func(batch.Summary) error) error {
	u.mu.Lock()
	var list []batch.Summary
	if (s == batch.ListClosed) == u.closed {
		list = []batch.Summary{{ID: u.id, URL: u.url}}
	}
	u.mu.Unlock()
	return each(list, nil, fn)
}
func (u *jobUp) CloseBatchAsync(context.Context, string) (batch.CloseResult, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.async++
	u.pendingJobs++
	if u.asyncErr != nil {
		return batch.CloseResult{}, u.asyncErr
	}
	return batch.CloseResult{Status: "SUCCESS", JobQueueKey: "$job"}, nil
}
func (u *jobUp) CloseBatch(context.Context, string) (batch.CloseResult, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.sync++
	if len(u.syncErr) > 0 {
		e := u.syncErr[0]
		u.syncErr = u.syncErr[1:]
		if e != nil {
			return batch.CloseResult{}, e
		}
	}
	u.closed = true
	return batch.CloseResult{Status: "SUCCESS", BatchStatus: "CLOSED", FileURL: "https://c/file"}, nil
}
func (u *jobUp) OpenFile(context.Context, string) (*batch.File, error) { return nil, nil }

// a v1.2 close whose answer is lost (time-out) has scheduled a job. After the settle
// delay the list still says OPEN (the job has not run), so a retry sends a second close.
func TestAsyncUnknownIsNotSettledByAnOpenList(t *testing.T) {
	t.Parallel()
	const id = "R1"
	up := &jobUp{id: id, url: "https://c/api/expense/paymentbatch/v1.1/batch/R1",
		asyncErr: &batch.Error{Code: batch.CodeUpstreamTimeout, Detail: "timeout"}}
	clk := &clock{now: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}
	svc := batch.NewService(up, openStore(t), batch.Options{Now: clk.Now, SettleDelay: time.Minute})
	ctx := context.Background()
	_, err := svc.Close(ctx, asyncReq(id))
	wantCode(t, err, batch.CodeUpstreamTimeout)
	up.mu.Lock()
	up.asyncErr = nil
	up.mu.Unlock()
	clk.Advance(61 * time.Second)         // Concur's job queue has not run the job yet
	_, err = svc.Close(ctx, asyncReq(id)) // the caller's retry, as the README invites after 504
	t.Logf("retry: %v", err)
	if up.async != 1 {
		t.Fatalf("Concur got %d v1.2 closes for one intended close (jobs pending: %d): the second job regenerates the file", up.async, up.pendingJobs)
	}
}

// after an unknown File-Url close, a later *failed* attempt (an explicit regeneration
// that Concur refused with 503) hides the unknown one: the next download makes another v1.1
// close on its own.
func TestUnknownFileURLCloseNotHiddenByALaterFailure(t *testing.T) {
	t.Parallel()
	const id = "R2"
	up := &jobUp{id: id, url: "https://c/api/expense/paymentbatch/v1.1/batch/R2"}
	svc := batch.NewService(up, openStore(t), batch.Options{})
	ctx := context.Background()
	if _, err := svc.Close(ctx, asyncReq(id)); err != nil {
		t.Fatal(err)
	}
	up.mu.Lock()
	up.closed = true // the job ran
	up.syncErr = []error{
		&batch.Error{Code: batch.CodeUpstreamTimeout, Detail: "timeout"}, // the gateway's own File-Url close: unknown
		&batch.Error{Code: batch.CodeUpstreamUnavailable, Detail: "503"}, // the operator's ?regenerate=true: refused by Concur
	}
	up.mu.Unlock()
	_, err := svc.File(ctx, batch.FileRequest{ID: id})
	wantCode(t, err, batch.CodeUpstreamTimeout)
	regen := closeReq(id)
	regen.Regenerate = true
	_, err = svc.Close(ctx, regen)
	wantCode(t, err, batch.CodeUpstreamUnavailable)
	_, err = svc.File(ctx, batch.FileRequest{ID: id})
	t.Logf("download after: %v", err)
	if up.sync != 2 {
		t.Fatalf("Concur got %d v1.1 closes; the third was made by the gateway on its own after an unknown one", up.sync)
	}
}

// An asynchronous regeneration is refused: its queued job and the download's own v1.1
// close would race, and the stored File-Url could name a file Concur has since replaced.
func TestAsyncRegenerationRefused(t *testing.T) {
	t.Parallel()
	const id = "R3"
	up := &jobUp{id: id, url: "https://c/api/expense/paymentbatch/v1.1/batch/R3", closed: true}
	svc := batch.NewService(up, openStore(t), batch.Options{})
	r := asyncReq(id)
	r.Regenerate = true
	_, err := svc.Close(context.Background(), r)
	wantCode(t, err, batch.CodeInvalidRequest)
	if up.async+up.sync != 0 {
		t.Fatalf("Concur got %d closes", up.async+up.sync)
	}
}

// refused attempts (every repeated close of a closed batch is recorded) push the
// successful close out of File's 1000-attempt scan: the payment file becomes "not found".
func TestFileFoundBehindManyRefusedAttempts(t *testing.T) {
	t.Parallel()
	const id = "R4"
	up := &jobUp{id: id, url: "https://c/api/expense/paymentbatch/v1.1/batch/R4"}
	svc := batch.NewService(up, openStore(t), batch.Options{})
	ctx := context.Background()
	if _, err := svc.Close(ctx, closeReq(id)); err != nil {
		t.Fatal(err)
	}
	for range 1000 { // a scheduler retrying its close every minute for 17 hours
		_, err := svc.Close(ctx, closeReq(id))
		wantCode(t, err, batch.CodeBatchAlreadyClosed)
	}
	if _, err := svc.File(ctx, batch.FileRequest{ID: id}); err != nil {
		t.Fatalf("file of a closed batch: %v", err)
	}
}
