package batch

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// directory maps plain BatchIDs to their batch-list entries (and so to their encrypted
// Batch-URLs). It refreshes from Concur on a miss: concurrent misses share one fetch, and
// fetches start at most once per minInterval, so a flood of unknown ids costs Concur at
// most one batch-list call per interval.
type directory struct {
	up          Upstream
	minInterval time.Duration
	now         func() time.Time

	group singleflight.Group

	mu        sync.RWMutex
	byID      map[string]Summary
	lastFetch time.Time // when the last fetch started; zero before the first
	lastErr   error     // how the last fetch ended
}

func newDirectory(up Upstream, minInterval time.Duration, now func() time.Time) *directory {
	return &directory{up: up, minInterval: minInterval, now: now, byID: make(map[string]Summary)}
}

func (d *directory) get(id string) (Summary, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	s, ok := d.byID[id]
	return s, ok
}

// lookup returns the entry for id, refreshing the list once on a miss.
func (d *directory) lookup(ctx context.Context, id string) (Summary, error) {
	if s, ok := d.get(id); ok {
		return s, nil
	}
	if err := d.refresh(ctx); err != nil {
		return Summary{}, err
	}
	if s, ok := d.get(id); ok {
		return s, nil
	}
	return Summary{}, Errorf(CodeBatchNotFound, "batch %s is not in Concur's batch list", id)
}

// refresh fetches the batch list unless a fetch started less than minInterval ago, in
// which case it reports how that fetch ended. Concurrent callers share one fetch; a
// caller that gives up does not cancel the fetch for the others.
func (d *directory) refresh(ctx context.Context) error {
	ch := d.group.DoChan("batchlist", func() (any, error) {
		d.mu.Lock()
		if !d.lastFetch.IsZero() && d.now().Sub(d.lastFetch) < d.minInterval {
			err := d.lastErr
			d.mu.Unlock()
			return nil, err
		}
		d.lastFetch = d.now()
		d.mu.Unlock()

		// The fetch outlives any one caller; the Upstream applies its own time-out.
		list, err := d.up.ListBatches(context.WithoutCancel(ctx), ListAll)

		d.mu.Lock()
		defer d.mu.Unlock()
		d.lastErr = err
		if err != nil {
			return nil, err
		}
		// Merge rather than replace: a batch that left the list keeps its mapping.
		for _, s := range list {
			if s.ID != "" && s.URL != "" {
				d.byID[s.ID] = s
			}
		}
		return nil, nil
	})
	select {
	case <-ctx.Done():
		return ctx.Err()
	case r := <-ch:
		return r.Err
	}
}
