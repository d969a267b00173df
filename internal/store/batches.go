package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

const batchColumns = `id, url, name, total, currency, batch_count, batch_type, payment_method,
	status, first_seen, last_seen`

// batchRead is what a read of a batch selects: its columns, its close state, and the
// database's clock at the read.
const batchRead = batchColumns + `, close_state, close_version, close_prev, close_attempt,
	close_lease_until, settle_until, check_at, file_close, now_us()`

// UpsertChunk is how many batches one INSERT of UpsertBatches carries (11 parameters
// each: well under both databases' limits on parameters). A caller that streams batches
// into the store upserts them in chunks of a multiple of it.
const UpsertChunk = 500

// UpsertBatches inserts or updates batches in one transaction, UpsertChunk rows per
// statement, in ID order. A batch ID given twice counts once, its last occurrence wins.
// FirstSeen is seenAt on insert and then never changes.
func (s *sqlStore) UpsertBatches(ctx context.Context, batches []batch.Batch, seenAt time.Time) error {
	if len(batches) == 0 {
		return nil
	}
	batches, err := canonical(batches)
	if err != nil {
		return err
	}
	seen := micros(seenAt)
	return s.write(ctx, func(tx *sql.Tx) error {
		var full *sql.Stmt
		defer func() {
			if full != nil {
				_ = full.Close()
			}
		}()
		args := make([]any, 0, UpsertChunk*11)
		for start := 0; start < len(batches); start += UpsertChunk {
			chunk := batches[start:min(start+UpsertChunk, len(batches))]
			args = args[:0]
			for _, b := range chunk {
				args = append(args, b.ID, b.URL, b.Name, b.Total, b.Currency, b.Count, b.Type,
					b.PaymentMethod, b.Status, seen, seen)
			}
			var err error
			if len(chunk) == UpsertChunk {
				if full == nil {
					if full, err = tx.PrepareContext(ctx, s.q(upsertBatchesSQL(UpsertChunk))); err != nil {
						return fmt.Errorf("store: upsert batches: %w", err)
					}
				}
				_, err = full.ExecContext(ctx, args...)
			} else {
				_, err = tx.ExecContext(ctx, s.q(upsertBatchesSQL(len(chunk))), args...)
			}
			if err != nil {
				return fmt.Errorf("store: upsert batches: %w", err)
			}
		}
		return nil
	})
}

// canonical returns the batches sorted by ID, each ID once (its last occurrence wins:
// PostgreSQL refuses to update a row twice in one statement). The order makes
// concurrent upserts lock rows in the same order, so they cannot deadlock.
func canonical(batches []batch.Batch) ([]batch.Batch, error) {
	last := make(map[string]int, len(batches))
	for i, b := range batches {
		if b.ID == "" {
			return nil, errors.New("store: a batch without an ID")
		}
		last[b.ID] = i
	}
	out := make([]batch.Batch, 0, len(last))
	for i, b := range batches {
		if last[b.ID] == i {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, func(a, b batch.Batch) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// upsertBatchesSQL is the upsert of n batches.
func upsertBatchesSQL(n int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO batches (" + batchColumns + ") VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?,?,?,?,?,?,?,?,?)")
	}
	b.WriteString(` ON CONFLICT (id) DO UPDATE SET
		url = excluded.url, name = excluded.name, total = excluded.total,
		currency = excluded.currency, batch_count = excluded.batch_count,
		batch_type = excluded.batch_type, payment_method = excluded.payment_method,
		status = CASE WHEN excluded.status = '' OR batches.status = 'CLOSED' THEN batches.status ELSE excluded.status END,
		last_seen = excluded.last_seen`)
	return b.String()
}

// GetBatch returns the batch or batch.ErrNotStored.
func (s *sqlStore) GetBatch(ctx context.Context, id string) (batch.Batch, error) {
	return s.getBatch(ctx, s.db, id)
}

func (s *sqlStore) getBatch(ctx context.Context, q querier, id string) (batch.Batch, error) {
	b, err := scanBatch(s.queryRow(ctx, q, getBatchSQL, id))
	return b, wrap("get batch", err)
}

// ListBatches returns the batches matching q in byte order of their ID, after q.After.
func (s *sqlStore) ListBatches(ctx context.Context, q batch.BatchQuery) ([]batch.Batch, error) {
	if q.Limit <= 0 {
		return nil, fmt.Errorf("store: list batches: limit %d, want > 0", q.Limit)
	}
	query, args := s.listBatchesSQL(q)
	rows, err := s.db.QueryContext(ctx, query, args...)
	return collect(rows, err, "list batches", scanBatch)
}

// listBatchesSQL is ListBatches's statement. Only the filters that are set become
// conditions, so the planner can use the status index or walk the id index (migration 2)
// in the order asked for, without sorting.
func (s *sqlStore) listBatchesSQL(q batch.BatchQuery) (string, []any) {
	var (
		where []string
		args  []any
	)
	for _, f := range []struct{ column, value string }{
		{"status", q.Status}, {"currency", q.Currency}, {"payment_method", q.PaymentMethod}, {"batch_type", q.Type},
	} {
		if f.value != "" {
			where = append(where, f.column+" = ?")
			args = append(args, f.value)
		}
	}
	if q.After != "" {
		where = append(where, "id"+s.d.byteOrder+" > ?")
		args = append(args, q.After)
	}
	query := "SELECT " + batchRead + " FROM batches"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY id" + s.d.byteOrder + " LIMIT ?"
	return s.q(query), append(args, min(q.Limit, MaxListBatches))
}

func scanBatch(row scanner) (batch.Batch, error) {
	var (
		b                                   batch.Batch
		first, last, lease, settle, chk, at int64
		state, prev                         string
	)
	c := &b.Close
	err := row.Scan(&b.ID, &b.URL, &b.Name, &b.Total, &b.Currency, &b.Count, &b.Type,
		&b.PaymentMethod, &b.Status, &first, &last,
		&state, &c.Version, &prev, &c.CloseID, &lease, &settle, &chk, &c.FileClose, &at)
	b.FirstSeen, b.LastSeen = fromMicros(first), fromMicros(last)
	c.State, c.Prev = batch.State(state), batch.State(prev)
	c.LeaseUntil, c.SettleUntil, c.CheckAt, c.Now = fromMicros(lease), fromMicros(settle), fromMicros(chk), fromMicros(at)
	return b, err
}

// SetBatchStatus sets a known batch's list status, or returns batch.ErrNotStored.
func (s *sqlStore) SetBatchStatus(ctx context.Context, id, status string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q("UPDATE batches SET status = ? WHERE id = ?"), status, id)
		return wrap("set batch status", oneRow(res, err))
	})
}
