package batch_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// fakeConcur is Concur as the model test sees it: batches that are open or closed, the
// closes it received and whether it acted on each, the File-Urls it issued, v1.2 jobs that
// run later, and a fault chosen for each close by the test (fault). It answers through
// the batch.Upstream interface, with the Delivery the real client gives each failure.
type fakeConcur struct {
	mu      sync.Mutex
	rng     *rand.Rand
	batches map[string]*fakeBatch // by BatchID
	byURL   map[string]string     // Batch-URL -> BatchID
	files   map[string]string     // File-Url -> BatchID
	jobs    []string              // BatchIDs of v1.2 closes queued, not run yet
	events  []closeEvent
	fault   func(kind string) fault // chosen per close; nil: none
	nFiles  int
}

type fakeBatch struct {
	id, url string
	closed  bool
}

// closeEvent is one close Concur received.
type closeEvent struct {
	batchID string
	async   bool   // v1.2
	job     bool   // a queued v1.2 job that ran
	tag     reqTag // who sent it (the zero tag: the gateway on its own)
	acted   bool   // Concur closed the batch, or regenerated its file
	regen   bool   // it acted on a closed batch: a regeneration
	fileURL string // the File-Url it issued ("" for none)
	lost    bool   // the answer did not reach the gateway
}

// reqTag names the request a close was sent for (a context value the test sets).
type reqTag struct {
	op   int    // the test's operation number
	kind string // close, regenerate, async, file
	key  string // its Idempotency-Key
}

type tagKey struct{}

func tagOf(ctx context.Context) reqTag {
	t, _ := ctx.Value(tagKey{}).(reqTag)
	return t
}

// fault is what happens to one close.
type fault int

const (
	faultNone       fault = iota
	faultActLost          // Concur acts; the answer is lost (time-out after sending)
	faultNoActLost        // Concur does not act; the answer is lost
	faultNotSent          // never sent (no token, breaker open, no slot)
	faultAnswered         // Concur answers 503/429 and does not act
	faultFailure200       // Concur answers 200 with Status FAILURE; it may or may not have acted
)

func newFakeConcur(seed uint64, ids []string) *fakeConcur {
	f := &fakeConcur{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), batches: map[string]*fakeBatch{},
		byURL: map[string]string{}, files: map[string]string{}}
	for i, id := range ids {
		url := fmt.Sprintf("https://us2.api.concursolutions.com/api/expense/paymentbatch/v1.1/batch/k%d$x", i)
		f.batches[id] = &fakeBatch{id: id, url: url}
		f.byURL[url] = id
	}
	return f
}

func (f *fakeConcur) ListBatches(_ context.Context, s batch.ListStatus, fn func(batch.Summary) error) error {
	f.mu.Lock()
	f.runJobsLocked()
	var list []batch.Summary
	for _, b := range f.batches {
		if (s == batch.ListClosed) == b.closed || s == batch.ListAll {
			list = append(list, batch.Summary{ID: b.id, URL: b.url, Name: "n", Currency: "USD"})
		}
	}
	f.mu.Unlock()
	return each(list, nil, fn)
}

// runJobsLocked runs each queued v1.2 job with probability one half: Concur's job runs
// some time after it was accepted, always before the gateway's horizon in this model.
func (f *fakeConcur) runJobsLocked() {
	left := f.jobs[:0]
	for _, id := range f.jobs {
		if f.rng.IntN(2) == 0 {
			left = append(left, id)
			continue
		}
		b := f.batches[id]
		f.events = append(f.events, closeEvent{batchID: id, async: true, job: true, acted: true, regen: b.closed})
		b.closed = true
	}
	f.jobs = left
}

func (f *fakeConcur) CloseBatch(ctx context.Context, url string) (batch.CloseResult, error) {
	return f.close(ctx, url, false)
}

func (f *fakeConcur) CloseBatchAsync(ctx context.Context, url string) (batch.CloseResult, error) {
	return f.close(ctx, strings.Replace(url, "/v1.1/", "/v1.2/", 1), true)
}

func (f *fakeConcur) close(ctx context.Context, url string, async bool) (batch.CloseResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tag := tagOf(ctx)
	flt := faultNone
	if f.fault != nil {
		flt = f.fault(tag.kind)
	}
	id := f.byURL[strings.Replace(url, "/v1.2/", "/v1.1/", 1)]
	b := f.batches[id]
	if b == nil {
		return batch.CloseResult{}, &batch.Error{Code: batch.CodeBatchNotFound, Delivery: batch.Answered,
			Upstream: &batch.UpstreamError{Status: 404}}
	}
	switch flt {
	case faultNotSent:
		return batch.CloseResult{}, &batch.Error{Code: batch.CodeUpstreamAuthFailed, Delivery: batch.NotSent,
			Detail: "token endpoint refused"}
	case faultAnswered:
		f.events = append(f.events, closeEvent{batchID: id, async: async, tag: tag})
		return batch.CloseResult{}, &batch.Error{Code: batch.CodeUpstreamUnavailable, Delivery: batch.Answered,
			Upstream: &batch.UpstreamError{Status: 503}}
	case faultNoActLost:
		f.events = append(f.events, closeEvent{batchID: id, async: async, tag: tag, lost: true})
		return batch.CloseResult{}, &batch.Error{Code: batch.CodeUpstreamTimeout, Delivery: batch.MaybeDelivered}
	}
	acted := flt != faultFailure200 || f.rng.IntN(2) == 0
	ev := closeEvent{batchID: id, async: async, tag: tag, acted: acted, regen: acted && b.closed && !async,
		lost: flt == faultActLost || flt == faultFailure200}
	var res batch.CloseResult
	switch {
	case !acted:
	case async:
		f.jobs = append(f.jobs, id) // v1.2 schedules; its job closes (or regenerates) later
		res = batch.CloseResult{Status: "SUCCESS", JobQueueKey: fmt.Sprintf("JQ$%d", len(f.events))}
	default:
		b.closed = true
		f.nFiles++
		ev.fileURL = fmt.Sprintf("https://us2.api.concursolutions.com/api/expense/paymentbatch/v1.1/batch/J%d$f/file", f.nFiles)
		f.files[ev.fileURL] = id
		res = batch.CloseResult{Status: "SUCCESS", BatchStatus: "CLOSED", FileURL: ev.fileURL}
	}
	f.events = append(f.events, ev)
	switch flt {
	case faultActLost:
		return batch.CloseResult{}, &batch.Error{Code: batch.CodeUpstreamTimeout, Delivery: batch.MaybeDelivered}
	case faultFailure200:
		return batch.CloseResult{Status: "FAILURE"}, nil
	}
	return res, nil
}

func (f *fakeConcur) OpenFile(_ context.Context, url string) (*batch.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.files[url]; !ok {
		return nil, &batch.Error{Code: batch.CodeFileNotFound, Delivery: batch.Answered}
	}
	return &batch.File{Body: io.NopCloser(strings.NewReader(url)), ContentLength: -1}, nil
}

func (f *fakeConcur) history() []closeEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]closeEvent(nil), f.events...)
}
