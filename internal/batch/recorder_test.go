package batch_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/store"
	"github.com/finplat/payment-batch-gateway/internal/store/storetest"
)

// eachStore runs f on a fresh SQLite store and on a fresh PostgreSQL schema (skipped,
// loudly, without PostgreSQL).
func eachStore(t *testing.T, f func(t *testing.T, st store.Store)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { t.Parallel(); f(t, openStore(t)) })
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		st, err := store.Open(t.Context(), store.Config{URL: storetest.PostgresURL(t), Key: make([]byte, 32)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		f(t, st)
	})
}

// downMidClose is a store that becomes unreachable once a close has begun (its lease
// taken): from then until the test heals it, the writes of close ends fail, and with
// reads set the reads of batches too.
type downMidClose struct {
	batch.Store
	reads   bool
	down    atomic.Bool
	refused atomic.Int32  // the calls refused
	failed  chan struct{} // told of each refused call, without blocking
}

func newDownMidClose(st store.Store, reads bool) *downMidClose {
	return &downMidClose{Store: st, reads: reads, failed: make(chan struct{}, 1)}
}

func (s *downMidClose) Apply(ctx context.Context, c batch.Change) (batch.Batch, batch.Close, error) {
	if c.End != nil && s.down.Load() {
		s.refuse()
		return batch.Batch{}, batch.Close{}, errInjected
	}
	b, att, err := s.Store.Apply(ctx, c)
	if err == nil && c.Begin != nil && c.To != nil {
		s.down.Store(true) // the lease is taken: the database goes away
	}
	return b, att, err
}

func (s *downMidClose) GetBatch(ctx context.Context, id string) (batch.Batch, error) {
	if s.reads && s.down.Load() {
		s.refuse()
		return batch.Batch{}, errInjected
	}
	return s.Store.GetBatch(ctx, id)
}

// refuse counts a refused call and tells the test.
func (s *downMidClose) refuse() {
	s.refused.Add(1)
	select {
	case s.failed <- struct{}{}:
	default:
	}
}

type closeAnswer struct {
	res batch.CloseResult
	err error
}

// wantStoredClose asserts the batch's latest close is the end of a successful close
// answered res.
func wantStoredClose(t *testing.T, svc *batch.Service, id string, res batch.CloseResult) batch.Close {
	t.Helper()
	trail, err := svc.Closes(context.Background(), id, 1)
	if err != nil || len(trail) != 1 {
		t.Fatalf("closes = %+v, %v", trail, err)
	}
	if c := trail[0]; c.Outcome != batch.OutcomeClosed || c.FileURL == "" || c.FileURL != res.FileURL {
		t.Fatalf("stored close %+v, want the end of the close answered %+v", c, res)
	}
	return trail[0]
}

// A close whose end the store refuses keeps trying it for the lease margin, sleeping
// between tries; the service's shutdown (its Run ending, or Drain beginning) ends that
// wait at once: the end goes to Drain, which stores it once the store is back.
func TestRecordHandsItsEndOverAtShutdown(t *testing.T) {
	t.Parallel()
	const lease = 100 * time.Second // a margin of 10 s of retries
	for _, by := range []string{"run ends", "drain begins"} {
		t.Run(by, func(t *testing.T) {
			t.Parallel()
			eachStore(t, func(t *testing.T, base store.Store) {
				st := newDownMidClose(base, false)
				svc := batch.NewService(newFakeConcur(1, []string{"b-1"}), st, batch.Options{CloseLease: lease})
				ctx := context.Background()
				runCtx, stopRun := context.WithCancel(ctx)
				ran := make(chan struct{})
				if by == "run ends" {
					go func() { defer close(ran); svc.RunRecorder(runCtx) }()
				} else {
					close(ran)
				}
				defer func() { stopRun(); <-ran }()
				answered := make(chan closeAnswer, 1)
				go func() {
					res, err := svc.Close(ctx, batch.CloseRequest{ID: "b-1", Caller: "payroll"})
					answered <- closeAnswer{res, err}
				}()
				<-st.failed                       // the end was refused: the recorder waits to try again
				time.Sleep(30 * time.Millisecond) // in its back-off

				shutdown := time.Now()
				drained := make(chan error, 1)
				if by == "run ends" {
					stopRun()
				} else {
					go func() { // the store stays down: Drain gives up, and says so
						dctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
						defer cancel()
						drained <- svc.Drain(dctx)
					}()
				}
				var a closeAnswer
				select {
				case a = <-answered:
				case <-time.After(3 * time.Second):
					t.Error("the close is still waiting to record its end 3 s after the shutdown")
					a = <-answered
				}
				if took := time.Since(shutdown); took > 300*time.Millisecond {
					t.Errorf("the close answered %v after the shutdown, want at once (margin %v)", took, lease/10)
				}
				if a.err != nil || a.res.FileURL == "" {
					t.Fatalf("close = %+v, %v; want Concur's answer", a.res, a.err)
				}
				if by == "run ends" {
					<-ran
				} else if err := <-drained; err == nil {
					t.Error("Drain returned nil with the store down and an end in flight")
				}
				if n := svc.Unrecorded(); n != 1 {
					t.Fatalf("unrecorded = %d after the shutdown, want the end held for Drain", n)
				}

				st.down.Store(false) // the store is back: Drain stores the end
				dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				defer cancel()
				if err := svc.Drain(dctx); err != nil {
					t.Fatalf("drain: %v", err)
				}
				if n := svc.Unrecorded(); n != 0 {
					t.Errorf("unrecorded = %d after Drain", n)
				}
				wantStoredClose(t, svc, "b-1", a.res) // stored by the time Drain returned
			})
		})
	}
}

// A close's answer and its record carry one closedAt, also when the store refused the
// end at first and the background stored it later (the skewed clock of this replica must
// not leak into either).
func TestCloseAnswerAndLateRecordShareClosedAt(t *testing.T) {
	t.Parallel()
	for _, reads := range []bool{false, true} {
		name := "end writes fail"
		if reads {
			name = "reads fail too"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			eachStore(t, func(t *testing.T, base store.Store) {
				st := newDownMidClose(base, reads)
				svc := batch.NewService(newFakeConcur(1, []string{"b-1"}), st, batch.Options{
					CloseLease: time.Second, // a margin of 100 ms
					Now:        func() time.Time { return time.Now().Add(90 * time.Second) },
				})
				var logs logSink
				ctx := zerolog.New(&logs).WithContext(context.Background())
				res, err := svc.Close(ctx, batch.CloseRequest{ID: "b-1", Caller: "payroll"})
				if err != nil || res.ClosedAt.IsZero() {
					t.Fatalf("close = %+v, %v", res, err)
				}
				if n := svc.Unrecorded(); n != 1 || st.refused.Load() < 2 {
					t.Fatalf("unrecorded = %d after %d refusals, want the end left to the background",
						n, st.refused.Load())
				}
				time.Sleep(20 * time.Millisecond) // the database's clock moves on
				st.down.Store(false)
				dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				defer cancel()
				if err := svc.Drain(dctx); err != nil {
					t.Fatal(err)
				}
				rec := wantStoredClose(t, svc, "b-1", res)
				if !strings.Contains(logs.String(), "is stored now: its sealed lines are not needed") {
					t.Errorf("no line says the end logged sealed is stored after all; log:\n%s", logs.String())
				}
				wire := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
				if got := rec.Result().ClosedAt; !got.Equal(res.ClosedAt) || wire(got) != wire(res.ClosedAt) {
					t.Errorf("answer's closedAt %s, recorded %s: want one instant", wire(res.ClosedAt), wire(got))
				}
				if rec.EndedAt.Before(rec.StartedAt) {
					t.Errorf("recorded end %s before its start %s", wire(rec.EndedAt), wire(rec.StartedAt))
				}
				d, err := svc.Get(ctx, "b-1")
				if err != nil || d.LastClose == nil || wire(d.LastClose.EndedAt) != wire(res.ClosedAt) {
					t.Errorf("detail's last close %+v, %v: want closedAt %s", d.LastClose, err, wire(res.ClosedAt))
				}
			})
		})
	}
}

// hangingEnds is a store whose writes of close ends (with reads set, the reads of
// batches too) hang until their context ends once a close has begun (a database that
// hangs rather than fails), until the test heals it.
type hangingEnds struct {
	batch.Store
	reads bool
	down  atomic.Bool
}

func (s *hangingEnds) GetBatch(ctx context.Context, id string) (batch.Batch, error) {
	if s.reads && s.down.Load() {
		<-ctx.Done()
		return batch.Batch{}, ctx.Err()
	}
	return s.Store.GetBatch(ctx, id)
}

func (s *hangingEnds) Apply(ctx context.Context, c batch.Change) (batch.Batch, batch.Close, error) {
	if c.End != nil && s.down.Load() {
		<-ctx.Done()
		return batch.Batch{}, batch.Close{}, ctx.Err()
	}
	b, att, err := s.Store.Apply(ctx, c)
	if err == nil && c.Begin != nil && c.To != nil {
		s.down.Store(true) // the lease is taken: the database hangs
	}
	return b, att, err
}

// sealedEnds are the ends of closes of batchID in the log's sealed records (sealed by
// plainSeal), in the order logged.
func sealedEnds(t *testing.T, log, batchID string) []batch.Close {
	t.Helper()
	var ends []batch.Close
	for line := range strings.Lines(log) {
		var l struct{ SealedRecord string }
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		plain, ok := strings.CutPrefix(l.SealedRecord, "sealed:")
		if !ok {
			continue
		}
		var c batch.Close
		if err := json.Unmarshal([]byte(plain), &c); err != nil {
			t.Fatalf("sealed record %q: %v", plain, err)
		}
		if c.BatchID == batchID {
			ends = append(ends, c)
		}
	}
	return ends
}

// plainSeal "seals" a record for the tests: it stays readable.
func plainSeal(p []byte) (string, error) { return "sealed:" + string(p), nil }

// When Drain's window ends while a close's first try at its end still hangs (its margin
// outlasts the window), the end is in the log, sealed, by the time Drain returns: the
// process may exit then, and the end is in neither the store nor, else, the log. The
// record, failing later, logs it again with the same instant, which its answer carries
// (also when its first try could not read the database's clock: Drain fixed the instant).
func TestDrainLogsTheEndsStillRecordingWhenItGivesUp(t *testing.T) {
	t.Parallel()
	for _, reads := range []bool{false, true} {
		name := "end writes hang"
		if reads {
			name = "reads hang too"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			drainGivesUpWhileRecording(t, reads)
		})
	}
}

func drainGivesUpWhileRecording(t *testing.T, reads bool) {
	eachStore(t, func(t *testing.T, base store.Store) {
		st := &hangingEnds{Store: base, reads: reads}
		svc := batch.NewService(newFakeConcur(1, []string{"b-1"}), st, batch.Options{
			CloseLease: 5 * time.Second, // a margin of 500 ms: the first try hangs that long
			Seal:       plainSeal,
		})
		var logs logSink
		ctx := zerolog.New(&logs).WithContext(context.Background())
		var a closeAnswer
		answered := make(chan struct{})
		go func() {
			defer close(answered)
			res, err := svc.Close(ctx, batch.CloseRequest{ID: "b-1", Caller: "payroll"})
			a = closeAnswer{res, err}
		}()
		defer func() { <-answered }() // before the store closes
		for !st.down.Load() {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond) // the end's first try hangs

		dctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if err := svc.Drain(dctx); err == nil {
			t.Error("Drain returned nil with an end still recording")
		}
		ends := sealedEnds(t, logs.String(), "b-1")
		if len(ends) == 0 {
			t.Fatalf("Drain gave up and the end is not in the log (lost if the process exits now); log:\n%s", logs.String())
		}
		if c := ends[0]; c.FileURL == "" || c.EndedAt.IsZero() {
			t.Errorf("logged end %+v, want Concur's answer and the end's instant", c)
		}

		<-answered // the record's try times out at its margin: it logs the end again
		if a.err != nil || a.res.FileURL == "" {
			t.Fatalf("close = %+v, %v; want Concur's answer", a.res, a.err)
		}
		for _, c := range sealedEnds(t, logs.String(), "b-1") {
			if !c.EndedAt.Equal(a.res.ClosedAt) {
				t.Errorf("logged end at %v, answered closedAt %v: want one instant", c.EndedAt, a.res.ClosedAt)
			}
		}
	})
}

// Drain keeps to its window with a database that hangs: it does not give each held end
// a time of its own, and what it could not store is logged, sealed, when it gives up.
func TestDrainKeepsToItsWindowWhenTheStoreHangs(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, base store.Store) {
		st := &hangingEnds{Store: base}
		ids := []string{"b-1", "b-2", "b-3"}
		svc := batch.NewService(newFakeConcur(1, ids), st, batch.Options{
			// A margin of 500 ms; a lease well beyond the slack below, so that a Drain
			// bound by a lease rather than its window fails.
			CloseLease: 5 * time.Second,
			Seal:       plainSeal,
		})
		var logs logSink
		ctx := zerolog.New(&logs).WithContext(context.Background())
		for _, id := range ids {
			st.down.Store(false)
			if _, err := svc.Close(ctx, batch.CloseRequest{ID: id, Caller: "payroll"}); err != nil {
				t.Fatal(err)
			}
		}
		if n := svc.Unrecorded(); n != len(ids) {
			t.Fatalf("unrecorded = %d, want the %d ends held", n, len(ids))
		}
		const window = 300 * time.Millisecond
		dctx, cancel := context.WithTimeout(context.Background(), window)
		defer cancel()
		start := time.Now()
		err := svc.Drain(dctx)
		// Without the bound a hung store held Drain 10 s per end (30 s here): 2 s of slack is
		// for a loaded machine, not for the drain.
		if took := time.Since(start); took > window+2*time.Second {
			t.Errorf("Drain with a window of %v took %v", window, took)
		}
		if err == nil {
			t.Error("Drain returned nil with the store hanging")
		}
		for _, id := range ids { // logged at the first failure, and once more as Drain gave up
			if n := len(sealedEnds(t, logs.String(), id)); n < 2 {
				t.Errorf("%s: logged sealed %d times, want at the refusal and as Drain gave up", id, n)
			}
		}
	})
}

// RunRecorder returns soon after its context ends, even while it is storing held ends
// into a database that hangs: the shutdown waits for it before Drain.
func TestRunRecorderEndsWithItsContextWhenTheStoreHangs(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, base store.Store) {
		st := &hangingEnds{Store: base}
		ids := []string{"b-1", "b-2", "b-3"}
		svc := batch.NewService(newFakeConcur(1, ids), st, batch.Options{CloseLease: time.Second})
		for _, id := range ids {
			st.down.Store(false)
			if _, err := svc.Close(context.Background(), batch.CloseRequest{ID: id, Caller: "payroll"}); err != nil {
				t.Fatal(err)
			}
		}
		runCtx, stopRun := context.WithCancel(context.Background())
		ran := make(chan struct{})
		go func() { defer close(ran); svc.RunRecorder(runCtx) }()
		time.Sleep(300 * time.Millisecond) // its first flush hangs on the first end
		stopRun()
		select {
		case <-ran:
		case <-time.After(time.Second):
			t.Error("RunRecorder still running 1 s after its context ended")
			<-ran
		}
		if n := svc.Unrecorded(); n != len(ids) {
			t.Errorf("unrecorded = %d, want the %d ends still held for Drain", n, len(ids))
		}
	})
}

// slowClose is a Concur whose v1.1 close answers only once released.
type slowClose struct {
	*fakeConcur
	calling chan struct{} // closed when the close reaches Concur
	release chan struct{}
}

func (u slowClose) CloseBatch(ctx context.Context, url string) (batch.CloseResult, error) {
	close(u.calling)
	<-u.release
	return u.fakeConcur.CloseBatch(ctx, url)
}

// Drain waits for a close whose call to Concur is still in flight (its lease taken, no
// end yet: a request that began late in the grace period), and stores its end; giving up
// first, it logs that close, sealed, so that an exit leaves it in the log.
func TestDrainWaitsForACloseStillCallingConcur(t *testing.T) {
	t.Parallel()
	for _, giveUp := range []bool{false, true} {
		t.Run(map[bool]string{false: "the call ends within the window", true: "the window ends first"}[giveUp], func(t *testing.T) {
			t.Parallel()
			up := slowClose{newFakeConcur(1, []string{"b-1"}), make(chan struct{}), make(chan struct{})}
			svc := batch.NewService(up, openStore(t), batch.Options{CloseLease: 5 * time.Second, Seal: plainSeal})
			var logs logSink
			ctx := zerolog.New(&logs).WithContext(context.Background())
			answered := make(chan error, 1)
			go func() {
				_, err := svc.Close(ctx, batch.CloseRequest{ID: "b-1", Caller: "payroll"})
				answered <- err
			}()
			<-up.calling
			window := 2 * time.Second
			if giveUp {
				window = 100 * time.Millisecond
			} else {
				time.AfterFunc(200*time.Millisecond, func() { close(up.release) })
			}
			dctx, cancel := context.WithTimeout(context.Background(), window)
			defer cancel()
			began := time.Now()
			err := svc.Drain(dctx)
			took := time.Since(began)
			if giveUp {
				if err == nil {
					t.Error("Drain returned nil with a close still calling Concur")
				}
				if ends := sealedEnds(t, logs.String(), "b-1"); len(ends) == 0 {
					t.Errorf("Drain gave up and the close still calling Concur is not in the log; log:\n%s", logs.String())
				}
				close(up.release)
				<-answered
				return
			}
			if err != nil {
				t.Fatalf("Drain: %v", err)
			}
			if took < 150*time.Millisecond {
				t.Errorf("Drain returned after %v, before the close in flight ended (200 ms)", took)
			}
			if err := <-answered; err != nil {
				t.Fatalf("close: %v", err)
			}
			if closes, err := svc.Closes(context.Background(), "b-1", 10); err != nil || len(closes) != 1 || closes[0].Outcome != batch.OutcomeClosed {
				t.Errorf("closes after Drain: %+v, %v; want the one close, stored as closed", closes, err)
			}
		})
	}
}
