package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

const idempotencyColumns = `caller, idem_key, fingerprint, state, request_id, lease_until,
	expires_at, status, content_type, retry_after, body, created_at`

// claimIdempotency inserts a claim, or replaces a record that is not live at now (expired,
// or in progress with an expired lease); it returns a row only when it claimed. The
// conflicting row stays locked (PostgreSQL) until the transaction ends, so the live
// record read next cannot change meanwhile.
const claimIdempotency = `INSERT INTO idempotency_keys (` + idempotencyColumns + `)
	VALUES (?, ?, ?, ?, ?, ?, ?, 0, '', '', NULL, ?)
	ON CONFLICT (caller, idem_key) DO UPDATE SET fingerprint = excluded.fingerprint,
		state = excluded.state, request_id = excluded.request_id,
		lease_until = excluded.lease_until, expires_at = excluded.expires_at, status = 0,
		content_type = '', retry_after = '', body = NULL, created_at = excluded.created_at
	WHERE idempotency_keys.expires_at <= ?
		OR (idempotency_keys.state = ? AND idempotency_keys.lease_until <= ?)
	RETURNING created_at`

// ClaimIdempotencyKey claims (rec.Caller, rec.Key) in one upsert, so concurrent claims of
// a key, from any process, have one winner. rec.LeaseUntil and rec.ExpiresAt must be
// set; rec.CreatedAt defaults to now.
func (s *sqlStore) ClaimIdempotencyKey(ctx context.Context, rec Idempotency, now time.Time) (Idempotency, bool, error) {
	if rec.Key == "" || rec.LeaseUntil.IsZero() || rec.ExpiresAt.IsZero() {
		return Idempotency{}, false, errors.New("store: claim idempotency key: key, lease and expiry are required")
	}
	if rec.CreatedAt.IsZero() {
		rec.CreatedAt = now
	}
	rec = Idempotency{Caller: rec.Caller, Key: rec.Key, Fingerprint: rec.Fingerprint,
		State: IdempotencyInProgress, RequestID: rec.RequestID, LeaseUntil: stored(rec.LeaseUntil),
		ExpiresAt: stored(rec.ExpiresAt), CreatedAt: stored(rec.CreatedAt)}
	var (
		existing Idempotency
		claimed  bool
	)
	err := s.write(ctx, func(tx *sql.Tx) error {
		var created int64
		err := tx.QueryRowContext(ctx, s.q(claimIdempotency), rec.Caller, rec.Key, rec.Fingerprint,
			string(rec.State), rec.RequestID, micros(rec.LeaseUntil), micros(rec.ExpiresAt),
			micros(rec.CreatedAt), micros(now), string(IdempotencyInProgress), micros(now)).Scan(&created)
		if err == nil {
			claimed = true
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		existing, err = scanIdempotency(tx.QueryRowContext(ctx, s.q("SELECT "+idempotencyColumns+
			" FROM idempotency_keys WHERE caller = ? AND idem_key = ?"), rec.Caller, rec.Key))
		return err
	})
	if err != nil {
		return Idempotency{}, false, wrap("claim idempotency key", err)
	}
	if claimed {
		return rec, true, nil
	}
	return existing, false, nil
}

// CompleteIdempotencyKey records the answer to the claim of rec.RequestID: State done,
// Status, ContentType, RetryAfter, Body, and ExpiresAt when set. batch.ErrNotStored when that
// claim is gone (released, or taken over after its lease expired).
func (s *sqlStore) CompleteIdempotencyKey(ctx context.Context, rec Idempotency) error {
	set := "state = ?, lease_until = 0, status = ?, content_type = ?, retry_after = ?, body = ?"
	args := []any{string(IdempotencyDone), rec.Status, rec.ContentType, rec.RetryAfter, rec.Body}
	if !rec.ExpiresAt.IsZero() {
		set += ", expires_at = ?"
		args = append(args, micros(rec.ExpiresAt))
	}
	args = append(args, rec.Caller, rec.Key, string(IdempotencyInProgress), rec.RequestID)
	return wrap("complete idempotency key", s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q("UPDATE idempotency_keys SET "+set+
			" WHERE caller = ? AND idem_key = ? AND state = ? AND request_id = ?"), args...)
		return oneRow(res, err)
	}))
}

// ReleaseIdempotencyKey forgets requestID's in-progress claim; a recorded answer, or
// another request's claim, stays.
func (s *sqlStore) ReleaseIdempotencyKey(ctx context.Context, caller, key, requestID string) error {
	return wrap("release idempotency key", s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q("DELETE FROM idempotency_keys WHERE caller = ? AND idem_key = ? AND state = ? AND request_id = ?"),
			caller, key, string(IdempotencyInProgress), requestID)
		return err
	}))
}

// PurgeIdempotencyKeys deletes the records whose ExpiresAt is not after now.
func (s *sqlStore) PurgeIdempotencyKeys(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q("DELETE FROM idempotency_keys WHERE expires_at <= ?"), micros(now))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, wrap("purge idempotency keys", err)
}

func scanIdempotency(row scanner) (Idempotency, error) {
	var (
		r                         Idempotency
		state                     string
		lease, expires, createdAt int64
	)
	err := row.Scan(&r.Caller, &r.Key, &r.Fingerprint, &state, &r.RequestID, &lease, &expires,
		&r.Status, &r.ContentType, &r.RetryAfter, &r.Body, &createdAt)
	r.State = IdempotencyState(state)
	r.LeaseUntil, r.ExpiresAt, r.CreatedAt = fromMicros(lease), fromMicros(expires), fromMicros(createdAt)
	return r, err
}
