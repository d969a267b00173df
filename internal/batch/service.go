package batch

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Options tunes a Service.
type Options struct {
	// BatchListMinInterval is the least time between two batch-list fetches caused by
	// unknown ids. Zero means no bound (tests only).
	BatchListMinInterval time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Service closes batches by their plain BatchID and serves their payment files.
type Service struct {
	up     Upstream
	dir    *directory
	closes singleflight.Group // one close in flight per batch in this process

	mu    sync.RWMutex
	files map[string]string // BatchID -> Concur File-Url, kept server-side only
}

// NewService returns a Service that talks to Concur through up.
func NewService(up Upstream, opts Options) *Service {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Service{
		up:    up,
		dir:   newDirectory(up, opts.BatchListMinInterval, now),
		files: make(map[string]string),
	}
}

// Close closes the batch with the given plain BatchID through Concur's synchronous (v1.1)
// close, and remembers the File-Url so that File can serve it.
//
// Concurrent closes of the same batch share one Concur close and its answer: closing a
// closed batch makes Concur regenerate its payment file. The shared close runs to its end
// even if every caller gives up, so its outcome is never lost.
//
// When Concur says the batch does not exist, the batch list is refreshed once (within the
// refresh bound): if it now maps the id to another Batch-URL, the close is tried once more
// there; otherwise the answer is CodeBatchNotFound. A not-found answer means Concur did not
// act, so the second attempt cannot close the batch twice.
func (s *Service) Close(ctx context.Context, id string) (CloseResult, error) {
	if err := ValidateID(id); err != nil {
		return CloseResult{}, err
	}
	ch := s.closes.DoChan(id, func() (any, error) {
		return s.close(context.WithoutCancel(ctx), id)
	})
	select {
	case <-ctx.Done():
		return CloseResult{}, ctx.Err()
	case r := <-ch:
		res, _ := r.Val.(CloseResult)
		return res, r.Err
	}
}

func (s *Service) close(ctx context.Context, id string) (CloseResult, error) {
	sum, err := s.dir.lookup(ctx, id)
	if err != nil {
		return CloseResult{}, err
	}
	res, err := s.up.CloseBatch(ctx, sum.URL)
	if ErrorCode(err) == CodeBatchNotFound {
		res, err = s.retryAfterRefresh(ctx, id, sum.URL, err)
	}
	if err != nil {
		return CloseResult{}, err
	}
	if res.FileURL != "" {
		s.mu.Lock()
		s.files[id] = res.FileURL
		s.mu.Unlock()
	}
	return res, nil
}

func (s *Service) retryAfterRefresh(ctx context.Context, id, staleURL string, notFound error) (CloseResult, error) {
	if err := s.dir.refresh(ctx); err != nil {
		return CloseResult{}, err
	}
	fresh, ok := s.dir.get(id)
	if !ok || fresh.URL == staleURL {
		return CloseResult{}, notFound
	}
	return s.up.CloseBatch(ctx, fresh.URL)
}

// File opens the payment file of the last successful close of the batch. The caller must
// close the returned file's Body.
func (s *Service) File(ctx context.Context, id string) (*File, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	s.mu.RLock()
	fileURL, ok := s.files[id]
	s.mu.RUnlock()
	if !ok {
		return nil, Errorf(CodeFileNotFound, "this gateway knows no payment file for batch %s", id)
	}
	return s.up.OpenFile(ctx, fileURL)
}
