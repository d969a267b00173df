package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

func validOutcome(o batch.DownloadOutcome) bool {
	switch o {
	case batch.DownloadComplete, batch.DownloadCut, batch.DownloadMismatch, batch.DownloadFailed:
		return true
	}
	return false
}

// MaxDownloadsPerClose caps ListDownloads's perClose.
const MaxDownloadsPerClose = 100

// Downloads is the part of the Store that keeps the downloads of payment files.
type Downloads interface {
	// RecordDownload records an ended download of close d.CloseID (the batch id is the
	// close's). When its outcome is complete and the close has no fingerprint yet, its
	// SHA256 and Bytes become the close's fingerprint: the first complete download wins, also
	// against a concurrent one in another replica. When the close has a fingerprint that a
	// complete download does not match, the download is recorded as mismatch. It returns the
	// download as recorded and the close's fingerprint (found false when it has none).
	// batch.ErrNotStored when there is no close d.CloseID.
	RecordDownload(ctx context.Context, d batch.Download) (rec batch.Download, fp batch.Fingerprint, found bool, err error)
	// FileFingerprint returns the close's fingerprint; batch.ErrNotStored when none is recorded.
	FileFingerprint(ctx context.Context, closeID int64) (batch.Fingerprint, error)
	// ListDownloads returns the downloads of the batch's closes with an id of at least
	// sinceCloseID, by close (newest first) and, within a close, newest first: at most
	// perClose of each (positive; capped at MaxDownloadsPerClose).
	ListDownloads(ctx context.Context, batchID string, sinceCloseID int64, perClose int) ([]batch.Download, error)
}

var _ Downloads = (*sqlStore)(nil)

const downloadColumns = `id, close_id, batch_id, caller, request_id, started_at, ended_at, bytes, sha256, outcome`

// insertDownload takes the batch id from the close, so that the two cannot disagree, and
// inserts nothing when there is no such close.
const (
	insertDownload = `INSERT INTO downloads (close_id, batch_id, caller, request_id, started_at,
	ended_at, bytes, sha256, outcome)
	SELECT id, batch_id, ?, ?, ?, ?, ?, ?, ? FROM closes WHERE id = ?`
	insertDownloadReturning = insertDownload + " RETURNING id, batch_id"

	// insertFingerprint is the conditional insert: the first complete download's digest
	// stays; a later (or concurrent, in PostgreSQL waiting for the first to commit) one
	// changes nothing.
	insertFingerprint = `INSERT INTO file_fingerprints (close_id, sha256, size, download_id, recorded_at)
	VALUES (?, ?, ?, ?, ?) ON CONFLICT (close_id) DO NOTHING`
	selectFingerprint = `SELECT close_id, sha256, size, download_id, recorded_at
	FROM file_fingerprints WHERE close_id = ?`
)

// RecordDownload records d, and the close's fingerprint when d is its first complete
// download, in one transaction.
func (s *sqlStore) RecordDownload(ctx context.Context, d batch.Download) (batch.Download, batch.Fingerprint, bool, error) {
	if !validOutcome(d.Outcome) {
		return batch.Download{}, batch.Fingerprint{}, false, fmt.Errorf("store: record download: outcome %q is not one", d.Outcome)
	}
	d.StartedAt, d.EndedAt = stored(d.StartedAt), stored(d.EndedAt)
	var (
		fp    batch.Fingerprint
		found bool
	)
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		if d.ID, d.BatchID, err = s.insertDownload(ctx, tx, d); err != nil {
			return err
		}
		if d.Outcome == batch.DownloadComplete {
			if _, err := tx.ExecContext(ctx, s.q(insertFingerprint),
				d.CloseID, d.SHA256, d.Bytes, d.ID, micros(d.EndedAt)); err != nil {
				return err
			}
		}
		fp, err = scanFingerprint(tx.QueryRowContext(ctx, s.q(selectFingerprint), d.CloseID))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return nil
		case err != nil:
			return err
		}
		found = true
		if d.Outcome == batch.DownloadComplete && (fp.SHA256 != d.SHA256 || fp.Size != d.Bytes) {
			d.Outcome = batch.DownloadMismatch
			_, err = tx.ExecContext(ctx, s.q("UPDATE downloads SET outcome = ? WHERE id = ?"), string(d.Outcome), d.ID)
		}
		return err
	})
	if err != nil {
		return batch.Download{}, batch.Fingerprint{}, false, wrap("record download", err)
	}
	return d, fp, found, nil
}

func (s *sqlStore) insertDownload(ctx context.Context, tx *sql.Tx, d batch.Download) (id int64, batchID string, err error) {
	args := []any{d.Caller, d.RequestID, micros(d.StartedAt), micros(d.EndedAt), d.Bytes, d.SHA256,
		string(d.Outcome), d.CloseID}
	if s.d.lastInsertID {
		res, err := tx.ExecContext(ctx, s.q(insertDownload), args...)
		if err := oneRow(res, err); err != nil {
			return 0, "", err
		}
		if id, err = res.LastInsertId(); err != nil {
			return 0, "", err
		}
		err = tx.QueryRowContext(ctx, s.q("SELECT batch_id FROM downloads WHERE id = ?"), id).Scan(&batchID)
		return id, batchID, err
	}
	err = tx.QueryRowContext(ctx, s.q(insertDownloadReturning), args...).Scan(&id, &batchID)
	return id, batchID, err
}

// FileFingerprint returns the close's fingerprint; batch.ErrNotStored when none.
func (s *sqlStore) FileFingerprint(ctx context.Context, closeID int64) (batch.Fingerprint, error) {
	fp, err := scanFingerprint(s.db.QueryRowContext(ctx, s.q(selectFingerprint), closeID))
	if err != nil {
		return batch.Fingerprint{}, wrap("file fingerprint", err)
	}
	return fp, nil
}

// ListDownloads returns the batch's latest downloads per close, newest close first.
func (s *sqlStore) ListDownloads(ctx context.Context, batchID string, sinceCloseID int64, perClose int) ([]batch.Download, error) {
	if perClose <= 0 {
		return nil, fmt.Errorf("store: list downloads: perClose %d, want > 0", perClose)
	}
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+downloadColumns+` FROM (
		SELECT `+downloadColumns+`, ROW_NUMBER() OVER (PARTITION BY close_id ORDER BY id DESC) AS n
		FROM downloads WHERE batch_id = ? AND close_id >= ?) d
		WHERE n <= ? ORDER BY close_id DESC, id DESC`), batchID, sinceCloseID, min(perClose, MaxDownloadsPerClose))
	return collect(rows, err, "list downloads", scanDownload)
}

func scanDownload(row scanner) (batch.Download, error) {
	var (
		d              batch.Download
		started, ended int64
		outcome        string
	)
	err := row.Scan(&d.ID, &d.CloseID, &d.BatchID, &d.Caller, &d.RequestID, &started, &ended,
		&d.Bytes, &d.SHA256, &outcome)
	d.StartedAt, d.EndedAt, d.Outcome = fromMicros(started), fromMicros(ended), batch.DownloadOutcome(outcome)
	return d, err
}

func scanFingerprint(row scanner) (batch.Fingerprint, error) {
	var (
		fp       batch.Fingerprint
		recorded int64
	)
	err := row.Scan(&fp.CloseID, &fp.SHA256, &fp.Size, &fp.DownloadID, &recorded)
	fp.RecordedAt = fromMicros(recorded)
	return fp, err
}
