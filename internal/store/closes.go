package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

const closeColumns = `id, batch_id, caller, request_id, idempotency_key, regenerate, started_at,
	ended_at, lease_until, outcome, upstream_status, error_code, detail, batch_status, status,
	job_queue_key, file_url, async, claim, upstream_correlation_id`

// insertClose inserts every column but id; insertCloseReturning also returns the id.
const (
	insertClose = `INSERT INTO closes (batch_id, caller, request_id, idempotency_key,
	regenerate, started_at, ended_at, lease_until, outcome, upstream_status, error_code, detail,
	batch_status, status, job_queue_key, file_url, async, claim, upstream_correlation_id)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	insertCloseReturning = insertClose + " RETURNING id"
)

// MaxListCloses caps ListCloses's limit.
const MaxListCloses = 1000

// Apply applies the change in one transaction: the attempt Begin inserted, the attempt
// End ended, the close state compared on its version and set. It returns the batch as it
// then is and the attempt written (Begin's, else End's).
func (s *sqlStore) Apply(ctx context.Context, c batch.Change) (batch.Batch, batch.Close, error) {
	if c.BatchID == "" {
		return batch.Batch{}, batch.Close{}, errors.New("store: apply: no batch ID")
	}
	var (
		b   batch.Batch
		out batch.Close
	)
	err := s.write(ctx, func(tx *sql.Tx) error {
		if c.To == nil { // no compare-and-set to find an unknown batch
			if _, err := s.getBatch(ctx, tx, c.BatchID); err != nil {
				return err
			}
		}
		if c.Begin != nil {
			att := normalClose(*c.Begin)
			att.BatchID = c.BatchID
			if att.Outcome == "" {
				return errors.New("store: apply: an attempt without an outcome")
			}
			if att.Outcome != batch.OutcomeInProgress {
				att.LeaseUntil = time.Time{}
			}
			id, err := s.insertClose(ctx, tx, att)
			if s.d.isUnique(err) {
				return batch.ErrStateChanged // another attempt of the batch is in progress
			} else if err != nil {
				return err
			}
			att.ID = id
			out = att
		}
		if c.End != nil {
			end := normalClose(*c.End)
			end.BatchID, end.LeaseUntil = c.BatchID, time.Time{}
			if end.Outcome == batch.OutcomeInProgress || end.Outcome == "" {
				return fmt.Errorf("store: apply: outcome %q does not end an attempt", end.Outcome)
			}
			res, err := s.exec(ctx, tx, endCloseSQL, string(end.Outcome), micros(end.EndedAt), end.UpstreamStatus,
				end.ErrorCode, end.Detail, end.BatchStatus, end.Status, end.JobQueueKey, end.FileURL,
				end.UpstreamCorrelationID, end.ID, c.BatchID)
			if err := oneRow(res, err); err != nil {
				return err
			}
			if c.Begin == nil {
				out = end
			}
		}
		if c.To != nil {
			to := *c.To
			if c.Begin != nil {
				to.CloseID, to.LeaseUntil = out.ID, out.LeaseUntil
			}
			var err error
			b, err = scanBatch(s.queryRow(ctx, tx, setStateReturningSQL, string(to.State), string(to.State), string(to.Prev),
				to.CloseID, micros(to.LeaseUntil), micros(to.SettleUntil), micros(to.CheckAt), to.FileClose, c.BatchID, c.From))
			if errors.Is(err, sql.ErrNoRows) { // no row of that version: changed, or not stored
				if _, err := s.getBatch(ctx, tx, c.BatchID); err != nil {
					return err
				}
				return batch.ErrStateChanged
			}
			return err // the batch as the update left it
		}
		var err error
		b, err = s.getBatch(ctx, tx, c.BatchID)
		return err
	})
	if err != nil {
		return batch.Batch{}, batch.Close{}, wrap("apply", err)
	}
	return b, out, nil
}

// GetClose returns the attempt, or batch.ErrNotStored.
func (s *sqlStore) GetClose(ctx context.Context, id int64) (batch.Close, error) {
	c, err := scanClose(s.queryRow(ctx, s.db, getCloseSQL, id))
	return c, wrap("get close", err)
}

// CloseByKey returns the caller's latest attempt on the batch with the idempotency key
// that reached or may have reached Concur (closed, unknown or in progress).
func (s *sqlStore) CloseByKey(ctx context.Context, batchID, caller, key string) (batch.Close, error) {
	c, err := scanClose(s.db.QueryRowContext(ctx, s.q("SELECT "+closeColumns+` FROM closes
		WHERE batch_id = ? AND caller = ? AND idempotency_key = ? AND outcome IN (?, ?, ?)
		ORDER BY id DESC LIMIT 1`), batchID, caller, key,
		string(batch.OutcomeClosed), string(batch.OutcomeUnknown), string(batch.OutcomeInProgress)))
	return c, wrap("close by key", err)
}

// DueScheduled returns batches the finisher has work for: scheduled ones due for a look
// at the list, unknown ones past their settle time, closings whose lease expired.
func (s *sqlStore) DueScheduled(ctx context.Context, limit int) ([]batch.Batch, error) {
	rows, err := s.db.QueryContext(ctx, s.q("SELECT "+batchRead+` FROM batches
		WHERE (close_state = 'scheduled' AND check_at <= now_us())
		   OR (close_state = 'unknown' AND settle_until <= now_us())
		   OR (close_state = 'closing' AND close_lease_until <= now_us())
		ORDER BY check_at LIMIT ?`), limit)
	return collect(rows, err, "due scheduled", scanBatch)
}

// ListCloses returns the batch's attempts, newest (highest ID) first; limit must be
// positive and is capped at MaxListCloses.
func (s *sqlStore) ListCloses(ctx context.Context, batchID string, limit int) ([]batch.Close, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("store: list closes: limit %d, want > 0", limit)
	}
	rows, err := s.db.QueryContext(ctx, s.q("SELECT "+closeColumns+
		" FROM closes WHERE batch_id = ? ORDER BY id DESC LIMIT ?"), batchID, min(limit, MaxListCloses))
	return collect(rows, err, "list closes", scanClose)
}

func (s *sqlStore) insertClose(ctx context.Context, tx *sql.Tx, c batch.Close) (int64, error) {
	args := []any{c.BatchID, c.Caller, c.RequestID,
		c.IdempotencyKey, c.Regenerate, micros(c.StartedAt), micros(c.EndedAt),
		micros(c.LeaseUntil), string(c.Outcome), c.UpstreamStatus, c.ErrorCode, c.Detail, c.BatchStatus,
		c.Status, c.JobQueueKey, c.FileURL, c.Async, c.Claim, c.UpstreamCorrelationID}
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

func scanClose(row scanner) (batch.Close, error) {
	var (
		c                     batch.Close
		started, ended, lease int64
		outcome               string
	)
	err := row.Scan(&c.ID, &c.BatchID, &c.Caller, &c.RequestID, &c.IdempotencyKey, &c.Regenerate,
		&started, &ended, &lease, &outcome, &c.UpstreamStatus, &c.ErrorCode, &c.Detail,
		&c.BatchStatus, &c.Status, &c.JobQueueKey, &c.FileURL, &c.Async, &c.Claim, &c.UpstreamCorrelationID)
	c.StartedAt, c.EndedAt, c.LeaseUntil = fromMicros(started), fromMicros(ended), fromMicros(lease)
	c.Outcome = batch.Outcome(outcome)
	return c, err
}

// normalClose is c with its times as the store keeps them.
func normalClose(c batch.Close) batch.Close {
	c.StartedAt, c.EndedAt, c.LeaseUntil = stored(c.StartedAt), stored(c.EndedAt), stored(c.LeaseUntil)
	return c
}
