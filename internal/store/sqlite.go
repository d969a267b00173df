package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/finplat/payment-batch-gateway/internal/secretbox"
)

// SQLiteFile is the name of the database file in Config.DataDir.
const SQLiteFile = "gateway.db"

// openSQLite opens DataDir/gateway.db: WAL, foreign keys on, synchronous FULL, a long
// busy timeout, and every write transaction begun IMMEDIATE so that it holds the write
// lock from its first statement (no read-then-upgrade deadlocks, and the credentials
// read in UpdateCredentials is already under the lock). The WAL is checkpointed by SQLite
// itself, in the commit that takes it past 1000 pages: a checkpointer in the background was
// measured (issue 16, bench/results/profiling.md) and, on a disk where its fsync of the
// database file and the commits' fsyncs of the WAL contend, it lowered the writers'
// throughput and lengthened their tail rather than shortening it.
func openSQLite(ctx context.Context, cfg Config, box *secretbox.Box) (Store, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("store: SQLite needs a data directory")
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("store: data directory: %w", err)
	}
	if strings.ContainsAny(dir, "?#") {
		return nil, errors.New("store: the data directory's path must not contain ? or #")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: data directory: %w", err)
	}
	path := filepath.Join(dir, SQLiteFile)
	if err := createPrivate(path); err != nil {
		return nil, err
	}

	busy := cfg.BusyTimeout
	if busy <= 0 {
		busy = DefaultBusyTimeout
	}
	q := url.Values{}
	q.Set("_txlock", "immediate")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	if cfg.unsafeNoSync {
		q.Add("_pragma", "synchronous(OFF)")
	} else {
		q.Add("_pragma", "synchronous(FULL)")
	}
	db, err := sql.Open("sqlite", path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("store: open SQLite: %w", err)
	}
	n := cfg.MaxConns
	if n <= 0 {
		n = 8
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)

	s := &sqlStore{db: db, box: box, d: dialect{
		name:         "SQLite",
		nowMicros:    "CAST(unixepoch('subsec') * 1000000 AS INTEGER)",
		isUnique:     sqliteIsUnique,
		lastInsertID: true,
		writeSem:     make(chan struct{}, 1),
	}}
	if err := s.ping(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := migrate(ctx, db, goose.DialectSQLite3, "migrations/sqlite"); err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := s.prepareAll(ctx, hotStatements()); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// createPrivate creates the database file with mode 0600 before SQLite does (SQLite
// would create it 0644; its -wal and -shm files copy the database file's mode), and
// takes group and other permissions away from an existing one.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600) // #nosec G304 -- GATEWAY_DATA_DIR/gateway.db, the operator's path
	if err != nil {
		return fmt.Errorf("store: database file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("store: database file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := f.Chmod(fi.Mode().Perm() &^ 0o077); err != nil {
			return fmt.Errorf("store: database file: %w", err)
		}
	}
	return nil
}

func sqliteIsUnique(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) &&
		(e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
}
