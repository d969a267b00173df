package batch

import (
	"context"
	"crypto/rand"
	"errors"
	"time"

	"github.com/rs/zerolog"
)

// The finisher moves on, in the background, what would otherwise wait for the next
// caller: a close whose replica died (its lease expired: unknown), a lost close past its
// settle delay (settled from the batch list), and the gateway's asynchronous closes, which
// it ends on its own, as Concur recommends:
// once Concur's batch list shows the batch CLOSED (its job has run), one v1.1 close of
// the closed batch yields the File-Url. That close regenerates the file: it is the one
// regeneration the gateway makes on its own, made once per asynchronous close, under the
// batch's lease (so by one replica), and recorded with the caller System. Reads never
// close: a download before then answers file_not_ready.

// finishBatch is how many scheduled batches one pass of the finisher takes on.
const finishBatch = 100

// finishPass runs one pass: it reads Concur's batch list once if any scheduled batch is
// due, then moves each due batch on. It returns how many batches it looked at.
func (s *Service) finishPass(ctx context.Context) (int, error) {
	due, err := s.st.DueScheduled(ctx, finishBatch)
	if err != nil || len(due) == 0 {
		return 0, storeError(err)
	}
	since := s.now()
	listErr := s.dir.refresh(ctx, since) // one list read, after every due batch was found due
	for _, b := range due {
		if ctx.Err() != nil {
			break // the shutdown: no close begins; the rest waits for the next replica's pass
		}
		if err := s.finishOne(ctx, b, since, listErr); err != nil && !errors.Is(err, ErrStateChanged) {
			zerolog.Ctx(ctx).Warn().Err(err).Str("batchId", b.ID).Msg("finishing an asynchronous close")
		}
	}
	return len(due), nil
}

// finishOne moves one due batch on, given the list read that preceded it (started at
// since) and how it ended.
func (s *Service) finishOne(ctx context.Context, b Batch, since time.Time, listErr error) error {
	start := time.Now()
	dueVersion := b.Close.Version
	b, err := s.st.GetBatch(ctx, b.ID) // the state as of now, and the status that list read stored
	if err != nil {
		return storeError(err)
	}
	c := b.Close
	switch {
	case c.State == StateClosing && !c.Now.Before(c.LeaseUntil):
		return s.expire(ctx, b) // a replica died mid-close
	case c.State == StateUnknown && !c.Now.Before(c.SettleUntil):
		if listErr != nil || c.Version != dueVersion {
			return listErr // a new lost close since: its settle delay may have passed after the list read began
		}
		return s.settleFrom(ctx, b, since) // settled without waiting for the next caller
	case c.State != StateScheduled || c.Now.Before(c.CheckAt):
		return nil // moved on, or no longer due
	case listErr == nil && b.Status == StatusClosed:
		return s.obtainFile(ctx, b, start)
	case listErr == nil && b.Status == StatusOpen && !c.Now.Before(c.SettleUntil):
		// Past the horizon and still OPEN: Concur's job did not run. The batch is open.
		next := CloseState{State: StateOpen, FileClose: c.FileClose}
		_, _, err := s.st.Apply(ctx, Change{BatchID: b.ID, From: c.Version, To: &next})
		zerolog.Ctx(ctx).Warn().Str("batchId", b.ID).
			Msg("an asynchronous close did not take effect in Concur within the horizon: the batch is open again")
		return storeError(err)
	}
	next := c
	next.CheckAt = c.Now.Add(s.pollWait(c))
	_, _, err = s.st.Apply(ctx, Change{BatchID: b.ID, From: c.Version, To: &next})
	return storeError(err)
}

// pollWait is how long the finisher waits before it reads the list again for a batch
// scheduled at c.SettleUntil-asyncHorizon: half the time since, from pollMin to pollMax.
func (s *Service) pollWait(c CloseState) time.Duration {
	since := c.Now.Sub(c.SettleUntil.Add(-s.asyncHorizon))
	return min(max(since/2, s.pollMin), s.pollMax)
}

// obtainFile makes the v1.1 close of a batch whose asynchronous close has run, for its
// File-Url.
func (s *Service) obtainFile(ctx context.Context, b Batch, start time.Time) error {
	c := b.Close
	att := Close{BatchID: b.ID, Caller: System, Regenerate: true, StartedAt: c.Now,
		LeaseUntil: c.Now.Add(s.lease), Outcome: OutcomeInProgress, Claim: rand.Text()}
	to := CloseState{State: StateClosing, Prev: StateScheduled, SettleUntil: c.SettleUntil, CheckAt: c.CheckAt,
		FileClose: c.FileClose}
	id, claim := b.ID, att.Claim
	b, att, err := s.st.Apply(ctx, Change{BatchID: b.ID, From: c.Version, To: &to, Begin: &att})
	if err != nil {
		if !errors.Is(err, ErrStateChanged) {
			s.release(ctx, id, claim) // nothing was sent: back to scheduled, not a lost file
		}
		return storeError(err)
	}
	defer s.rec.begin(ctx, att)() // Drain waits for this close from here on
	callCtx, cancel := context.WithDeadline(context.WithoutCancel(ctx), start.Add(s.lease-leaseMargin(s.lease)))
	res, err := s.up.CloseBatch(callCtx, b.URL)
	cancel()
	if err == nil && !succeeded(res) {
		err = &Error{Code: CodeUpstreamBadResponse, Delivery: MaybeDelivered, CorrelationID: res.CorrelationID,
			Detail: "Concur answered the close that obtains the File-Url without calling it a success"}
	}
	if err == nil {
		res.Regenerated = true
	}
	_, err = s.end(ctx, att, res, err)
	if err == nil {
		return nil
	}
	return err
}

// RunFinisher runs the finisher until ctx ends, a pass every interval.
func (s *Service) RunFinisher(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := s.finishPass(ctx); err != nil && ctx.Err() == nil {
			zerolog.Ctx(ctx).Warn().Err(err).Msg("the finisher of asynchronous closes could not run")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
