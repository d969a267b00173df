package batch_test

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// asyncUp is an Upstream for the asynchronous close: v1.2 schedules, the CLOSED list shows
// the batch once the job ran, and a v1.1 close of the closed batch yields the File-Url.
type asyncUp struct {
	mu        sync.Mutex
	id, url   string
	closed    bool // the job ran: the batch is in the CLOSED list
	async     int  // v1.2 closes received
	sync      int  // v1.1 closes received
	syncFails error
}

func (u *asyncUp) ListBatches(_ context.Context, s batch.ListStatus, fn func(batch.Summary) error) error {
	u.mu.Lock()
	var list []batch.Summary
	if (s == batch.ListClosed) == u.closed {
		list = []batch.Summary{{ID: u.id, URL: u.url}}
	}
	u.mu.Unlock()
	return each(list, nil, fn)
}

func (u *asyncUp) CloseBatchAsync(context.Context, string) (batch.CloseResult, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.async++
	return batch.CloseResult{Status: "SUCCESS", JobQueueKey: "$job1"}, nil
}

func (u *asyncUp) CloseBatch(context.Context, string) (batch.CloseResult, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.sync++
	if u.syncFails != nil {
		return batch.CloseResult{}, u.syncFails
	}
	return batch.CloseResult{Status: "SUCCESS", BatchStatus: "CLOSED", FileURL: "https://c/file/1"}, nil
}

func (u *asyncUp) OpenFile(_ context.Context, fileURL string) (*batch.File, error) {
	return &batch.File{Body: io.NopCloser(strings.NewReader(fileURL)), ContentLength: -1}, nil
}

func (u *asyncUp) set(f func()) {
	u.mu.Lock()
	defer u.mu.Unlock()
	f()
}

func (u *asyncUp) counts() (async, sync int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.async, u.sync
}

func asyncReq(id string) batch.CloseRequest {
	r := closeReq(id)
	r.Async = true
	return r
}

// The asynchronous close through to the file: v1.2 once; the download waits for the batch
// list to show the batch closed, then obtains the File-Url with one v1.1 close, recorded
// as a regeneration; later downloads and closes send nothing more.
func TestAsyncCloseThroughToTheFile(t *testing.T) {
	t.Parallel()
	const id = "A1"
	up := &asyncUp{id: id, url: "https://c/api/expense/paymentbatch/v1.1/batch/A1"}
	svc := batch.NewService(up, openStore(t), batch.Options{})
	ctx := context.Background()

	res, err := svc.Close(ctx, asyncReq(id))
	if err != nil || !res.Accepted || res.JobQueueKey != "$job1" || res.FileURL != "" {
		t.Fatalf("async close: %+v, %v", res, err)
	}
	_, err = svc.Close(ctx, closeReq(id)) // the close is scheduled: closing again would regenerate
	wantCode(t, err, batch.CodeBatchAlreadyClosed)
	_, err = svc.File(ctx, batch.FileRequest{ID: id, Caller: "reader"})
	wantCode(t, err, batch.CodeFileNotReady)

	up.set(func() { up.closed = true }) // Concur ran the job
	for range 3 {
		f, err := svc.File(ctx, batch.FileRequest{ID: id, Caller: "reader", RequestID: "r-file"})
		if err != nil {
			t.Fatalf("file after the job ran: %v", err)
		}
		b, _ := io.ReadAll(f.Body)
		f.Body.Close()
		if string(b) != "https://c/file/1" {
			t.Errorf("file body %q", b)
		}
	}
	if a, s := up.counts(); a != 1 || s != 1 {
		t.Fatalf("Concur got %d v1.2 and %d v1.1 closes, want 1 and 1", a, s)
	}
	trail, err := svc.Closes(ctx, id, 10)
	if err != nil {
		t.Fatal(err)
	}
	got := trail[0]
	if got.Outcome != "closed" || !got.Regenerate || got.Caller != "reader" || got.RequestID != "r-file" ||
		got.Result.FileURL != "https://c/file/1" {
		t.Errorf("the File-Url close is recorded as %+v, want closed, regenerate, by the reader", got)
	}
}

// A v1.1 close whose outcome is unknown may have regenerated the file: the gateway does
// not try again on its own.
func TestAsyncFileURLNotRetriedAfterUnknown(t *testing.T) {
	t.Parallel()
	const id = "A2"
	up := &asyncUp{id: id, url: "https://c/api/expense/paymentbatch/v1.1/batch/A2",
		syncFails: &batch.Error{Code: batch.CodeUpstreamTimeout, Detail: "timeout"}}
	svc := batch.NewService(up, openStore(t), batch.Options{})
	ctx := context.Background()
	if _, err := svc.Close(ctx, asyncReq(id)); err != nil {
		t.Fatal(err)
	}
	up.set(func() { up.closed = true })
	_, err := svc.File(ctx, batch.FileRequest{ID: id})
	wantCode(t, err, batch.CodeUpstreamTimeout)
	up.set(func() { up.syncFails = nil })
	_, err = svc.File(ctx, batch.FileRequest{ID: id})
	wantCode(t, err, batch.CodeCloseOutcomeUnknown)
	if _, s := up.counts(); s != 1 {
		t.Fatalf("Concur got %d v1.1 closes, want 1", s)
	}
	// An explicit regeneration gets the file.
	regen := closeReq(id)
	regen.Regenerate = true
	if _, err := svc.Close(ctx, regen); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.File(ctx, batch.FileRequest{ID: id}); err != nil {
		t.Fatalf("file after the explicit regeneration: %v", err)
	}
}

// A File-Url close that Concur refused (it did not act) may be tried again.
func TestAsyncFileURLRetriedAfterRefusal(t *testing.T) {
	t.Parallel()
	const id = "A3"
	up := &asyncUp{id: id, url: "https://c/api/expense/paymentbatch/v1.1/batch/A3",
		syncFails: &batch.Error{Code: batch.CodeUpstreamUnavailable, Detail: "503"}}
	svc := batch.NewService(up, openStore(t), batch.Options{})
	ctx := context.Background()
	if _, err := svc.Close(ctx, asyncReq(id)); err != nil {
		t.Fatal(err)
	}
	up.set(func() { up.closed = true })
	_, err := svc.File(ctx, batch.FileRequest{ID: id})
	wantCode(t, err, batch.CodeUpstreamUnavailable)
	up.set(func() { up.syncFails = nil })
	if _, err := svc.File(ctx, batch.FileRequest{ID: id}); err != nil {
		t.Fatalf("after Concur recovered: %v", err)
	}
	if _, s := up.counts(); s != 2 {
		t.Errorf("Concur got %d v1.1 closes, want 2", s)
	}
}

// Concurrent first downloads make one v1.1 close between them.
func TestAsyncFileURLObtainedOnce(t *testing.T) {
	t.Parallel()
	const id = "A4"
	up := &asyncUp{id: id, url: "https://c/api/expense/paymentbatch/v1.1/batch/A4"}
	svc := batch.NewService(up, openStore(t), batch.Options{})
	ctx := context.Background()
	if _, err := svc.Close(ctx, asyncReq(id)); err != nil {
		t.Fatal(err)
	}
	up.set(func() { up.closed = true })
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			f, err := svc.File(ctx, batch.FileRequest{ID: id})
			if err == nil {
				f.Body.Close()
			} else if code := batch.ErrorCode(err); code != batch.CodeCloseInProgress {
				t.Errorf("concurrent download: %v", err)
			}
		})
	}
	wg.Wait()
	if _, s := up.counts(); s != 1 {
		t.Fatalf("Concur got %d v1.1 closes, want 1", s)
	}
}
