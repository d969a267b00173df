package batch

import (
	"context"
	"errors"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// directory maps plain BatchIDs to the batches the store keeps (and so to their encrypted
// Batch-URLs), refreshing them from Concur's batch list on a miss, and keeps them fresh
// enough for reads (current). Concurrent refreshes share one fetch, and refreshes caused
// by misses or reads start at most once per minInterval, so a flood of unknown ids or of
// list requests costs Concur at most one refresh per interval. Within the interval a
// caller gets how the last fetch that asked Concur ended: a fetch a breaker refused
// (ErrCircuitOpen) asked nothing, so it neither starts an interval nor is repeated.
//
// A refresh reads the OPEN and the CLOSED lists, because a batch-list entry carries no
// status: which list holds a batch is the only way to learn whether it is closed.
type directory struct {
	up          Upstream
	st          Store
	minInterval time.Duration
	now         func() time.Time
	obs         Observer // told of lookups and fetches (observe.go); nil: none

	group singleflight.Group

	mu        sync.Mutex
	lastFetch time.Time // when the last fetch started; zero before the first
	lastErr   error     // how the last fetch ended
	lastOK    time.Time // when the last fetch that read both lists completely started
}

// Freshness says how current an answer read from the store is.
type Freshness struct {
	// AsOf is when the last refresh of this process that read Concur's OPEN and CLOSED
	// lists completely started: every batch in those lists was stored as of then. Zero
	// when no refresh has succeeded since the process started.
	AsOf time.Time
	// Stale is why the answer may be out of date: the error (an *Error) of the latest
	// batch-list refresh, which failed; nil when it succeeded. The answer is then what the
	// store held, as of AsOf at best.
	Stale error
}

// current brings the stored batches reasonably up to date for a read: it refreshes
// unless a fetch started less than minInterval ago (joining one that runs), and says how
// fresh the store is. A failed refresh is not an error here but Freshness.Stale: the
// caller decides whether what the store holds will do. The only error is ctx's.
func (d *directory) current(ctx context.Context) (Freshness, error) {
	err := d.refresh(ctx, time.Time{})
	if cerr := ctx.Err(); cerr != nil {
		return Freshness{}, cerr
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return Freshness{AsOf: d.lastOK, Stale: err}, nil
}

// lookup returns the stored batch, refreshing the list once on a miss.
func (d *directory) lookup(ctx context.Context, id string) (Batch, error) {
	b, err := d.st.GetBatch(ctx, id)
	if !errors.Is(err, ErrNotStored) {
		if err == nil {
			d.observe().BatchLookup(true)
		}
		return b, storeError(err)
	}
	d.observe().BatchLookup(false)
	if err := d.refresh(ctx, time.Time{}); err != nil {
		return Batch{}, err
	}
	b, err = d.st.GetBatch(ctx, id)
	if errors.Is(err, ErrNotStored) {
		return Batch{}, Errorf(CodeBatchNotFound, "batch %s is not in Concur's batch list", id)
	}
	return b, storeError(err)
}

// refresh brings the stored batches up to date with Concur's lists. With a zero since, it
// fetches unless a fetch started less than minInterval ago (then it reports how that one
// ended). With a non-zero since, it makes sure a fetch that started at or after since has
// completed: a caller that must learn the truth after an event does not settle for a fetch
// that began before it. A caller that gives up does not cancel the fetch for the others.
func (d *directory) refresh(ctx context.Context, since time.Time) error {
	for {
		ch := d.group.DoChan("batchlist", func() (any, error) { return d.fetch(ctx, !since.IsZero()) })
		var r singleflight.Result
		select {
		case <-ctx.Done():
			return ctx.Err()
		case r = <-ch:
		}
		started, _ := r.Val.(time.Time)
		if since.IsZero() || !started.Before(since) {
			return r.Err
		}
	}
}

// fetch runs one refresh (under the single flight) and returns when it started.
func (d *directory) fetch(ctx context.Context, force bool) (any, error) {
	d.mu.Lock()
	if !force && !d.lastFetch.IsZero() && d.now().Sub(d.lastFetch) < d.minInterval {
		started, err := d.lastFetch, d.lastErr
		d.mu.Unlock()
		return started, err
	}
	started, prevFetch, prevErr := d.now(), d.lastFetch, d.lastErr
	d.lastFetch = started
	d.mu.Unlock()

	// The fetch outlives any one caller; the Upstream applies its own time-out.
	ctx = context.WithoutCancel(ctx)
	var errs []error
	asked := false // whether Concur (its token endpoint included) was asked anything
	for _, status := range []ListStatus{ListOpen, ListClosed} {
		err := d.storeList(ctx, status)
		if err != nil {
			errs = append(errs, err)
		}
		asked = asked || !errors.Is(err, ErrCircuitOpen)
	}
	err := firstError(errs)
	d.mu.Lock()
	defer d.mu.Unlock()
	if !asked {
		// A breaker refused both lists: no fetch to spare Concur from, no answer worth
		// repeating, and none to count. The interval and the answer stay the last fetch's
		// that asked Concur.
		d.lastFetch, d.lastErr = prevFetch, prevErr
		return started, err
	}
	d.observe().BatchListRefreshed(err == nil)
	d.lastErr = err
	if err == nil {
		d.lastOK = started
	}
	return started, err
}

// storeList streams one of Concur's lists into the store, listChunk batches per upsert,
// so that the memory a refresh takes does not grow with the list. Upsert rather than
// replace: a batch that left the list keeps its mapping.
//
// A list that fails part way (Concur's answer cut or malformed, or the store failing)
// leaves the chunks stored before the failure stored, and the refresh failed: lastOK
// does not move, and Freshness says the answer is stale. What was stored is true all the
// same: every entry was in Concur's list as it was read, each chunk is upserted whole,
// and the store's rules keep it monotonic (a status is never cleared, and a stale OPEN
// entry never downgrades CLOSED). Entries of a list tried again from its start (see
// Upstream) are upserted again: the last one wins, as for an ID listed twice.
func (d *directory) storeList(ctx context.Context, status ListStatus) error {
	chunk := make([]Batch, 0, listChunk)
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		if err := d.st.UpsertBatches(ctx, chunk, d.now()); err != nil {
			return storeError(err)
		}
		clear(chunk) // drop the strings of the upserted batches
		chunk = chunk[:0]
		return nil
	}
	err := d.up.ListBatches(ctx, status, func(s Summary) error {
		if s.ID == "" || s.URL == "" {
			return nil
		}
		chunk = append(chunk, Batch{
			ID: s.ID, URL: s.URL, Name: s.Name, Total: s.Total, Currency: s.Currency, Count: s.Count,
			Type: s.Type, PaymentMethod: s.PaymentMethod, Status: string(status),
		})
		if len(chunk) == listChunk {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// listChunk is how many batches of a list one upsert carries: one transaction of the
// store each, so a refresh holds at most this many batches in memory, and holds the
// SQLite write lock for one chunk at a time rather than for the whole list.
const listChunk = 5000

func firstError(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return errs[0]
}

// storeError classifies a failure of the store. Its cause goes to the log only.
func storeError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*Error](err); ok {
		return err
	}
	return &Error{Code: CodeStoreUnavailable, Detail: "the gateway's database is not available",
		RetryAfter: 5 * time.Second, Err: err}
}
