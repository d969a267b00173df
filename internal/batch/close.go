package batch

import (
	"context"
	"crypto/rand"
	"errors"
	"time"
)

// The close of a batch is a state machine kept with the batch (CloseState). This file is
// the whole decision: every transition is one Store.Apply, a compare-and-set on the
// state's version in one transaction, and every time that fences or settles is the
// database's clock (CloseState.Now), never this replica's.
//
//	open ──send──▶ closing ──Concur closed it──────────────▶ closed ──regenerate──▶ closing
//	                  │ ──Concur accepted a v1.2 close──────▶ scheduled
//	                  │ ──no effect (not sent, or refused)──▶ back to where it came from
//	                  │ ──answer lost (may have acted)──────▶ unknown (v1.2: scheduled)
//	                  └ ──lease expired (crashed)───────────▶ unknown (v1.2: scheduled)
//	unknown ──after SettleUntil, Concur's list read──▶ closed (CLOSED) | open (OPEN)
//	scheduled ──finisher: list CLOSED, v1.1 close──▶ closed (with the File-Url)
//	scheduled ──finisher: list OPEN past the horizon──▶ open
//
// A caller sees: open → the close is sent; closing and scheduled → 409 close_in_progress;
// unknown → 409 close_outcome_unknown until SettleUntil, then the list decides; closed →
// 409 batch_already_closed with the recorded result, unless ?regenerate=true.

// step is what decide says to do with a close request.
type step int

const (
	stepSend   step = iota // take the lease and send the close to Concur
	stepRefuse             // answer the error; nothing is sent
	stepExpire             // the lease holder crashed: record it, then decide again
	stepSettle             // read Concur's batch list to settle a lost close, then decide again
)

// decide is the guard: given the batch as stored (its close state read at Close.Now,
// the database's clock), what may a request do? It reads nothing and writes nothing.
func decide(b Batch, req CloseRequest) (step, *Error) {
	c := b.Close
	switch c.State {
	case StateClosing:
		if c.Now.Before(c.LeaseUntil) {
			return stepRefuse, &Error{Code: CodeCloseInProgress, RetryAfter: 5 * time.Second,
				Detail: "another close of batch " + b.ID + " is in progress; its outcome will be in GET /batches/" +
					b.ID + "/closes"}
		}
		return stepExpire, nil
	case StateScheduled:
		return stepRefuse, &Error{Code: CodeCloseInProgress, RetryAfter: 30 * time.Second,
			Detail: "Concur has scheduled an asynchronous close of batch " + b.ID + " (or may have: its answer was " +
				"lost); the gateway watches Concur's batch list and obtains the file once the job has run, and " +
				"accepts no other close of the batch meanwhile"}
	case StateUnknown:
		if wait := c.SettleUntil.Sub(c.Now); wait > 0 {
			return stepRefuse, &Error{Code: CodeCloseOutcomeUnknown, RetryAfter: max(wait.Round(time.Second), time.Second),
				Detail: "the outcome of an earlier close of batch " + b.ID + " is unknown and Concur may still be " +
					"processing it; after the Retry-After the gateway reads Concur's batch list to settle it"}
		}
		return stepSettle, nil
	case StateClosed:
		if !req.Regenerate {
			return stepRefuse, nil // alreadyClosed, with the recorded result: see refusal
		}
		return stepSend, nil
	}
	if b.Status == StatusClosed && !req.Regenerate {
		// Concur never reopens a batch: its CLOSED list settles it.
		return stepRefuse, nil
	}
	return stepSend, nil
}

// regenerates reports whether a close sent now would make Concur regenerate the file.
func regenerates(b Batch) bool { return b.Close.State == StateClosed || b.Status == StatusClosed }

// after is the state a close attempt leaves and the outcome it is recorded with, given
// how it ended. c is the attempt's closing state (Prev: where it came from).
func (s *Service) after(c CloseState, att Close, res CloseResult, err error) (CloseState, Outcome) {
	back := CloseState{State: c.Prev, FileClose: c.FileClose, SettleUntil: c.SettleUntil, CheckAt: c.CheckAt}
	if back.State != StateClosed && back.State != StateScheduled {
		back.State = StateOpen
	}
	if back.State == StateScheduled {
		back.CheckAt = c.Now.Add(s.pollWait(c)) // the finisher's close failed: back off before the next
	}
	scheduled := CloseState{State: StateScheduled, SettleUntil: c.Now.Add(s.asyncHorizon), CheckAt: c.Now.Add(s.pollMin)}
	switch {
	case err == nil && att.Async:
		return scheduled, OutcomeClosed
	case err == nil:
		return CloseState{State: StateClosed, FileClose: att.ID}, OutcomeClosed
	case DeliveryOf(err) == NotSent:
		return back, OutcomeRefused
	case DeliveryOf(err) == Answered:
		return back, OutcomeFailed
	case att.Async:
		// A v1.2 close whose answer was lost may be queued in Concur: watch for its job.
		return scheduled, OutcomeUnknown
	case c.Prev == StateScheduled:
		// The finisher's v1.1 close of a batch Concur's list shows CLOSED: it is closed,
		// and its File-Url is lost with the answer. It is not sent again on its own.
		return CloseState{State: StateClosed}, OutcomeUnknown
	}
	return CloseState{State: StateUnknown, Prev: back.State, CloseID: att.ID, FileClose: c.FileClose,
		SettleUntil: c.Now.Add(s.settleDelay)}, OutcomeUnknown
}

// transition is the change an attempt's end makes to the batch's state c: after's, when
// the state still waits on this attempt (closing, or turned unknown or scheduled when its
// lease expired); when the state was settled meanwhile, only a File-Url the settled
// state lacks. Nil leaves the state as it is.
func (s *Service) transition(c CloseState, att Close, res CloseResult, err error) (*CloseState, Outcome) {
	next, outcome := s.after(c, att, res, err)
	if c.CloseID != att.ID {
		return nil, outcome
	}
	switch c.State {
	case StateClosing, StateUnknown, StateScheduled:
		return &next, outcome
	}
	if outcome == OutcomeClosed && !att.Async {
		return &CloseState{State: StateClosed, FileClose: att.ID}, outcome // the late answer wins: its file is the newest
	}
	return nil, outcome
}

// succeeded reports whether Concur called the close a success: Status SUCCESS, BatchStatus
// CLOSED or a File-Url. Anything else is not an answer the gateway may call a close.
func succeeded(r CloseResult) bool {
	return r.Status == "SUCCESS" || r.BatchStatus == StatusClosed || r.FileURL != ""
}

// Close closes the batch req.ID through Concur (v1.1, or v1.2 when req.Async) unless
// decide refuses, and records the attempt. A retry with an Idempotency-Key whose attempt
// reached Concur gets that attempt's outcome again instead of a second close.
//
// Once the lease is taken the close runs to its end even if the caller gives up, within
// the lease (its context ends a margin before the lease does), so no other close of the
// batch can start while this one may still reach Concur; its end is recorded, retried in
// the background if the store fails (see recorder).
func (s *Service) Close(ctx context.Context, req CloseRequest) (CloseResult, error) {
	if err := ValidateID(req.ID); err != nil {
		return CloseResult{}, err
	}
	if req.Async && req.Regenerate {
		return CloseResult{}, Errorf(CodeInvalidRequest, "?regenerate=true is synchronous only: drop Prefer: respond-async")
	}
	// The close's deadline is measured from here, before the state is first read: the
	// lease starts later, and the whole request, settling and all, stays within the budget.
	start := time.Now()
	for try := 0; ; try++ {
		b, err := s.dir.lookup(ctx, req.ID)
		if err != nil {
			return CloseResult{}, err
		}
		// The key is looked up after the state is read: an attempt it made before that read
		// is found, and one begun since moved the state, so the lease taken from it fails
		// and the next turn finds the attempt.
		if req.IdempotencyKey != "" {
			if res, err, done := s.replayKey(ctx, req); done {
				return res, err
			}
		}
		st, refusal := decide(b, req)
		switch st {
		case stepRefuse:
			return CloseResult{}, s.refuse(ctx, req, b, refusal)
		case stepExpire:
			err = s.expire(ctx, b)
		case stepSettle:
			err = s.settle(ctx, b)
		case stepSend:
			res, err := s.send(ctx, req, b, start)
			if !errors.Is(err, ErrStateChanged) {
				return res, err
			}
		}
		if err != nil && !errors.Is(err, ErrStateChanged) {
			return CloseResult{}, err
		}
		if try == 8 {
			return CloseResult{}, &Error{Code: CodeCloseInProgress, RetryAfter: time.Second,
				Detail: "the close state of batch " + req.ID + " keeps changing under this request; try again"}
		}
	}
}

// send takes the batch's lease (closing) and sends the close; start is when the request
// began reading the state. ErrStateChanged: another request changed the state first.
func (s *Service) send(ctx context.Context, req CloseRequest, b Batch, start time.Time) (CloseResult, error) {
	c := b.Close
	att := Close{BatchID: b.ID, Caller: req.Caller, RequestID: req.RequestID, IdempotencyKey: req.IdempotencyKey,
		Regenerate: regenerates(b), Async: req.Async, StartedAt: c.Now, LeaseUntil: c.Now.Add(s.lease),
		Outcome: OutcomeInProgress, Claim: rand.Text()}
	to := CloseState{State: StateClosing, Prev: c.State, FileClose: c.FileClose}
	if b.Status == StatusClosed && c.State == StateOpen {
		to.Prev = StateClosed // Concur's list knew it closed: a regeneration that fails leaves it closed
	}
	claim := att.Claim
	b, att, err := s.st.Apply(ctx, Change{BatchID: b.ID, From: c.Version, To: &to, Begin: &att})
	if err != nil {
		if !errors.Is(err, ErrStateChanged) {
			s.release(ctx, req.ID, claim)
		}
		return CloseResult{}, storeError(err)
	}
	// The close runs detached from the caller and ends a margin before the lease does:
	// the deadline is measured from start, which came before the database read the lease's
	// start, so it holds whatever this replica's clock says.
	defer s.rec.begin(ctx, att)() // Drain waits for this close from here on
	callCtx, cancel := context.WithDeadline(context.WithoutCancel(ctx), start.Add(s.lease-leaseMargin(s.lease)))
	res, err := s.call(callCtx, req, b, att)
	cancel()
	return s.end(ctx, att, res, err)
}

// release ends, as refused, the attempt with the claim if it took the lease after all
// (the store committed, then failed to say so): nothing was sent, and it must not turn
// unknown when its lease ends. If the store fails again, the lease ends as it would.
func (s *Service) release(ctx context.Context, id, claim string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	b, err := s.st.GetBatch(ctx, id)
	if err != nil || b.Close.State != StateClosing {
		return
	}
	att, err := s.st.GetClose(ctx, b.Close.CloseID)
	if err != nil || att.Claim != claim || att.Outcome != OutcomeInProgress {
		return
	}
	_, _ = s.rec.try(ctx, &att, CloseResult{}, errNotBegun)
}

// errNotBegun is the end of an attempt whose lease the store took but said it had not.
var errNotBegun = &Error{Code: CodeStoreUnavailable, Delivery: NotSent,
	Detail: "the close could not be begun (the gateway's database failed): nothing was sent to Concur"}

// call sends the close to Concur. When Concur says the batch does not exist, the list is
// read again and the close sent once more if the Batch-URL changed.
func (s *Service) call(ctx context.Context, req CloseRequest, b Batch, att Close) (CloseResult, error) {
	send := s.up.CloseBatch
	if req.Async {
		send = s.up.CloseBatchAsync
	}
	res, err := send(ctx, b.URL)
	if ErrorCode(err) == CodeBatchNotFound && DeliveryOf(err) != MaybeDelivered {
		if fresh, retry := s.refreshAfterNotFound(ctx, b, att); retry {
			res, err = send(ctx, fresh.URL)
		}
	}
	if err == nil && !succeeded(res) {
		err = &Error{Code: CodeUpstreamBadResponse, Delivery: MaybeDelivered, CorrelationID: res.CorrelationID,
			Detail: "Concur answered the close without calling it a success (Status \"" + res.Status +
				"\", BatchStatus \"" + res.BatchStatus + "\"): the batch may or may not be closed; the gateway " +
				"settles it from Concur's batch list"}
	}
	if err == nil {
		res.Accepted, res.Regenerated = req.Async, att.Regenerate
	}
	return res, err
}

// refreshAfterNotFound reads the list again after Concur said the batch does not exist:
// the close may be sent once more if the Batch-URL changed and the list does not show the
// batch closed (unless the close is a regeneration).
func (s *Service) refreshAfterNotFound(ctx context.Context, b Batch, att Close) (Batch, bool) {
	if err := s.dir.refresh(ctx, time.Time{}); err != nil {
		return b, false
	}
	fresh, err := s.st.GetBatch(ctx, b.ID)
	switch {
	case err != nil, fresh.URL == b.URL:
		return b, false
	case !att.Regenerate && fresh.Status == StatusClosed:
		return b, false
	}
	return fresh, true
}

// end records how the attempt ended and moves the batch's state accordingly.
func (s *Service) end(ctx context.Context, att Close, res CloseResult, err error) (CloseResult, error) {
	att.UpstreamStatus, att.ErrorCode, att.Detail, att.UpstreamCorrelationID = 0, "", "", ""
	if err == nil {
		att.UpstreamStatus, att.UpstreamCorrelationID = 200, res.CorrelationID
		att.BatchStatus, att.Status, att.JobQueueKey, att.FileURL = res.BatchStatus, res.Status, res.JobQueueKey, res.FileURL
		if att.Async {
			att.FileURL, att.Detail = "", asyncAccepted
		}
		if att.Caller == System {
			att.Detail = fileURLDetail
		}
	} else {
		att.ErrorCode = string(ErrorCode(err))
		if e, ok := errors.AsType[*Error](err); ok {
			att.Detail, att.UpstreamCorrelationID = e.Detail, e.CorrelationID
			if e.Upstream != nil {
				att.UpstreamStatus = e.Upstream.Status
			}
		}
	}
	// Recorded now or, when the store refuses it, later by the background: either way
	// with the instant the answer gives.
	recorded, _ := s.rec.record(ctx, att, res, err)
	switch {
	case err != nil:
		return CloseResult{}, err
	case !res.Accepted: // an accepted close is scheduled, not closed yet
		res.ClosedAt = recorded.EndedAt // one instant for the answer and the record
	}
	return res, nil
}

// expire records that the lease holder of b crashed (its lease ran out before it ended):
// its close may have reached Concur. The state keeps waiting on that attempt, so that its
// end, if it is recorded late, still counts.
func (s *Service) expire(ctx context.Context, b Batch) error {
	c := b.Close
	crashed, err := s.st.GetClose(ctx, c.CloseID)
	if err != nil {
		return storeError(err)
	}
	next, _ := s.after(c, crashed, CloseResult{}, errCrashed)
	next.CloseID, next.Prev = c.CloseID, c.Prev
	crashed.Outcome, crashed.EndedAt, crashed.ErrorCode, crashed.Detail = OutcomeUnknown, c.Now,
		string(CodeCloseOutcomeUnknown), crashedDetail
	_, _, err = s.st.Apply(ctx, Change{BatchID: b.ID, From: c.Version, To: &next, End: &crashed})
	return storeError(err)
}

// errCrashed is the error of an attempt whose lease expired: it may have reached Concur.
var errCrashed = &Error{Code: CodeCloseOutcomeUnknown, Delivery: MaybeDelivered, Detail: crashedDetail}

// crashedDetail explains an attempt whose lease expired while it was in progress.
const crashedDetail = "the gateway stopped mid-close (its lease expired before the attempt ended): " +
	"the close may or may not have reached Concur"

// settle reads Concur's batch list, with a fetch that starts after the settle delay has
// passed (it has: decide said so at b.Close.Now), to learn whether the lost close went
// through (see settleFrom).
func (s *Service) settle(ctx context.Context, b Batch) error {
	since := s.now()
	if err := s.dir.refresh(ctx, since); err != nil {
		return &Error{Code: ErrorCode(err), RetryAfter: retryAfterOf(err), Err: err,
			Detail: "the outcome of an earlier close of this batch is unknown, and Concur's batch list could not " +
				"be read to settle it; try again later"}
	}
	return s.settleFrom(ctx, b, since)
}

// settleFrom settles b from a list read that started at since, after the settle delay
// had passed: CLOSED settles the batch closed (without a File-Url: the answer that
// carried it was lost), OPEN settles it open, a batch in neither list stays unknown.
func (s *Service) settleFrom(ctx context.Context, b Batch, since time.Time) error {
	fresh, err := s.st.GetBatch(ctx, b.ID)
	if err != nil {
		return storeError(err)
	}
	c := b.Close
	next := CloseState{State: StateOpen, CloseID: c.CloseID, FileClose: c.FileClose}
	switch {
	case fresh.Status == StatusClosed:
		next.State = StateClosed
	case fresh.Status != StatusOpen || fresh.LastSeen.Before(since):
		// In neither list as read now: nothing is settled. Look again after the delay.
		next = c
		next.SettleUntil = c.Now.Add(s.settleDelay)
	}
	_, _, err = s.st.Apply(ctx, Change{BatchID: b.ID, From: c.Version, To: &next})
	return storeError(err)
}

// refuse answers a close that decide refused. A batch already closed answers with its
// recorded close. The refusal is recorded in the batch's history.
func (s *Service) refuse(ctx context.Context, req CloseRequest, b Batch, e *Error) error {
	if e == nil {
		e = s.alreadyClosed(ctx, b)
	}
	att := Close{BatchID: b.ID, Caller: req.Caller, RequestID: req.RequestID, IdempotencyKey: req.IdempotencyKey,
		Regenerate: req.Regenerate, Async: req.Async, StartedAt: b.Close.Now, EndedAt: b.Close.Now,
		Outcome: OutcomeRefused, ErrorCode: string(e.Code), Detail: e.Detail}
	if _, _, err := s.st.Apply(context.WithoutCancel(ctx), Change{BatchID: b.ID, Begin: &att}); err != nil {
		return storeError(err)
	}
	s.observe().CloseObserved(string(OutcomeRefused))
	return e
}

func (s *Service) alreadyClosed(ctx context.Context, b Batch) *Error {
	e := &Error{Code: CodeBatchAlreadyClosed}
	var last Close
	var err error
	if b.Close.FileClose != 0 {
		last, err = s.st.GetClose(ctx, b.Close.FileClose)
	}
	if b.Close.FileClose == 0 || err != nil {
		e.Detail = "batch " + b.ID + " is closed (Concur's batch list shows it closed) and the gateway has no record " +
			"of the answer to its close; closing it again regenerates its payment file: use ?regenerate=true to do so on purpose"
		return e
	}
	e.Detail = "batch " + b.ID + " is already closed; closing it again regenerates its payment file: " +
		"use ?regenerate=true to do so on purpose"
	r := last.Result()
	e.Recorded = &r
	return e
}

// replayKey answers a request whose Idempotency-Key already made an attempt that reached
// Concur: the outcome of that attempt, not a second close. done is false when the request
// should run (no such attempt, or one that had no effect, or a plain close whose outcome
// is unknown: the guards then decide, and they never close twice).
func (s *Service) replayKey(ctx context.Context, req CloseRequest) (CloseResult, error, bool) {
	prev, err := s.st.CloseByKey(ctx, req.ID, req.Caller, req.IdempotencyKey)
	switch {
	case errors.Is(err, ErrNotStored):
		return CloseResult{}, nil, false
	case err != nil:
		return CloseResult{}, storeError(err), true
	}
	switch prev.Outcome {
	case OutcomeClosed:
		r := prev.Result()
		if prev.Async {
			r.Accepted, r.ClosedAt = true, time.Time{}
		}
		return r, nil, true
	case OutcomeInProgress:
		return CloseResult{}, &Error{Code: CodeCloseInProgress, RetryAfter: 5 * time.Second,
			Detail: "the close made with this Idempotency-Key is still in progress"}, true
	case OutcomeUnknown:
		if req.Regenerate {
			return CloseResult{}, &Error{Code: CodeCloseOutcomeUnknown,
				Detail: "the regeneration made with this Idempotency-Key may have reached Concur and its answer was " +
					"lost: it is not made again under the same key; check the batch in Concur, and use a new key to " +
					"regenerate again on purpose"}, true
		}
	}
	return CloseResult{}, nil, false
}

// leaseMargin is the part of the lease kept for recording the attempt's end.
func leaseMargin(lease time.Duration) time.Duration { return min(lease/10, time.Minute) }

func retryAfterOf(err error) time.Duration {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.RetryAfter
	}
	return 0
}
