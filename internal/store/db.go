package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/concur"
	"github.com/finplat/payment-batch-gateway/internal/secretbox"
)

// dialect is what differs between SQLite and PostgreSQL. The SQL is written once, with ?
// placeholders, in the common subset (ON CONFLICT ... DO UPDATE, RETURNING, partial
// indexes).
type dialect struct {
	name string
	// numbered: placeholders are $1, $2, ... (PostgreSQL) instead of ?.
	numbered bool
	// lastInsertID: sql.Result.LastInsertId gives an inserted row's id (SQLite); without
	// it, inserts say RETURNING id.
	lastInsertID bool
	// forUpdate is appended to the SELECT that takes the credentials lock: a row lock in
	// PostgreSQL; SQLite needs none, every write transaction holds the database's lock.
	forUpdate string
	// lockHeld is run first in the transaction that holds the credentials lock across the
	// call to Concur's token endpoint (up to the Concur time-out): PostgreSQL must not end
	// such a session for idling in a transaction (idle_in_transaction_session_timeout) and
	// lose a refresh token Concur has already rotated.
	lockHeld string
	// byteOrder is appended to the batch id where batches are ordered or compared for
	// ListBatches, so that both dialects order them by bytes (Go's strings.Compare): SQLite's
	// TEXT compares bytes already (BINARY), PostgreSQL's follows the database's locale
	// unless told COLLATE "C". Migration 2 indexes id with this collation.
	byteOrder string
	// nowMicros is the database's clock as unix microseconds, for every time that fences
	// or settles replicas (close leases, settle delays, the credentials' redeeming
	// marker): one clock for every replica. Statements write it now_us().
	nowMicros string
	// isUnique reports a unique-constraint violation.
	isUnique func(error) bool
	// writeSem, when set, serialises this process's write transactions before they take
	// a connection (SQLite has one writer: waiting here rather than in the busy handler
	// keeps connections free for readers).
	writeSem chan struct{}
}

// sqlStore is the Store on database/sql, shared by both dialects.
type sqlStore struct {
	db    *sql.DB
	d     dialect
	box   *secretbox.Box
	stmts map[string]*sql.Stmt // prepared at Open, by the statement as written (stmts.go)
}

var _ Store = (*sqlStore)(nil)

// q adapts a statement written with ? placeholders to the dialect.
func (s *sqlStore) q(query string) string {
	query = strings.ReplaceAll(query, "now_us()", s.d.nowMicros)
	if !s.d.numbered {
		return query
	}
	return numberPlaceholders(query)
}

// numberPlaceholders turns each ? into $1, $2, ... (the statements here hold no ? in
// literals or identifiers).
func numberPlaceholders(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for _, r := range query {
		if r != '?' {
			b.WriteRune(r)
			continue
		}
		n++
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(n))
	}
	return b.String()
}

// write runs fn in a write transaction, committed when fn returns nil. In SQLite the
// transaction takes the write lock at BEGIN (BEGIN IMMEDIATE, set on the connection).
func (s *sqlStore) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if s.d.writeSem != nil {
		select {
		case s.d.writeSem <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("store: waiting to write: %w", ctx.Err())
		}
		defer func() { <-s.d.writeSem }()
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

// Ping reports whether the database answers.
func (s *sqlStore) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("store: ping %s: %w", s.d.name, err)
	}
	return nil
}

// ping is Ping at Open: it makes the first connection (SQLite: applies the pragmas).
func (s *sqlStore) ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("store: connect to %s: %w", s.d.name, err)
	}
	return nil
}

// Close closes the connections.
func (s *sqlStore) Close() error {
	s.closeStmts()
	return s.db.Close()
}

// micros is t as stored: unix microseconds, 0 for the zero time.
func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// fromMicros is the inverse of micros, in UTC.
func fromMicros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

// stored is t as it reads back from the store.
func stored(t time.Time) time.Time { return fromMicros(micros(t)) }

// wrap names the operation in err, except for the sentinel errors callers test for:
// sql.ErrNoRows becomes batch.ErrNotStored, and batch.ErrNotStored, ErrStateChanged and
// ErrUndecryptable (which say "store:" already) come back as they are.
func wrap(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return batch.ErrNotStored
	case errors.Is(err, batch.ErrNotStored), errors.Is(err, batch.ErrStateChanged), errors.Is(err, concur.ErrUndecryptable):
		return err
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// oneRow turns the result of an UPDATE that must change one row into an error:
// batch.ErrNotStored when it changed none.
func oneRow(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return batch.ErrNotStored
	}
	return nil
}

// querier is a *sql.DB or a *sql.Tx.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// collect reads every row of a query (rows, err: what QueryContext returned) with scan,
// naming op in errors.
func collect[T any](rows *sql.Rows, err error, op string, scan func(scanner) (T, error)) ([]T, error) {
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, wrap(op, err)
		}
		out = append(out, v)
	}
	return out, wrap(op, rows.Err())
}
