package batch

import (
	"context"
	"errors"
	"time"

	"github.com/rs/zerolog"

	"github.com/finplat/payment-batch-gateway/internal/store"
)

// Store is what the domain keeps (internal/store implements it).
type Store interface {
	UpsertBatches(ctx context.Context, batches []store.Batch, seenAt time.Time) error
	GetBatch(ctx context.Context, id string) (store.Batch, error)
	ListBatches(ctx context.Context, q store.BatchQuery) ([]store.Batch, error)
	BeginClose(ctx context.Context, c store.Close) (store.Begun, error)
	FinishClose(ctx context.Context, c store.Close) error
	RecordClose(ctx context.Context, c store.Close) (store.Close, error)
	ListCloses(ctx context.Context, batchID string, limit int) ([]store.Close, error)
	LastClosed(ctx context.Context, batchID string) (store.Close, error)
	UnknownAfter(ctx context.Context, batchID string, afterID int64) (bool, error)
}

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
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Observer, when set, is told of batch-list lookups and refreshes (observe.go), for
	// metrics. Close outcomes are observed through the Store: see ObserveCloses.
	Observer Observer
}

// Service closes batches by their plain BatchID, guards against regenerating payment
// files, and serves the files.
type Service struct {
	up          Upstream
	st          Store
	dir         *directory
	lease       time.Duration
	settleDelay time.Duration
	now         func() time.Time
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
	return &Service{
		up: up, st: st, lease: lease, now: now,
		settleDelay: opts.SettleDelay,
		dir:         &directory{up: up, st: st, minInterval: opts.BatchListMinInterval, now: now, obs: opts.Observer},
	}
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

// Close closes the batch through Concur's synchronous (v1.1) close and records the
// attempt. In order:
//
//   - The id is mapped to its stored batch (refreshing the batch list once on a miss).
//   - The attempt takes the batch's close lease: while another close of the batch runs,
//     in this process or another replica, the answer is CodeCloseInProgress.
//   - If the batch's last close that reached Concur has an unknown outcome, no close is
//     sent within the settle delay after it (CodeCloseOutcomeUnknown), and after it the
//     batch list is read again first, to learn whether that close went through.
//   - A batch known to be closed is not closed again unless req.Regenerate: the answer is
//     CodeBatchAlreadyClosed carrying the recorded result, and Concur is not called.
//   - Otherwise Concur closes it. When Concur says the batch does not exist, the list is
//     refreshed once and the close tried once more if the Batch-URL changed.
//
// Once the lease is taken, the close runs to its end even if the caller gives up, so its
// outcome is always recorded; it runs within its lease (its context ends before the lease
// does), so no other close of the batch can start while this one may still reach Concur.
// An attempt that never sent its close to Concur is recorded as refused, so it cannot hide
// an earlier unknown outcome.
func (s *Service) Close(ctx context.Context, req CloseRequest) (CloseResult, error) {
	if err := ValidateID(req.ID); err != nil {
		return CloseResult{}, err
	}
	if req.Async && req.Regenerate {
		// A queued regeneration and the download's own v1.1 close would race: the stored
		// File-Url could name a file Concur has since replaced.
		return CloseResult{}, Errorf(CodeInvalidRequest, "?regenerate=true is synchronous only: drop Prefer: respond-async")
	}
	attempt := store.Close{
		BatchID: req.ID, Caller: req.Caller, RequestID: req.RequestID, IdempotencyKey: req.IdempotencyKey,
		Regenerate: req.Regenerate, Async: req.Async,
	}
	// The attempt begins on the batch the store knows (BeginClose reads it); a batch it
	// does not know yet is looked up, which refreshes Concur's lists once, and begun again.
	begun, err := s.begin(ctx, attempt)
	if errors.Is(err, store.ErrNotFound) {
		if _, err := s.dir.lookup(ctx, req.ID); err != nil {
			return CloseResult{}, err
		}
		begun, err = s.begin(ctx, attempt)
	} else if err == nil || errors.Is(err, store.ErrCloseInProgress) {
		s.dir.observe().BatchLookup(true)
	}
	if errors.Is(err, store.ErrCloseInProgress) {
		return CloseResult{}, s.refuse(ctx, req, begun.Attempt.StartedAt, &Error{Code: CodeCloseInProgress,
			RetryAfter: 5 * time.Second, Detail: "another close of batch " + req.ID +
				" is in progress; its outcome will be in GET /batches/" + req.ID + "/closes"})
	}
	if err != nil {
		return CloseResult{}, storeError(err)
	}
	res, _, _, err := s.runLeased(ctx, begun, func(ctx context.Context) (CloseResult, bool, error) {
		return s.closeGuarded(ctx, req, begun)
	}, s.finish)
	return res, err
}

// begin records the attempt c as in progress, holding the batch's close lease. On
// store.ErrCloseInProgress the returned Begun still carries c's start time.
func (s *Service) begin(ctx context.Context, c store.Close) (store.Begun, error) {
	now := s.now()
	c.StartedAt, c.LeaseUntil, c.Outcome = now, now.Add(s.lease), store.OutcomeInProgress
	begun, err := s.st.BeginClose(ctx, c)
	if err != nil {
		return store.Begun{Attempt: c}, err
	}
	return begun, nil
}

// runLeased runs guarded for the attempt begun within its lease (its context ends before
// the lease does) and detached from the caller, then lets end fill the attempt's outcome
// and records it: the attempt always reaches its recorded end.
func (s *Service) runLeased(ctx context.Context, begun store.Begun, guarded func(context.Context) (CloseResult, bool, error),
	end func(att *store.Close, res CloseResult, sent bool, err error)) (CloseResult, store.Close, bool, error) {
	ctx = context.WithoutCancel(ctx)
	callCtx, cancel := context.WithDeadline(ctx, time.Now().Add(s.lease-leaseMargin(s.lease)))
	res, sent, err := guarded(callCtx)
	cancel()
	att := begun.Attempt
	end(&att, res, sent, err)
	s.record(ctx, att)
	return res, att, sent, err
}

// leaseMargin is the part of the lease kept for recording the attempt's end.
func leaseMargin(lease time.Duration) time.Duration { return min(lease/10, time.Minute) }

// record writes the attempt's end, trying again for a while: an attempt left in progress
// turns unknown when its lease ends, and the File-Url of a successful close would be lost.
// If it still fails, what Concur answered is logged, so an operator can recover it.
func (s *Service) record(ctx context.Context, att store.Close) {
	var err error
	for try, wait := 0, 50*time.Millisecond; try < 6; try, wait = try+1, wait*2 {
		if err = s.st.FinishClose(ctx, att); err == nil {
			return
		}
		time.Sleep(wait)
	}
	zerolog.Ctx(ctx).Error().Err(err).Str("batchId", att.BatchID).Int64("attempt", att.ID).
		Str("outcome", string(att.Outcome)).Str("jobQueueKey", att.JobQueueKey).Bool("fileUrlKnown", att.FileURL != "").
		Msg("could not record the end of a close attempt: it will turn unknown when its lease ends")
}

// closeGuarded decides whether Concur may be called, and calls it. sent says whether a
// close was sent to Concur (so may have acted).
func (s *Service) closeGuarded(ctx context.Context, req CloseRequest, begun store.Begun) (CloseResult, bool, error) {
	b := begun.Batch
	if last := begun.LastDecisive; last != nil && last.Outcome == store.OutcomeUnknown {
		if wait := last.EndedAt.Add(s.settleDelay).Sub(s.now()); wait > 0 {
			return CloseResult{}, false, &Error{Code: CodeCloseOutcomeUnknown, RetryAfter: wait,
				Detail: "the outcome of an earlier close of batch " + req.ID + " is unknown and Concur may still " +
					"be processing it; the gateway will read Concur's batch list to settle it after the Retry-After"}
		}
		if !req.Regenerate {
			fresh, err := s.settle(ctx, req.ID, last.EndedAt.Add(s.settleDelay))
			if err != nil {
				return CloseResult{}, false, err
			}
			if last.Async && fresh.Status != store.StatusClosed {
				// A v1.2 close only schedules; there is no way to ask Concur about its job,
				// so OPEN does not mean it did not go through.
				return CloseResult{}, false, &Error{Code: CodeCloseOutcomeUnknown,
					Detail: "an asynchronous close of batch " + req.ID + " whose answer was lost may still be queued " +
						"in Concur, which offers no way to ask; check the batch in Concur, and close it with " +
						"?regenerate=true only if it must be closed again"}
			}
			b = fresh
		}
	}
	if !req.Regenerate && (b.Status == store.StatusClosed || begun.LastClosed != nil) {
		// Concur never reopens a batch: a close the gateway recorded settles it, even if a
		// batch list read before that close still says OPEN.
		return CloseResult{}, false, alreadyClosed(req.ID, begun.LastClosed)
	}
	send := s.up.CloseBatch
	if req.Async {
		send = s.up.CloseBatchAsync
	}
	res, err := send(ctx, b.URL)
	if ErrorCode(err) == CodeBatchNotFound {
		var sent bool
		if b, sent, err = s.refreshAfterNotFound(ctx, req, b, begun, err); sent {
			res, err = send(ctx, b.URL)
		}
	}
	if err != nil {
		return CloseResult{}, true, err
	}
	if res.Accepted = req.Async; !res.Accepted {
		res.ClosedAt = s.now() // an accepted close has not happened yet
	}
	res.Regenerated = b.Status == store.StatusClosed || begun.LastClosed != nil
	return res, true, nil
}

// settle reads the batch list again, with a fetch that started after since, to learn
// whether an earlier close with an unknown outcome went through.
func (s *Service) settle(ctx context.Context, id string, since time.Time) (store.Batch, error) {
	if err := s.dir.refresh(ctx, since); err != nil {
		return store.Batch{}, &Error{Code: ErrorCode(err), RetryAfter: retryAfterOf(err), Err: err,
			Detail: "the outcome of an earlier close of this batch is unknown, and Concur's batch list " +
				"could not be read to settle it; try again later"}
	}
	fresh, err := s.st.GetBatch(ctx, id)
	if err != nil {
		return store.Batch{}, storeError(err)
	}
	return fresh, nil
}

// refreshAfterNotFound handles Concur's "no such batch" to a close: the batch list is read
// again, and the close may be sent once more (retry) if the Batch-URL changed and the
// refreshed list does not show the batch closed (unless req.Regenerate). Otherwise the
// answer is notFound, or batch_already_closed.
func (s *Service) refreshAfterNotFound(ctx context.Context, req CloseRequest, b store.Batch, begun store.Begun,
	notFound error) (fresh store.Batch, retry bool, err error) {
	if err := s.dir.refresh(ctx, time.Time{}); err != nil {
		return b, false, err
	}
	fresh, err = s.st.GetBatch(ctx, req.ID)
	switch {
	case err != nil, fresh.URL == b.URL:
		return b, false, notFound
	case !req.Regenerate && fresh.Status == store.StatusClosed:
		return b, false, alreadyClosed(req.ID, begun.LastClosed)
	}
	return fresh, true, nil
}

func alreadyClosed(id string, last *store.Close) *Error {
	e := &Error{Code: CodeBatchAlreadyClosed}
	if last == nil {
		e.Detail = "Concur's batch list shows batch " + id + " as closed and the gateway has no record of its " +
			"close; closing it again regenerates its payment file: use ?regenerate=true to do so on purpose"
		return e
	}
	e.Detail = "batch " + id + " is already closed; closing it again regenerates its payment file: " +
		"use ?regenerate=true to do so on purpose"
	r := resultOf(*last)
	e.Recorded = &r
	return e
}

// refuse records an attempt that the gateway refused without calling Concur.
func (s *Service) refuse(ctx context.Context, req CloseRequest, at time.Time, e *Error) error {
	_, err := s.st.RecordClose(context.WithoutCancel(ctx), store.Close{
		BatchID: req.ID, Caller: req.Caller, RequestID: req.RequestID, IdempotencyKey: req.IdempotencyKey,
		Regenerate: req.Regenerate, StartedAt: at, EndedAt: s.now(), Outcome: store.OutcomeRefused,
		ErrorCode: string(e.Code), Detail: e.Detail,
	})
	if err != nil {
		return storeError(err)
	}
	return e
}

// finish fills the attempt's outcome from the close's result. An attempt that sent
// nothing to Concur is refused, whatever stopped it.
func (s *Service) finish(att *store.Close, res CloseResult, sent bool, err error) {
	att.EndedAt = s.now()
	if err == nil {
		att.Outcome, att.UpstreamStatus = store.OutcomeClosed, 200
		att.BatchStatus, att.Status, att.JobQueueKey, att.FileURL = res.BatchStatus, res.Status, res.JobQueueKey, res.FileURL
		if res.Accepted {
			// Scheduled, not done: the batch list tells when Concur's job has run (some
			// v1.2 answers say CLOSED already), and the first download obtains the File-Url.
			att.FileURL, att.BatchStatus = "", ""
			att.Detail = asyncAccepted
		}
		return
	}
	code := ErrorCode(err)
	att.ErrorCode = string(code)
	att.Outcome = outcomeOf(code)
	if e, ok := errors.AsType[*Error](err); ok {
		att.Detail = e.Detail
		if e.Upstream != nil {
			att.UpstreamStatus = e.Upstream.Status
		}
	}
	if !sent || code == CodeBatchAlreadyClosed {
		att.Outcome = store.OutcomeRefused
	}
}

// outcomeOf tells whether a failed close may have closed the batch. Only answers in
// which Concur clearly did not act count as failed; anything else (no answer, a cut
// connection, an unreadable or unexpected answer, a bug) may hide a close.
func outcomeOf(code Code) store.Outcome {
	switch code {
	case CodeBatchNotFound, CodeBatchNotClosable, CodeUpstreamConflict, CodeUpstreamAuthFailed,
		CodeUpstreamRateLimited, CodeUpstreamUnavailable, CodeUpstreamHostRefused, CodeUpstreamRejected,
		CodeStoreUnavailable, CodeBatchAlreadyClosed:
		return store.OutcomeFailed
	default:
		return store.OutcomeUnknown
	}
}

func retryAfterOf(err error) time.Duration {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.RetryAfter
	}
	return 0
}

// Closes returns the batch's close attempts, newest first.
func (s *Service) Closes(ctx context.Context, id string, limit int) ([]Attempt, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	if _, err := s.st.GetBatch(ctx, id); errors.Is(err, store.ErrNotFound) {
		return nil, Errorf(CodeBatchNotFound, "the gateway knows no batch %s", id)
	} else if err != nil {
		return nil, storeError(err)
	}
	list, err := s.st.ListCloses(ctx, id, limit)
	if err != nil {
		return nil, storeError(err)
	}
	out := make([]Attempt, len(list))
	for i, c := range list {
		out[i] = attemptOf(c)
	}
	return out, nil
}
