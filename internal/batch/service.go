package batch

import (
	"context"
	"errors"
	"time"
)

// Options tunes a Service.
type Options struct {
	// BatchListMinInterval is the least time between two batch-list fetches, whether
	// caused by unknown ids or by reads (List, Get) wanting fresh data. Zero means no bound
	// (tests only).
	BatchListMinInterval time.Duration
	// CloseLease is how long a close holds its batch's lease: longer than the longest
	// close can legitimately take. After it, a close that never finished (its process
	// died) counts as unknown and the batch may be closed again. Default 10 minutes.
	CloseLease time.Duration
	// SettleDelay is how long after a close with an unknown outcome Concur's batch list is
	// not trusted to tell whether that close went through (Concur may still be processing
	// it): within it, closes of the batch answer CodeCloseOutcomeUnknown. The gateway uses
	// the Concur time-out. Zero means none (tests only).
	SettleDelay time.Duration
	// AsyncHorizon is how long after an asynchronous close Concur's job may still run:
	// until then the finisher watches the batch list for it and no other close of the
	// batch is sent; after it, a batch still OPEN is open again. Default 24 hours.
	AsyncHorizon time.Duration
	// PollMin and PollMax bound the finisher's wait between two reads of the batch list
	// for a scheduled close (it waits half the time since the close). Defaults 2 s and
	// 5 minutes.
	PollMin, PollMax time.Duration
	// Seal seals a close's record for the log when the store cannot take it (the secret
	// key's box); nil logs no record.
	Seal func([]byte) (string, error)
	// Now is the clock for what is not fenced by the database (the directory's pacing);
	// nil means time.Now.
	Now func() time.Time
	// Observer, when set, is told of batch-list lookups and refreshes and of every close
	// outcome recorded (observe.go), for metrics.
	Observer Observer
}

// Service closes batches by their plain BatchID, guards against regenerating payment
// files, and serves the files.
type Service struct {
	up           Upstream
	st           Store
	dir          *directory
	rec          *recorder
	obs          Observer
	lease        time.Duration
	settleDelay  time.Duration
	asyncHorizon time.Duration
	pollMin      time.Duration
	pollMax      time.Duration
	now          func() time.Time
}

// NewService returns a Service that talks to Concur through up and keeps state in st.
func NewService(up Upstream, st Store, opts Options) *Service {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	lease := opts.CloseLease
	if lease <= 0 {
		lease = 10 * time.Minute
	}
	s := &Service{
		up: up, st: st, lease: lease, now: now, obs: opts.Observer,
		settleDelay:  opts.SettleDelay,
		asyncHorizon: orDefault(opts.AsyncHorizon, 24*time.Hour),
		pollMin:      orDefault(opts.PollMin, 2*time.Second),
		pollMax:      orDefault(opts.PollMax, 5*time.Minute),
		dir:          &directory{up: up, st: st, minInterval: opts.BatchListMinInterval, now: now, obs: opts.Observer},
	}
	s.rec = newRecorder(s, leaseMargin(lease), opts.Seal)
	return s
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// RunRecorder stores, until ctx ends, the close ends the store refused at first. ctx
// ending is the shutdown of the recording: a close whose end the store refuses then stops
// waiting to try again and leaves it to Drain. (RunFinisher is the other background work.)
func (s *Service) RunRecorder(ctx context.Context) { s.rec.run(ctx) }

// Drain is the last of a Service: it stores the close ends still pending, and those of
// the closes still recording, until ctx ends; those left are logged sealed, and Drain
// says so.
func (s *Service) Drain(ctx context.Context) error { return s.rec.drain(ctx) }

// Unrecorded is how many close ends Concur produced that are not stored yet.
func (s *Service) Unrecorded() int { return s.rec.Unrecorded() }

// observe is the Service's Observer, never nil.
func (s *Service) observe() Observer {
	if s.obs == nil {
		return nopObserver{}
	}
	return s.obs
}

// CloseRequest is one caller's request to close a batch.
type CloseRequest struct {
	ID             string // plain BatchID
	Caller         string // who asks ("anonymous" without caller authentication)
	RequestID      string
	IdempotencyKey string
	// Regenerate allows closing a batch the gateway knows is closed: Concur then
	// regenerates its payment file.
	Regenerate bool
	// Async uses Concur's asynchronous (v1.2) close: Concur schedules it and answers a
	// JobQueueKey; the result is Accepted, without a File-Url (see File).
	Async bool
}

// Closes returns the batch's closes, newest first.
func (s *Service) Closes(ctx context.Context, id string, limit int) ([]Close, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	if _, err := s.st.GetBatch(ctx, id); errors.Is(err, ErrNotStored) {
		return nil, Errorf(CodeBatchNotFound, "the gateway knows no batch %s", id)
	} else if err != nil {
		return nil, storeError(err)
	}
	list, err := s.st.ListCloses(ctx, id, limit)
	if err != nil {
		return nil, storeError(err)
	}
	return list, nil
}
