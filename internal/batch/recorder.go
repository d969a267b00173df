package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// The recorder writes how a close attempt ended. What Concur produced must not be lost:
// an end the store refuses is tried again for the lease margin, then in the background
// until it is stored (drained on shutdown); and from its first failure on, the end is in
// the log, sealed with the gateway's secret key (a File-Url never appears in clear).
// Readiness reports the ends not yet stored.
//
// The shutdown (RunRecorder ending, or Drain beginning) ends the waits between tries: a
// close whose end the store refuses then hands it to Drain at once, and Drain waits for
// the closes still recording, so no end is left behind it. When Drain's window ends first,
// every end it leaves, held or still recording, is in the log, sealed, as it returns. The
// shutdown is for good: Drain is the last call of a Service, and after it (or RunRecorder
// ending) a record whose try fails holds its end at once, without the margin's retries.
//
// An end's instant (its EndedAt, the answer's ClosedAt) is fixed at its first try: the
// database's clock when that try read the batch's state, or, when it could not, this
// replica's (not before the attempt's start); or, when Drain gives up while that try
// still runs, this replica's as Drain logs the end (see fix). Every later try stores that
// instant, so the answer, the record and the log carry one closedAt even when the record
// is stored late.

type pendingEnd struct {
	ctx     context.Context
	att     Close
	res     CloseResult
	err     error
	calling bool // begun, its call to Concur in flight: no end yet
}

type recorder struct {
	s       *Service
	margin  time.Duration // how long record keeps trying before it hands an end to the background
	seal    func([]byte) (string, error)
	mu      sync.Mutex
	pending map[int64]pendingEnd // the ends held for the background, by attempt
	// recording are the ends of the records running, by attempt (a close records its
	// end once): Drain waits for them, and logs them if it gives up first.
	recording map[int64]pendingEnd
	wake      chan struct{}
	stop      chan struct{} // closed at the shutdown
	stopOnce  sync.Once
}

func newRecorder(s *Service, margin time.Duration, seal func([]byte) (string, error)) *recorder {
	return &recorder{s: s, margin: margin, seal: seal, pending: map[int64]pendingEnd{},
		recording: map[int64]pendingEnd{}, wake: make(chan struct{}, 1), stop: make(chan struct{})}
}

// record stores the end of att (how it went: res, err) and the state it leaves, and
// returns the attempt as recorded. When the store keeps failing for the margin, or at
// the shutdown, the end is left to the background and record returns it as it will be
// stored (its EndedAt: the instant it carries), with the store's error.
func (r *recorder) record(ctx context.Context, att Close, res CloseResult, err error) (Close, error) {
	ctx = context.WithoutCancel(ctx) // the caller hanging up does not stop the recording; the shutdown ends its waits
	r.mu.Lock()
	if p, ok := r.recording[att.ID]; ok && att.EndedAt.IsZero() {
		att.EndedAt = p.att.EndedAt // as a Drain that gave up logged it
	}
	r.recording[att.ID] = pendingEnd{ctx: ctx, att: att, res: res, err: err}
	r.mu.Unlock()
	defer r.forget(att.ID) // after hold: Drain finds the end in one or the other throughout
	deadline := time.Now().Add(r.margin)
	wait := 20 * time.Millisecond
	for logged := false; ; {
		// Each try is bounded: a database that hangs rather than fails must not keep the
		// end from the background (and from the log).
		tctx, cancel := context.WithTimeout(ctx, max(time.Until(deadline), 50*time.Millisecond))
		rec, serr := r.try(tctx, &att, res, err)
		cancel()
		if serr == nil {
			if logged {
				r.logStored(ctx, att)
			}
			return rec, nil
		}
		if !logged { // from the first failure on, the end is in the log, sealed
			if att.EndedAt.IsZero() { // the first try could not read the database's clock
				att.EndedAt = r.fix(att.ID, r.now(att))
			}
			r.logSealed(ctx, att, res, serr)
			logged = true
		}
		if r.stopping() || time.Now().Add(wait).After(deadline) {
			r.hold(ctx, att, res, err)
			return att, serr
		}
		t := time.NewTimer(wait)
		select {
		case <-r.stop: // the shutdown: the end goes to Drain now
		case <-t.C:
		}
		t.Stop()
		wait = min(2*wait, time.Second)
	}
}

// now is this replica's clock, as the store keeps times (microseconds, UTC) and not
// before att's start: the instant of an end whose first try could not read the
// database's clock.
func (r *recorder) now(att Close) time.Time {
	t := r.s.now()
	if t.Before(att.StartedAt) {
		t = att.StartedAt
	}
	return t.UTC().Truncate(time.Microsecond)
}

// begin tells the recorder of a close whose lease is taken and whose call to Concur may
// now be in flight, until done: Drain waits for it as for a record, and, giving up first,
// logs it (sealed) as a close whose outcome the exit leaves unknown. Its record takes over.
func (r *recorder) begin(ctx context.Context, att Close) (done func()) {
	r.mu.Lock()
	r.recording[att.ID] = pendingEnd{ctx: context.WithoutCancel(ctx), att: att, calling: true}
	r.mu.Unlock()
	return func() { r.forget(att.ID) }
}

func (r *recorder) forget(id int64) {
	r.mu.Lock()
	delete(r.recording, id)
	r.mu.Unlock()
}

// fix fixes the instant of the end of the attempt id at t, unless it is fixed already,
// and returns it: Drain, giving up, fixes the instant of an end still recording as it
// logs it, and the record's tries then store that one.
func (r *recorder) fix(id int64, t time.Time) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.recording[id]
	if !ok { // not a record's (release's end of an attempt not begun)
		return t
	}
	if p.att.EndedAt.IsZero() {
		p.att.EndedAt = t
		r.recording[id] = p
	}
	return p.att.EndedAt
}

// try reads the batch's state and applies the attempt's end to it, once it holds. The
// end carries the instant att.EndedAt; when that is unset, try sets it to the database's
// clock as it read the state.
func (r *recorder) try(ctx context.Context, att *Close, res CloseResult, err error) (Close, error) {
	for range 16 { // each turn needs another request to have changed the state meanwhile
		b, serr := r.s.st.GetBatch(ctx, att.BatchID)
		if serr != nil {
			return Close{}, serr
		}
		if att.EndedAt.IsZero() {
			att.EndedAt = r.fix(att.ID, b.Close.Now)
		}
		to, outcome := r.s.transition(b.Close, *att, res, err)
		end := *att
		end.Outcome = outcome
		_, rec, serr := r.s.st.Apply(ctx, Change{BatchID: att.BatchID, From: b.Close.Version, To: to, End: &end})
		if errors.Is(serr, ErrStateChanged) {
			continue // another request moved the state meanwhile: decide on the new one
		}
		if serr != nil {
			return Close{}, serr
		}
		r.s.observe().CloseObserved(string(outcome))
		return rec, nil
	}
	return Close{}, ErrStateChanged // contended: record tries again after a back-off
}

// stopping reports whether the shutdown has begun.
func (r *recorder) stopping() bool {
	select {
	case <-r.stop:
		return true
	default:
		return false
	}
}

// shutdown ends the waits of the records running and to come, for good (see recorder).
func (r *recorder) shutdown() { r.stopOnce.Do(func() { close(r.stop) }) }

// hold keeps the end for the background.
func (r *recorder) hold(ctx context.Context, att Close, res CloseResult, err error) {
	r.mu.Lock()
	r.pending[att.ID] = pendingEnd{ctx: ctx, att: att, res: res, err: err}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// logSealed logs the end of att, sealed, after the store refused it (serr).
func (r *recorder) logSealed(ctx context.Context, att Close, res CloseResult, serr error) {
	ev := zerolog.Ctx(ctx).Error().Err(serr).Str("batchId", att.BatchID).Int64("attempt", att.ID).
		Str("concurStatus", res.Status).Bool("fileUrlKnown", att.FileURL != "")
	if att.UpstreamCorrelationID != "" {
		ev = ev.Str("concurCorrelationId", att.UpstreamCorrelationID)
	}
	if sealed, ok := r.sealed(att); ok {
		ev = ev.Str("sealedRecord", sealed)
	}
	ev.Msg("could not record the end of a close: retrying in the background; the record is in this line, sealed with the secret key")
}

// sealed is the attempt's end, sealed for the log: what an operator needs to recover it.
func (r *recorder) sealed(att Close) (string, bool) {
	if r.seal == nil {
		return "", false
	}
	plain, err := json.Marshal(att)
	if err != nil {
		return "", false
	}
	s, err := r.seal(plain)
	return s, err == nil
}

// Unrecorded is how many close ends wait to be stored.
func (r *recorder) Unrecorded() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending)
}

// flush tries every pending end once, each for 10 s at most and no longer than limit
// (Drain's window, or the background's life) lasts; once limit ended it starts no try.
// It returns how many are left.
func (r *recorder) flush(limit context.Context) int {
	r.mu.Lock()
	todo := make([]pendingEnd, 0, len(r.pending))
	for _, p := range r.pending {
		todo = append(todo, p)
	}
	r.mu.Unlock()
	for _, p := range todo {
		if limit.Err() != nil {
			break
		}
		ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second) // p.ctx: the request's logger and trace
		unbind := context.AfterFunc(limit, cancel)
		_, err := r.try(ctx, &p.att, p.res, p.err)
		unbind()
		cancel()
		if err == nil {
			r.mu.Lock()
			delete(r.pending, p.att.ID)
			r.mu.Unlock()
			r.logStored(p.ctx, p.att)
		}
	}
	return r.Unrecorded()
}

// run retries the pending ends with back-off until ctx ends, which is the shutdown.
func (r *recorder) run(ctx context.Context) {
	wait := 100 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			r.shutdown()
			return
		case <-r.wake:
		case <-time.After(wait):
		}
		if r.flush(ctx) == 0 {
			wait = 100 * time.Millisecond
		} else {
			wait = min(2*wait, 10*time.Second)
		}
	}
}

// drain is the shutdown: it tries the pending ends, and those the records still running
// hand over, until none is left or ctx ends; then it logs (sealed) what is left.
func (r *recorder) drain(ctx context.Context) error {
	r.shutdown()
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		r.flush(ctx)
		r.mu.Lock()
		left := len(r.pending) + len(r.recording) // one lock: an end moving from a record to pending counts
		r.mu.Unlock()
		if left == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return r.giveUp()
		case <-time.After(wait):
		}
	}
}

// giveUp logs, sealed, every end Drain leaves: those held, and those of the records still
// running, whose try may hang past Drain (the process then exits before it fails, and the
// end would be in neither the store nor the log). An end may so be in the log twice, at
// its record's first failure and here, or as held and recording while it moves: the lines
// carry the same end with the same instant (fix), so that is harmless.
func (r *recorder) giveUp() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.pending {
		r.logLeft(p)
	}
	for id, p := range r.recording {
		if p.calling {
			r.logCalling(p)
			continue
		}
		if p.att.EndedAt.IsZero() { // its first try has not read the database's clock
			p.att.EndedAt = r.now(p.att)
			r.recording[id] = p
		}
		r.logLeft(p)
	}
	return fmt.Errorf("batch: close ends left unrecorded at shutdown: %d held, %d still recording",
		len(r.pending), len(r.recording))
}

// logStored says that an end logged sealed, because the store refused it, is stored
// after all: an operator recovering ends from the log passes over its sealed lines.
func (r *recorder) logStored(ctx context.Context, att Close) {
	zerolog.Ctx(ctx).Info().Str("batchId", att.BatchID).Int64("attempt", att.ID).
		Msg("the end of a close the store refused earlier is stored now: its sealed lines are not needed")
}

// logCalling logs, sealed, a close the shutdown leaves calling Concur: its outcome is
// unknown; the batch list settles it once its lease has ended.
func (r *recorder) logCalling(p pendingEnd) {
	ev := zerolog.Ctx(p.ctx).Error().Str("batchId", p.att.BatchID).Int64("attempt", p.att.ID)
	if sealed, ok := r.sealed(p.att); ok {
		ev = ev.Str("sealedRecord", sealed)
	}
	ev.Msg("shutting down with a close still calling Concur: its outcome is unknown (the batch list settles it); " +
		"the attempt is in this line, sealed with the secret key")
}

// logLeft logs, sealed, an end the shutdown leaves unrecorded.
func (r *recorder) logLeft(p pendingEnd) {
	ev := zerolog.Ctx(p.ctx).Error().Str("batchId", p.att.BatchID).Int64("attempt", p.att.ID)
	if sealed, ok := r.sealed(p.att); ok {
		ev = ev.Str("sealedRecord", sealed)
	}
	ev.Msg("shutting down with the end of a close unrecorded: recover it from this line (sealed with the secret key)")
}
