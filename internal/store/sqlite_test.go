package store_test

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/store"
)

var sqliteBackend = backend{
	name:  "SQLite",
	fresh: func(t *testing.T) store.Config { return store.Config{DataDir: filepath.Join(t.TempDir(), "data")} },
	raw: func(t *testing.T, cfg store.Config) *sql.DB {
		db, err := sql.Open("sqlite", filepath.Join(cfg.DataDir, store.SQLiteFile)+"?_pragma=busy_timeout(10000)")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	},
}

func TestSQLite(t *testing.T) {
	t.Parallel()
	testConformance(t, sqliteBackend)
}

func TestSQLiteFiles(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqliteBackend)
	s := h.open(t)
	mustUpsert(t, s, at(0), testBatch("A", 1)) // so that the WAL exists
	for path, want := range map[string]os.FileMode{
		h.cfg.DataDir: 0o700,
		filepath.Join(h.cfg.DataDir, store.SQLiteFile):        0o600,
		filepath.Join(h.cfg.DataDir, store.SQLiteFile+"-wal"): 0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %o, want %o", filepath.Base(path), got, want)
		}
	}
	var mode string
	if err := h.raw(t).QueryRowContext(t.Context(), "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
}

func TestSQLiteTightensExistingFile(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqliteBackend)
	if err := os.MkdirAll(h.cfg.DataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(h.cfg.DataDir, store.SQLiteFile)
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h.open(t)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("existing database file: mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}

// BenchmarkUpsertBatches upserts 10k batches (half new, half known) per iteration.
func BenchmarkUpsertBatches(b *testing.B) {
	s, err := store.Open(b.Context(), store.Config{DataDir: b.TempDir(), Key: make([]byte, 32)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const n = 10_000
	batches := make([]batch.Batch, n)
	for i := range batches {
		batches[i] = testBatch(fmt.Sprintf("B%06d", i), i)
	}
	i := 0
	for b.Loop() {
		for j := range batches { // shift by half: half the IDs are new each time
			batches[j].ID = fmt.Sprintf("B%08d", j+i*n/2)
		}
		i++
		if err := s.UpsertBatches(b.Context(), batches, at(0)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/batch")
}
