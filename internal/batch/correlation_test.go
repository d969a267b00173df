package batch_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// The record of a close carries the correlation id of the Concur answer that decided it:
// a success's, an error's, and that of a 200 the domain could not call a success; the
// caller's error carries it too.
func TestCloseRecordCarriesCorrelationID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		res     batch.CloseResult
		err     error
		outcome batch.Outcome
	}{
		{name: "closed", res: batch.CloseResult{Status: "SUCCESS", BatchStatus: batch.StatusClosed,
			FileURL: "https://c/f", CorrelationID: "corr-ok"}, outcome: batch.OutcomeClosed},
		{name: "answered 503", err: &batch.Error{Code: batch.CodeUpstreamUnavailable, Delivery: batch.Answered,
			Upstream: &batch.UpstreamError{Status: 503}, CorrelationID: "corr-503"}, outcome: batch.OutcomeFailed},
		{name: "unreadable 200", err: &batch.Error{Code: batch.CodeUpstreamBadResponse, Delivery: batch.MaybeDelivered,
			CorrelationID: "corr-200"}, outcome: batch.OutcomeUnknown},
		{name: "200 without success", res: batch.CloseResult{Status: "FAILURE", CorrelationID: "corr-failure"},
			outcome: batch.OutcomeUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want := tt.res.CorrelationID
			if e, ok := tt.err.(*batch.Error); ok {
				want = e.CorrelationID
			}
			up := &scriptedUp{
				lists: func(s batch.ListStatus) ([]batch.Summary, error) {
					if s == batch.ListOpen {
						return []batch.Summary{{ID: "b-1", URL: "https://c/b-1", Currency: "USD"}}, nil
					}
					return nil, nil
				},
				closes: func(context.Context, string, int) (batch.CloseResult, error) { return tt.res, tt.err },
			}
			svc := batch.NewService(up, openStore(t), batch.Options{})
			res, err := svc.Close(t.Context(), batch.CloseRequest{ID: "b-1", Caller: "payroll"})
			switch {
			case tt.outcome == batch.OutcomeClosed && (err != nil || res.CorrelationID != want):
				t.Errorf("Close = %+v, %v; want correlation id %q", res, err, want)
			case tt.outcome != batch.OutcomeClosed:
				if e, ok := err.(*batch.Error); !ok || e.CorrelationID != want {
					t.Errorf("Close error = %#v; want correlation id %q", err, want)
				}
			}
			trail, err := svc.Closes(t.Context(), "b-1", 1)
			if err != nil || len(trail) != 1 {
				t.Fatalf("Closes = %+v, %v", trail, err)
			}
			if got := trail[0]; got.Outcome != tt.outcome || got.UpstreamCorrelationID != want {
				t.Errorf("record: outcome %s, correlation id %q; want %s, %q", got.Outcome, got.UpstreamCorrelationID,
					tt.outcome, want)
			}
			if tt.outcome == batch.OutcomeClosed && trail[0].Result().CorrelationID != want {
				t.Errorf("recorded result's correlation id = %q, want %q", trail[0].Result().CorrelationID, want)
			}
		})
	}
}

// Correlations notes the ids of a context's answers, in order, bounded, from many
// goroutines; a context without one, and an empty id, note nothing.
func TestCorrelations(t *testing.T) {
	t.Parallel()
	batch.NoteCorrelation(context.Background(), "nowhere") // no collector: nothing happens
	ctx, c := batch.WithCorrelations(context.Background())
	batch.NoteCorrelation(ctx, "a")
	batch.NoteCorrelation(ctx, "")
	batch.NoteCorrelation(context.WithoutCancel(ctx), "b") // a detached close still notes
	inner, ic := batch.WithCorrelations(ctx)
	batch.NoteCorrelation(inner, "inner")
	if ids, more := c.IDs(); !cmp.Equal(ids, []string{"a", "b"}) || more != 0 {
		t.Errorf("IDs = %q, %d more; want [a b], 0", ids, more)
	}
	if ids, _ := ic.IDs(); !cmp.Equal(ids, []string{"inner"}) {
		t.Errorf("inner IDs = %q, want [inner]", ids)
	}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() { batch.NoteCorrelation(ctx, fmt.Sprint("id-", i)) })
	}
	wg.Wait()
	if ids, more := c.IDs(); len(ids) != 16 || more != 42-16 {
		t.Errorf("after 42 notes: %d kept, %d more; want 16, 26", len(ids), more)
	}
}

// The finisher's close that obtains the File-Url of an asynchronous close, when Concur
// answers it without calling it a success, records that answer's correlation id.
func TestFinisherCloseRecordCarriesCorrelationID(t *testing.T) {
	t.Parallel()
	var closed atomic.Bool
	up := &scriptedUp{
		lists: func(s batch.ListStatus) ([]batch.Summary, error) {
			b := []batch.Summary{{ID: "b-1", URL: "https://c/b-1", Currency: "USD"}}
			if (s == batch.ListClosed) == closed.Load() {
				return b, nil
			}
			return nil, nil
		},
		closes: func(_ context.Context, _ string, n int) (batch.CloseResult, error) {
			if n == 1 { // the v1.2 close: scheduled; Concur's job then closes the batch
				closed.Store(true)
				return batch.CloseResult{Status: "SUCCESS", JobQueueKey: "jq-1", CorrelationID: "corr-async"}, nil
			}
			return batch.CloseResult{Status: "FAILURE", CorrelationID: "corr-finisher"}, nil
		},
	}
	svc := batch.NewService(up, openStore(t), batch.Options{CloseLease: 2 * time.Second,
		SettleDelay: 10 * time.Millisecond, PollMin: time.Millisecond, PollMax: time.Millisecond})
	if res, err := svc.Close(t.Context(), batch.CloseRequest{ID: "b-1", Caller: "payroll", Async: true}); err != nil || !res.Accepted {
		t.Fatalf("async close: %+v, %v", res, err)
	}
	if err := svc.FinishPass(t.Context()); err != nil {
		t.Fatal(err)
	}
	trail, err := svc.Closes(t.Context(), "b-1", 10)
	if err != nil || len(trail) != 2 {
		t.Fatalf("Closes = %+v, %v; want the async close and the finisher's", trail, err)
	}
	if got := trail[0]; got.Caller != batch.System || got.UpstreamCorrelationID != "corr-finisher" {
		t.Errorf("the finisher's record: caller %q, correlation id %q; want %q, corr-finisher", got.Caller,
			got.UpstreamCorrelationID, batch.System)
	}
	if got := trail[1]; got.UpstreamCorrelationID != "corr-async" {
		t.Errorf("the async close's record: correlation id %q, want corr-async", got.UpstreamCorrelationID)
	}
}
