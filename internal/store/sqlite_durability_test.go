package store

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/metrics"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// SQLite's durability, as the store opens it, with the store's own writes (UpsertBatches,
// Apply) and a look at the files and pragmas underneath.

func openSync(t testing.TB, dir string, noSync bool) *sqlStore {
	t.Helper()
	st, err := Open(context.Background(), Config{DataDir: dir, Key: make([]byte, 32), unsafeNoSync: noSync})
	if err != nil {
		t.Fatal(err)
	}
	return st.(*sqlStore)
}

func ckptBatches(n, from int) []batch.Batch {
	out := make([]batch.Batch, n)
	for i := range out {
		id := fmt.Sprintf("B%07d", from+i)
		out[i] = batch.Batch{ID: id, URL: "https://concur.example/api/expense/paymentbatch/v1.1/batch/" + id,
			Name: "Expense Pay " + id, Total: "1289.40", Currency: "USD", Count: "7", Type: "Employee",
			PaymentMethod: "Expense Pay by SAP Concur", Status: batch.StatusOpen}
	}
	return out
}

func walSize(t testing.TB, dir string) int64 {
	t.Helper()
	fi, err := os.Stat(filepath.Join(dir, SQLiteFile+"-wal"))
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func countBatches(t testing.TB, s *sqlStore) int {
	t.Helper()
	var n int
	if err := s.db.QueryRowContext(context.Background(), "SELECT count(*) FROM batches").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// pragma reads a pragma's integer value on conn.
func pragma(t *testing.T, conn interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, name string) int64 {
	t.Helper()
	var v int64
	if err := conn.QueryRowContext(t.Context(), "PRAGMA "+name).Scan(&v); err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	return v
}

// Every connection of the store fsyncs its commits (synchronous FULL, 2), in WAL mode,
// with SQLite's own checkpoints (wal_autocheckpoint 1000 pages).
func TestSQLiteConnectionsStayDurable(t *testing.T) {
	t.Parallel()
	s := openSync(t, t.TempDir(), false)
	defer s.Close()
	var conns []*sql.Conn
	for range 4 { // several connections of the pool at once, not one four times
		c, err := s.db.Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for i, c := range conns {
		if got := pragma(t, c, "synchronous"); got != 2 {
			t.Errorf("connection %d: synchronous = %d, want 2 (FULL)", i, got)
		}
		if got := pragma(t, c, "wal_autocheckpoint"); got != 1000 {
			t.Errorf("connection %d: wal_autocheckpoint = %d, want 1000", i, got)
		}
		var mode string
		if err := c.QueryRowContext(t.Context(), "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
			t.Errorf("connection %d: journal_mode = %q, %v", i, mode, err)
		}
		_ = c.Close()
	}
}

// What was committed survives a crash (no Close: the files copied as they are), both what
// a checkpoint copied into the database file and what only the WAL holds.
func TestSQLiteCommitsSurviveACrash(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openSync(t, dir, false)
	defer s.Close()
	if err := s.UpsertBatches(t.Context(), ckptBatches(300, 0), time.Now()); err != nil {
		t.Fatal(err)
	}
	var busy, log, done int64
	if err := s.db.QueryRowContext(t.Context(), "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &log, &done); err != nil || log == 0 || done != log {
		t.Fatalf("checkpoint: %d of %d frames, %v", done, log, err)
	}
	if err := s.UpsertBatches(t.Context(), ckptBatches(200, 300), time.Now()); err != nil {
		t.Fatal(err)
	}
	if walSize(t, dir) == 0 {
		t.Fatal("the last commit is not in the WAL")
	}
	crashed := t.TempDir()
	for _, name := range []string{SQLiteFile, SQLiteFile + "-wal"} { // not -shm: rebuilt from the WAL
		copyFile(t, filepath.Join(dir, name), filepath.Join(crashed, name))
	}
	again := openSync(t, crashed, false)
	defer again.Close()
	if n := countBatches(t, again); n != 500 {
		t.Errorf("after the crash: %d batches, want 500", n)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// Close leaves no WAL to replay; what was written reads back.
func TestSQLiteDataSurvivesReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openSync(t, dir, false)
	if err := s.UpsertBatches(t.Context(), ckptBatches(100, 0), time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := walSize(t, dir); n != 0 {
		t.Errorf("WAL after Close: %d bytes", n)
	}
	again := openSync(t, dir, false)
	defer again.Close()
	if n := countBatches(t, again); n != 100 {
		t.Errorf("after reopening: %d batches, want 100", n)
	}
}

// Under writes that never pause and readers that never stop, SQLite's own checkpoints keep
// the WAL bounded: a few times its 1000 pages.
func TestSQLiteWALStaysBounded(t *testing.T) {
	t.Parallel()
	const bound = 4 * 1000 * 4096
	dir := t.TempDir()
	s := openSync(t, dir, false)
	defer s.Close()
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for range 3 { // readers with overlapping snapshots, as requests have
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				_, _ = s.GetBatch(ctx, fmt.Sprintf("B%07d", i%2000))
			}
		})
	}
	var peak int64
	for i := range 200 {
		if err := s.UpsertBatches(t.Context(), ckptBatches(50, (i*50)%2000), time.Now()); err != nil {
			t.Fatal(err)
		}
		peak = max(peak, walSize(t, dir))
	}
	cancel()
	wg.Wait()
	t.Logf("WAL peak %d bytes (bound %d)", peak, bound)
	if peak > bound {
		t.Errorf("WAL peaked at %d bytes, bound %d", peak, bound)
	}
}

// BenchmarkCloseCommits is the two commits of a close (Apply: the attempt begun, then
// ended, as batch.Service makes them), as the store opens SQLite (sync=full: every commit
// fsynced) and, to show what the fsyncs cost, without them (sync=off: synchronous=OFF,
// never the store's). As the load suite's carried phase does, it first finds the store's
// saturation (8 closes in flight for a second), then sends closes at half that rate, each
// on its own goroutine, and reports the latency of a close's two commits at that rate:
// p50, p99, p99.9 and the worst (max-µs), the WAL's largest size, and how long runnable
// goroutines waited for a CPU (sched-p99-µs: the machine's share of the tail); ns/op is
// the interval between closes. `benchstat -col /sync` compares the two.
func BenchmarkCloseCommits(b *testing.B) {
	// One rate for both: half the saturation of the store as it opens, measured
	// now (so that both modes face the same load whatever else the machine runs).
	s := openSync(b, b.TempDir(), false)
	rate := closeLoad(b, s).saturate(time.Second) / 2
	_ = s.Close()
	for _, mode := range []string{"full", "off"} {
		b.Run("sync="+mode, func(b *testing.B) {
			dir := b.TempDir()
			s := openSync(b, dir, mode == "off")
			defer s.Close()
			l := closeLoad(b, s)
			var peak atomic.Int64
			pctx, pstop := context.WithCancel(b.Context())
			defer pstop()
			go func() {
				for pctx.Err() == nil {
					if w := walSize(b, dir); w > peak.Load() {
						peak.Store(w)
					}
					time.Sleep(time.Millisecond)
				}
			}()
			l.saturate(200 * time.Millisecond) // warm-up
			lat := make([]time.Duration, b.N)
			var wg sync.WaitGroup
			sched0 := schedLatencies()
			b.ResetTimer()
			t := time.NewTicker(time.Duration(float64(time.Second) / rate))
			for i := range b.N {
				<-t.C
				wg.Go(func() { lat[i] = l.one() })
			}
			wg.Wait()
			t.Stop()
			b.StopTimer()
			sched := schedLatencies()
			slices.Sort(lat)
			q := func(p float64) float64 {
				return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Microsecond)
			}
			// How long runnable goroutines waited for a CPU meanwhile: on a shared machine,
			// the part of the tail that is the machine's.
			b.ReportMetric(schedQuantile(sched0, sched, 0.99)*1e6, "sched-p99-µs")
			b.ReportMetric(q(0.5), "p50-µs")
			b.ReportMetric(q(0.99), "p99-µs")
			b.ReportMetric(q(0.999), "p99.9-µs")
			b.ReportMetric(q(1), "max-µs")
			b.ReportMetric(rate, "closes/s")
			b.ReportMetric(float64(peak.Load())/(1<<20), "wal-peak-MiB")
		})
	}
}

// load runs closes on a store's batches.
type load struct {
	b    *testing.B
	s    *sqlStore
	next atomic.Int64
}

const loadBatches = 4096

func closeLoad(b *testing.B, s *sqlStore) *load {
	if err := s.UpsertBatches(b.Context(), ckptBatches(loadBatches, 0), time.Now()); err != nil {
		b.Fatal(err)
	}
	return &load{b: b, s: s}
}

// one is a close's two commits on the next batch, and how long they took.
func (l *load) one() time.Duration {
	id := fmt.Sprintf("B%07d", l.next.Add(1)%loadBatches)
	began := time.Now()
	if err := benchClose(l.b.Context(), l.s, id); err != nil {
		l.b.Error(err)
	}
	return time.Since(began)
}

// saturate runs 8 closes in flight for d and returns the closes per second.
func (l *load) saturate(d time.Duration) float64 {
	var n atomic.Int64
	var wg sync.WaitGroup
	began := time.Now()
	for range 8 {
		wg.Go(func() {
			for time.Since(began) < d {
				l.one()
				n.Add(1)
			}
		})
	}
	wg.Wait()
	return float64(n.Load()) / time.Since(began).Seconds()
}

// benchClose is one close's two commits on batch id: begun (closing), ended (closed).
// A goroutine that finds the batch taken by another tries the next turn's state.
func benchClose(ctx context.Context, s *sqlStore, id string) error {
	for range 100 {
		b, err := s.GetBatch(ctx, id)
		if err != nil {
			return err
		}
		if b.Close.State == batch.StateClosing {
			continue // another goroutine's close of the same batch
		}
		c := b.Close
		att := batch.Close{BatchID: id, Caller: "bench", RequestID: "req-" + strconv.FormatInt(c.Version, 10),
			StartedAt: c.Now, LeaseUntil: c.Now.Add(time.Minute), Outcome: batch.OutcomeInProgress, Claim: "claim"}
		to := batch.CloseState{State: batch.StateClosing, Prev: c.State, FileClose: c.FileClose}
		b, att, err = s.Apply(ctx, batch.Change{BatchID: id, From: c.Version, To: &to, Begin: &att})
		if err != nil {
			continue // batch.ErrStateChanged: another goroutine began first
		}
		end := att
		end.Outcome, end.EndedAt, end.UpstreamStatus = batch.OutcomeClosed, b.Close.Now, 200
		end.BatchStatus, end.Status = "CLOSED", "Success"
		end.FileURL = "https://concur.example/api/expense/paymentbatch/v1.1/batch/" + id + "/file"
		done := batch.CloseState{State: batch.StateClosed, FileClose: att.ID}
		_, _, err = s.Apply(ctx, batch.Change{BatchID: id, From: b.Close.Version, To: &done, End: &end})
		return err
	}
	return fmt.Errorf("batch %s: no turn in 100", id)
}

// schedLatencies is the runtime's histogram of how long goroutines waited to run.
func schedLatencies() *metrics.Float64Histogram {
	s := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	metrics.Read(s)
	return s[0].Value.Float64Histogram()
}

// schedQuantile is the q-quantile, in seconds (a bucket's upper bound), of the waits
// between two readings of schedLatencies.
func schedQuantile(before, after *metrics.Float64Histogram, q float64) float64 {
	var total uint64
	d := make([]uint64, len(after.Counts))
	for i := range d {
		d[i] = after.Counts[i] - before.Counts[i]
		total += d[i]
	}
	var seen uint64
	for i, n := range d {
		if seen += n; total > 0 && float64(seen) >= q*float64(total) {
			return min(after.Buckets[i+1], 10) // the last bucket is open-ended
		}
	}
	return 0
}
