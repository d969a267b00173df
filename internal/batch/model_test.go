package batch_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/store"
	"github.com/finplat/payment-batch-gateway/internal/store/storetest"
)

// The model test: seeded random sequences of closes, regenerations, asynchronous closes,
// downloads, idempotent retries and finisher passes from three replicas (Services sharing
// one store, each with a skewed clock of its own), against a fake Concur that closes and
// loses the answer, times out, answers 503 or FAILURE, or is never reached; with store
// faults (a connection cut, a commit whose answer is lost) and replicas that stop
// mid-close as on SIGKILL. After every sequence the checker asserts the invariants over
// the whole history (checkModel). A failure prints its seed; replay it with
//
//	go test ./internal/batch -run TestModel -model.seed=N -model.runs=1 -v
//
// make soak runs it for longer (-model.runs).
var (
	modelSeed = flag.Uint64("model.seed", 0, "first seed of the model test (0: from the clock)")
	modelRuns = flag.Int("model.runs", 0, "sequences per store (0: $MODEL_RUNS, or 12)")
)

func modelBudget() int {
	if *modelRuns > 0 {
		return *modelRuns
	}
	if n, err := strconv.Atoi(os.Getenv("MODEL_RUNS")); err == nil && n > 0 {
		return n
	}
	return 12
}

func TestModelSQLite(t *testing.T) {
	t.Parallel()
	runModel(t, func(t *testing.T) store.Config { return store.Config{DataDir: t.TempDir()} })
}

func TestModelPostgres(t *testing.T) {
	t.Parallel()
	storetest.PostgresURL(t) // skips loudly (or fails in CI) when PostgreSQL is absent
	runModel(t, func(t *testing.T) store.Config { return store.Config{URL: storetest.PostgresURL(t)} })
}

func runModel(t *testing.T, fresh func(t *testing.T) store.Config) {
	seed := *modelSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("model test: %d sequences from seed %d", modelBudget(), seed)
	stats := map[string]int{}
	for i := range modelBudget() {
		s := seed + uint64(i)
		ok := t.Run(fmt.Sprint("seed=", s), func(t *testing.T) {
			m := newModel(t, s, fresh(t))
			m.run()
			m.check()
			for k, v := range m.stats() {
				stats[k] += v
			}
		})
		if !ok {
			t.Fatalf("model test failed at seed %d: replay with -model.seed=%d -model.runs=1", s, s)
		}
	}
	t.Logf("model test totals: %v", stats)
}

const (
	modelLease  = 300 * time.Millisecond
	modelSettle = 60 * time.Millisecond
)

type model struct {
	t       *testing.T
	rng     *rand.Rand
	concur  *fakeConcur
	ids     []string
	st      store.Store
	reps    []*replica
	opN     atomic.Int64
	mu      sync.Mutex
	answers []answer
	logs    *logSink
	nFaults map[string]int
	faults  *rand.Rand // the fake Concur's faults, drawn by the request goroutines (under mu)
}

// replica is one gateway process: a Service over a store that may fail, or be dead.
type replica struct {
	svc   *batch.Service
	st    *faultyStore
	dead  atomic.Bool
	crash atomic.Bool // die at the next close Concur acts on
}

// answer is what a caller got.
type answer struct {
	tag reqTag
	res batch.CloseResult
	err error
}

func newModel(t *testing.T, seed uint64, cfg store.Config) *model {
	cfg.Key = make([]byte, 32)
	st, err := store.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rng := rand.New(rand.NewPCG(seed, 1))
	ids := []string{"b-1", "b-2", "b-3"}
	m := &model{t: t, rng: rng, concur: newFakeConcur(seed, ids), ids: ids, st: st, logs: &logSink{},
		nFaults: map[string]int{}, faults: rand.New(rand.NewPCG(seed, 2))}
	m.concur.fault = m.pickFault
	for i := range 3 {
		fs := &faultyStore{Store: st, rng: rand.New(rand.NewPCG(seed, uint64(10+i)))}
		skew := time.Duration(rng.IntN(180)-90) * time.Second // replica clocks up to 90 s apart
		r := &replica{st: fs}
		r.svc = batch.NewService(&crashingUp{Upstream: m.concur, r: r}, fs, batch.Options{
			CloseLease: modelLease, SettleDelay: modelSettle, AsyncHorizon: 20 * time.Second,
			PollMin: time.Millisecond, PollMax: 5 * time.Millisecond,
			Now:  func() time.Time { return time.Now().Add(skew) },
			Seal: func(b []byte) (string, error) { return "sealed:" + string(b), nil },
		})
		m.reps = append(m.reps, r)
	}
	return m
}

func (m *model) pickFault(kind string) fault {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := fault(m.faults.IntN(12))
	if f > faultFailure200 {
		f = faultNone
	}
	m.nFaults[fmt.Sprint("concur fault ", f)]++
	return f
}

// run plays a random sequence of steps; each step runs up to three operations at once.
func (m *model) run() {
	ctx := zerolog.New(m.logs).WithContext(context.Background())
	var keys []reqTag // requests with a key, to retry
	for step := 0; step < 25; step++ {
		var wg sync.WaitGroup
		for range 1 + m.rng.IntN(3) {
			r := m.reps[m.rng.IntN(len(m.reps))]
			if r.dead.Load() {
				continue
			}
			id := m.ids[m.rng.IntN(len(m.ids))]
			tag := reqTag{op: int(m.opN.Add(1))}
			switch p := m.rng.IntN(100); {
			case p < 30:
				tag.kind = "close"
			case p < 45:
				tag.kind = "regenerate"
			case p < 60:
				tag.kind = "async"
			case p < 72 && len(keys) > 0:
				prev := keys[m.rng.IntN(len(keys))] // an idempotent retry
				tag.kind, tag.key = prev.kind, prev.key
				id = prev.keyBatch()
			case p < 82:
				tag.kind = "file"
			case p < 92:
				wg.Go(func() { _ = r.svc.FinishPass(ctx) })
				continue
			case p < 95 && !m.anyCrashing():
				r.crash.Store(true)
				tag.kind = "close"
			default:
				r.st.setFaulty(m.rng.IntN(2) == 0)
				continue
			}
			if tag.key == "" && tag.kind != "file" && m.rng.IntN(2) == 0 {
				tag.key = fmt.Sprintf("%s|k%d", id, tag.op)
				keys = append(keys, tag)
			}
			wg.Go(func() { m.request(ctx, r, id, tag) })
		}
		wg.Wait()
		if m.rng.IntN(4) == 0 {
			time.Sleep(time.Duration(m.rng.IntN(int(modelLease + modelSettle))))
		}
	}
	m.quiesce(ctx)
}

func (t reqTag) keyBatch() string {
	for i := range len(t.key) {
		if t.key[i] == '|' {
			return t.key[:i]
		}
	}
	return t.key
}

func (m *model) anyCrashing() bool {
	for _, r := range m.reps {
		if r.crash.Load() || r.dead.Load() {
			return true
		}
	}
	return false
}

func (m *model) request(ctx context.Context, r *replica, id string, tag reqTag) {
	ctx = context.WithValue(ctx, tagKey{}, tag)
	req := batch.CloseRequest{ID: id, Caller: "payroll", RequestID: fmt.Sprint("r", tag.op), IdempotencyKey: tag.key,
		Regenerate: tag.kind == "regenerate", Async: tag.kind == "async"}
	var a answer
	if tag.kind == "file" {
		f, err := r.svc.File(ctx, batch.FileRequest{ID: id, Caller: "payroll"})
		if err == nil {
			f.Body.Close()
		}
		a = answer{tag: tag, err: err}
	} else {
		res, err := r.svc.Close(ctx, req)
		a = answer{tag: tag, res: res, err: err}
	}
	if r.dead.Load() {
		return // the caller of a dead replica got nothing
	}
	m.mu.Lock()
	m.answers = append(m.answers, a)
	m.mu.Unlock()
}

// quiesce ends the faults and lets the live replicas finish: ends stored, leases run out,
// unknown states settled, scheduled closes finished.
func (m *model) quiesce(ctx context.Context) {
	m.mu.Lock()
	m.concur.fault = nil
	m.mu.Unlock()
	for _, r := range m.reps {
		r.st.setFaulty(false)
	}
	deadline := time.Now().Add(30 * time.Second)
	var stuck []batch.CloseState
	for time.Now().Before(deadline) {
		busy := false
		for _, r := range m.reps {
			if r.dead.Load() {
				continue
			}
			if r.svc.Drain(ctx) != nil {
				busy = true
			}
			_ = r.svc.FinishPass(ctx)
		}
		var live *replica
		for _, r := range m.reps {
			if !r.dead.Load() {
				live = r
			}
		}
		stuck = stuck[:0]
		for _, id := range m.ids {
			b, err := m.st.GetBatch(ctx, id)
			if err != nil {
				continue
			}
			switch c := b.Close; {
			case c.State == batch.StateScheduled, c.State == batch.StateClosing && c.Now.Before(c.LeaseUntil):
				busy = true
				stuck = append(stuck, b.Close)
			case c.State == batch.StateClosing, c.State == batch.StateUnknown && !c.Now.Before(c.SettleUntil):
				// A crashed close or a lost answer waits for the next caller: be that caller.
				busy = true
				stuck = append(stuck, b.Close)
				if live != nil {
					m.request(ctx, live, id, reqTag{op: int(m.opN.Add(1)), kind: "close"})
				}
			case c.State == batch.StateUnknown:
				busy = true
				stuck = append(stuck, b.Close)
			}
		}
		if !busy {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	m.t.Fatalf("the model did not quiesce within 30 s: %+v", stuck)
}

// check asserts the invariants over the whole history.
func (m *model) check() {
	t := m.t
	events := m.concur.history()
	ctx := context.Background()
	recordedURLs := map[string]bool{}
	for _, id := range m.ids {
		closes, err := m.st.ListCloses(ctx, id, store.MaxListCloses)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range closes {
			if c.FileURL != "" {
				recordedURLs[c.FileURL] = true
			}
			if c.Outcome == batch.OutcomeInProgress {
				t.Errorf("attempt %d of %s still in progress after quiescing", c.ID, id)
			}
		}
	}
	sealed := m.logs.String()

	// I1: Concur received exactly the closes the design intends.
	regensByReq := map[string]int{}  // explicit regenerations per request (key, or op)
	systemRegens := map[string]int{} // the gateway's own v1.1 after a v1.2, per batch
	asyncCloses := map[string]int{}
	for _, e := range events {
		if e.async && !e.job {
			asyncCloses[e.batchID]++
		}
	}
	for _, e := range events {
		if !e.regen {
			continue
		}
		switch {
		case e.job:
			t.Errorf("I1: a v1.2 job of batch %s ran on a closed batch: a regeneration nobody asked for", e.batchID)
		case e.tag.kind == "regenerate":
			k := e.tag.key
			if k == "" {
				k = fmt.Sprint("op", e.tag.op)
			}
			if regensByReq[k]++; regensByReq[k] > 1 {
				t.Errorf("I1: request %s regenerated batch %s more than once", k, e.batchID)
			}
		case e.tag == reqTag{}:
			if systemRegens[e.batchID]++; systemRegens[e.batchID] > asyncCloses[e.batchID] {
				t.Errorf("I1: the gateway regenerated batch %s on its own %d times after %d asynchronous closes",
					e.batchID, systemRegens[e.batchID], asyncCloses[e.batchID])
			}
		default:
			t.Errorf("I1: a %s request (op %d) made Concur regenerate batch %s", e.tag.kind, e.tag.op, e.batchID)
		}
	}
	// I2: every File-Url Concur returned to the gateway is recorded (or sealed in the log).
	for _, e := range events {
		if e.fileURL == "" || e.lost {
			continue
		}
		if !recordedURLs[e.fileURL] && !containsString(sealed, e.fileURL) {
			t.Errorf("I2: File-Url %s of batch %s (op %d) is neither recorded nor sealed in the log", e.fileURL, e.batchID, e.tag.op)
		}
	}
	// I4: no caller got 200 for a close Concur did not make.
	issued := map[string]string{}
	for _, e := range events {
		if e.fileURL != "" {
			issued[e.fileURL] = e.batchID
		}
	}
	for _, a := range m.answers {
		if a.err != nil || a.tag.kind == "file" || a.res.Accepted {
			continue
		}
		if a.res.FileURL == "" || issued[a.res.FileURL] == "" {
			t.Errorf("I4: op %d (%s) answered 200 with result %+v, which is not a close Concur made", a.tag.op, a.tag.kind, a.res)
		}
	}
	if t.Failed() {
		for _, e := range events {
			t.Logf("concur: %+v", e)
		}
		for _, a := range m.answers {
			t.Logf("answer: op %d %s key %q: %+v %v", a.tag.op, a.tag.kind, a.tag.key, a.res, a.err)
		}
	}
}

func (m *model) stats() map[string]int {
	out := map[string]int{"sequences": 1, "answers": len(m.answers)}
	for _, e := range m.concur.history() {
		if e.acted {
			out["closes concur acted on"]++
		}
	}
	for _, r := range m.reps {
		out["store faults"] += int(r.st.injected.Load())
		if r.dead.Load() {
			out["replicas killed"]++
		}
	}
	for k, v := range m.nFaults {
		out[k] += v
	}
	return out
}

func containsString(s, sub string) bool {
	return len(sub) > 0 && len(s) >= len(sub) && indexOf(s, sub) >= 0
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// crashingUp kills its replica right after Concur acted on a close, when told to: the
// process is gone before it records anything (its store fails from then on).
type crashingUp struct {
	batch.Upstream
	r *replica
}

func (u *crashingUp) CloseBatch(ctx context.Context, url string) (batch.CloseResult, error) {
	res, err := u.Upstream.CloseBatch(ctx, url)
	return res, u.after(err)
}

func (u *crashingUp) CloseBatchAsync(ctx context.Context, url string) (batch.CloseResult, error) {
	res, err := u.Upstream.CloseBatchAsync(ctx, url)
	return res, u.after(err)
}

func (u *crashingUp) after(err error) error {
	if u.r.crash.Load() {
		u.r.dead.Store(true)
		u.r.st.dead.Store(true)
	}
	return err
}

// faultyStore is the shared store as one replica sees it: while faulty, a write may be
// cut before it reaches the database or lose its answer after it committed, and a read
// may be cut; once dead (the process was killed), nothing reaches the database.
type faultyStore struct {
	store.Store
	mu       sync.Mutex
	rng      *rand.Rand
	faulty   bool
	dead     atomic.Bool
	injected atomic.Int64
}

var errInjected = errors.New("injected: connection to the database lost")

func (s *faultyStore) setFaulty(on bool) {
	s.mu.Lock()
	s.faulty = on
	s.mu.Unlock()
}

// roll says what happens to one call: 0 fine, 1 cut before, 2 answer lost after commit.
func (s *faultyStore) roll() int {
	if s.dead.Load() {
		return 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.faulty {
		return 0
	}
	switch s.rng.IntN(4) {
	case 0:
		s.injected.Add(1)
		return 1
	case 1:
		s.injected.Add(1)
		return 2
	}
	return 0
}

func (s *faultyStore) Apply(ctx context.Context, c batch.Change) (batch.Batch, batch.Close, error) {
	switch s.roll() {
	case 1:
		return batch.Batch{}, batch.Close{}, errInjected
	case 2:
		if _, _, err := s.Store.Apply(ctx, c); err != nil {
			return batch.Batch{}, batch.Close{}, err
		}
		return batch.Batch{}, batch.Close{}, errInjected
	}
	return s.Store.Apply(ctx, c)
}

func (s *faultyStore) GetBatch(ctx context.Context, id string) (batch.Batch, error) {
	if s.roll() == 1 {
		return batch.Batch{}, errInjected
	}
	return s.Store.GetBatch(ctx, id)
}

func (s *faultyStore) UpsertBatches(ctx context.Context, bs []batch.Batch, seen time.Time) error {
	if s.roll() == 1 {
		return errInjected
	}
	return s.Store.UpsertBatches(ctx, bs, seen)
}

// logSink collects the replicas' log lines (where sealed records go).
type logSink struct {
	mu  sync.Mutex
	buf []byte
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	return len(p), nil
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf)
}
