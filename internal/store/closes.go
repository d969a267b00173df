package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

const closeColumns = `id, batch_id, caller, request_id, idempotency_key, regenerate, started_at,
	ended_at, lease_until, outcome, upstream_status, error_code, detail, batch_status, status,
	job_queue_key, file_url, async`

// insertClose inserts every column but id; insertCloseReturning also returns the id.
const (
	insertClose = `INSERT INTO closes (batch_id, caller, request_id, idempotency_key,
	regenerate, started_at, ended_at, lease_until, outcome, upstream_status, error_code, detail,
	batch_status, status, job_queue_key, file_url, async)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	insertCloseReturning = insertClose + " RETURNING id"
)

// MaxListCloses caps ListCloses's limit.
const MaxListCloses = 1000

// crashedDetail explains an attempt whose lease expired while it was in progress.
const crashedDetail = "the gateway stopped mid-close (its lease expired before the attempt ended): " +
	"the close may or may not have reached Concur"

// BeginClose records c as in progress. Exclusion rests on a unique index over the
// in-progress attempts of a batch, so it holds across processes: a concurrent BeginClose
// of the same batch fails on it and gets ErrCloseInProgress. The expired attempts marked
// unknown get EndedAt = c.StartedAt (when the gateway learned of their end) and a Detail.
func (s *sqlStore) BeginClose(ctx context.Context, c Close) (Begun, error) {
	if c.BatchID == "" {
		return Begun{}, errors.New("store: begin close: no batch ID")
	}
	if c.StartedAt.IsZero() || !c.LeaseUntil.After(c.StartedAt) {
		return Begun{}, errors.New("store: begin close: a lease must end after the attempt starts")
	}
	c = normalClose(c)
	c.Outcome, c.EndedAt = OutcomeInProgress, time.Time{}
	var begun Begun
	err := s.write(ctx, func(tx *sql.Tx) error {
		b, err := s.getBatch(ctx, tx, c.BatchID)
		if err != nil {
			return err
		}
		_, err = s.exec(ctx, tx, expireInProgressSQL,
			string(OutcomeUnknown), micros(c.StartedAt), crashedDetail,
			c.BatchID, string(OutcomeInProgress), micros(c.StartedAt))
		if err != nil {
			return err
		}
		if c.ID, err = s.insertClose(ctx, tx, c); s.d.isUnique(err) {
			return ErrCloseInProgress
		} else if err != nil {
			return err
		}
		begun = Begun{Attempt: c, Batch: b}
		if begun.LastDecisive, err = s.lastClose(ctx, tx, c.BatchID,
			OutcomeClosed, OutcomeFailed, OutcomeUnknown); err != nil {
			return err
		}
		if d := begun.LastDecisive; d != nil && d.Outcome == OutcomeClosed {
			// The latest decisive attempt closed the batch: it is the latest closed one too.
			lastClosed := *d
			begun.LastClosed = &lastClosed
			return nil
		}
		begun.LastClosed, err = s.lastClose(ctx, tx, c.BatchID, OutcomeClosed)
		return err
	})
	if err != nil {
		return Begun{}, wrap("begin close", err)
	}
	return begun, nil
}

// FinishClose ends attempt c.ID. It ends it even when it was already marked unknown
// (its lease expired first): what really happened is worth more. ErrNotFound when there
// is no attempt c.ID.
func (s *sqlStore) FinishClose(ctx context.Context, c Close) error {
	if c.Outcome == OutcomeInProgress || c.Outcome == "" {
		return fmt.Errorf("store: finish close: outcome %q does not end an attempt", c.Outcome)
	}
	c = normalClose(c)
	return wrap("finish close", s.write(ctx, func(tx *sql.Tx) error {
		res, err := s.exec(ctx, tx, finishCloseSQL,
			string(c.Outcome), micros(c.EndedAt), c.UpstreamStatus, c.ErrorCode, c.Detail, c.BatchStatus,
			c.Status, c.JobQueueKey, c.FileURL, c.ID)
		if err := oneRow(res, err); err != nil || !c.closesBatch() {
			return err
		}
		_, err = s.exec(ctx, tx, markBatchClosedSQL, StatusClosed, c.ID)
		return err
	}))
}

// closesBatch reports whether the finished attempt c shows its batch closed: outcome closed
// with a File-Url or Concur's BatchStatus CLOSED. An accepted asynchronous close has
// neither: the batch is closed when Concur's job has run, which its batch list tells.
func (c Close) closesBatch() bool {
	return c.Outcome == OutcomeClosed && (c.FileURL != "" || c.BatchStatus == StatusClosed)
}

// RecordClose inserts a finished attempt; the batch must exist (ErrNotFound otherwise).
func (s *sqlStore) RecordClose(ctx context.Context, c Close) (Close, error) {
	if c.Outcome == OutcomeInProgress || c.Outcome == "" {
		return Close{}, fmt.Errorf("store: record close: outcome %q is not an ended attempt (use BeginClose)", c.Outcome)
	}
	c = normalClose(c)
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := s.getBatch(ctx, tx, c.BatchID); err != nil {
			return err
		}
		var err error
		c.ID, err = s.insertClose(ctx, tx, c)
		return err
	})
	if err != nil {
		return Close{}, wrap("record close", err)
	}
	return c, nil
}

// ListCloses returns the batch's attempts, newest (highest ID) first; limit must be
// positive and is capped at MaxListCloses.
func (s *sqlStore) ListCloses(ctx context.Context, batchID string, limit int) ([]Close, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("store: list closes: limit %d, want > 0", limit)
	}
	rows, err := s.db.QueryContext(ctx, s.q("SELECT "+closeColumns+
		" FROM closes WHERE batch_id = ? ORDER BY id DESC LIMIT ?"), batchID, min(limit, MaxListCloses))
	if err != nil {
		return nil, wrap("list closes", err)
	}
	defer rows.Close()
	var out []Close
	for rows.Next() {
		c, err := scanClose(rows)
		if err != nil {
			return nil, wrap("list closes", err)
		}
		out = append(out, c)
	}
	return out, wrap("list closes", rows.Err())
}

func (s *sqlStore) insertClose(ctx context.Context, tx *sql.Tx, c Close) (int64, error) {
	args := []any{c.BatchID, c.Caller, c.RequestID,
		c.IdempotencyKey, c.Regenerate, micros(c.StartedAt), micros(c.EndedAt),
		micros(c.LeaseUntil), string(c.Outcome), c.UpstreamStatus, c.ErrorCode, c.Detail, c.BatchStatus,
		c.Status, c.JobQueueKey, c.FileURL, c.Async}
	if s.d.lastInsertID {
		// SQLite: a plain insert and its rowid, without the rows RETURNING reads through.
		res, err := s.exec(ctx, tx, insertClose, args...)
		if err != nil {
			return 0, err
		}
		return res.LastInsertId()
	}
	var id int64
	err := s.queryRow(ctx, tx, insertCloseReturning, args...).Scan(&id)
	return id, err
}

// LastClosed returns the batch's latest attempt with outcome closed; ErrNotFound when none.
func (s *sqlStore) LastClosed(ctx context.Context, batchID string) (Close, error) {
	c, err := s.lastClose(ctx, s.db, batchID, OutcomeClosed)
	switch {
	case err != nil:
		return Close{}, wrap("last closed", err)
	case c == nil:
		return Close{}, wrap("last closed", ErrNotFound)
	}
	return *c, nil
}

// UnknownAfter reports whether an attempt of the batch after attempt afterID has an
// unknown outcome.
func (s *sqlStore) UnknownAfter(ctx context.Context, batchID string, afterID int64) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, s.q("SELECT COUNT(*) FROM closes WHERE batch_id = ? AND id > ? AND outcome = ?"),
		batchID, afterID, string(OutcomeUnknown)).Scan(&n)
	return n > 0, wrap("unknown after", err)
}

// lastClose is the batch's latest attempt with one of the outcomes, nil when none.
func (s *sqlStore) lastClose(ctx context.Context, q querier, batchID string, outcomes ...Outcome) (*Close, error) {
	args := []any{batchID}
	for _, o := range outcomes {
		args = append(args, string(o))
	}
	query, ok := lastCloseSQLs[len(outcomes)]
	if !ok {
		query = lastCloseSQL(len(outcomes))
	}
	c, err := scanClose(s.queryRow(ctx, q, query, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &c, nil
}

func scanClose(row scanner) (Close, error) {
	var (
		c                     Close
		started, ended, lease int64
		outcome               string
	)
	err := row.Scan(&c.ID, &c.BatchID, &c.Caller, &c.RequestID, &c.IdempotencyKey, &c.Regenerate,
		&started, &ended, &lease, &outcome, &c.UpstreamStatus, &c.ErrorCode, &c.Detail,
		&c.BatchStatus, &c.Status, &c.JobQueueKey, &c.FileURL, &c.Async)
	c.StartedAt, c.EndedAt, c.LeaseUntil = fromMicros(started), fromMicros(ended), fromMicros(lease)
	c.Outcome = Outcome(outcome)
	return c, err
}

// normalClose is c with its times as the store keeps them.
func normalClose(c Close) Close {
	c.StartedAt, c.EndedAt, c.LeaseUntil = stored(c.StartedAt), stored(c.EndedAt), stored(c.LeaseUntil)
	return c
}
