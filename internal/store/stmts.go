package store

import (
	"context"
	"database/sql"
	"fmt"
)

// The statements every close runs, prepared once at Open (SQLite): unprepared, SQLite
// parses each statement every time it runs, a fifth of the gateway's CPU per close in the
// load suite's profile. database/sql prepares a statement again, once, on each connection
// that runs it, inside a transaction on the transaction's own connection.
// (PostgreSQL is left to pgx, which caches statements per connection by itself.)
const (
	getBatchSQL = "SELECT " + batchRead + " FROM batches WHERE id = ?"
	getCloseSQL = "SELECT " + closeColumns + " FROM closes WHERE id = ?"
	// A batch the gateway closed is CLOSED in its status too (Concur never reopens one),
	// so lists filtered by status show it at once.
	setStateSQL = `UPDATE batches SET status = CASE WHEN ? = 'closed' THEN 'CLOSED' ELSE status END,
			close_state = ?, close_version = close_version + 1, close_prev = ?,
			close_attempt = ?, close_lease_until = ?, settle_until = ?, check_at = ?, file_close = ?
			WHERE id = ? AND close_version = ?`
	// setStateReturningSQL is setStateSQL returning the batch as it then is: Apply's answer
	// without a second read.
	setStateReturningSQL = setStateSQL + " RETURNING " + batchRead
	endCloseSQL          = `UPDATE closes SET outcome = ?, ended_at = ?, lease_until = 0,
			upstream_status = ?, error_code = ?, detail = ?, batch_status = ?, status = ?,
			job_queue_key = ?, file_url = ?, upstream_correlation_id = ? WHERE id = ? AND batch_id = ?`
)

func hotStatements() []string {
	return []string{getBatchSQL, getCloseSQL, setStateReturningSQL, endCloseSQL, insertClose}
}

// prepareAll prepares queries (written with ?) for exec and queryRow. Only at Open: the
// statements are read without a lock afterwards.
func (s *sqlStore) prepareAll(ctx context.Context, queries []string) error {
	s.stmts = make(map[string]*sql.Stmt, len(queries))
	for _, q := range queries {
		st, err := s.db.PrepareContext(ctx, s.q(q))
		if err != nil {
			s.closeStmts()
			return fmt.Errorf("store: prepare: %w", err)
		}
		s.stmts[q] = st
	}
	return nil
}

// prepared is query's prepared statement, bound to q when q is a transaction; nil when
// query was not prepared.
func (s *sqlStore) prepared(ctx context.Context, q querier, query string) *sql.Stmt {
	st := s.stmts[query]
	if st == nil {
		return nil
	}
	if tx, ok := q.(*sql.Tx); ok {
		return tx.StmtContext(ctx, st) // closed with the transaction
	}
	return st
}

// exec runs query on q, through its prepared statement when there is one.
func (s *sqlStore) exec(ctx context.Context, q querier, query string, args ...any) (sql.Result, error) {
	if st := s.prepared(ctx, q, query); st != nil {
		return st.ExecContext(s.stmtContext(ctx, q), args...)
	}
	return q.ExecContext(ctx, s.q(query), args...)
}

// queryRow runs query on q, through its prepared statement when there is one.
func (s *sqlStore) queryRow(ctx context.Context, q querier, query string, args ...any) *sql.Row {
	if st := s.prepared(ctx, q, query); st != nil {
		return st.QueryRowContext(s.stmtContext(ctx, q), args...)
	}
	return q.QueryRowContext(ctx, s.q(query), args...)
}

// stmtContext is the context a prepared statement runs with on q (prepared binds it to
// the transaction with the caller's ctx, so a statement not yet begun when ctx ends still
// fails: only one already running is not interrupted): in a SQLite write
// transaction, ctx without its cancellation. For a statement whose context can end,
// modernc's driver starts a goroutine that interrupts it when it does (a channel, a
// closure, a progress handler: in the load suite, 5 % of the gateway's allocations,
// six statements a close). In a write transaction there is nothing to interrupt: BEGIN
// IMMEDIATE took the database's write lock, so no statement in it waits for a lock, and
// the hot ones read or write a row by its key. The transaction keeps ctx: BEGIN's wait
// for the lock ends with it, and database/sql rolls the transaction back when it ends.
func (s *sqlStore) stmtContext(ctx context.Context, q querier) context.Context {
	if _, inTx := q.(*sql.Tx); inTx && s.d.writeSem != nil { // SQLite: one writer, holding the lock
		return context.WithoutCancel(ctx)
	}
	return ctx
}

// closeStmts closes the prepared statements. The map stays as Open made it, read without a
// lock by calls that may still run: a closed statement fails them instead.
func (s *sqlStore) closeStmts() {
	for _, st := range s.stmts {
		_ = st.Close()
	}
}
