// Package store keeps what the gateway must not forget: the batches it has seen (and so
// their encrypted Batch-URLs), every close attempt, the Concur credentials and the
// idempotency keys of its callers. One interface, [Store], has two implementations: SQLite
// (modernc.org/sqlite, the embedded default) and PostgreSQL (jackc/pgx), chosen by [Open].
// Schema migrations are embedded and applied by Open. Credentials are encrypted at rest
// with AES-GCM (internal/secretbox). Times are kept to the microsecond, in UTC (the zero
// time as 0): compare what is read back with times truncated to the microsecond. Batches
// and their closes are the domain's (internal/batch defines them and the interface it
// needs; this package maps rows to them), and so is the shape of the Concur credentials
// (internal/concur defines Credentials and the CredentialStore it needs); the idempotency
// records are this package's own. It imports, of ours, only internal/batch,
// internal/concur (for those types) and internal/secretbox.
package store

import (
	"context"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/concur"
)

// MaxListBatches caps ListBatches's limit.
const MaxListBatches = 1000

// IdempotencyState is the state of a caller's idempotency key.
type IdempotencyState string

// Idempotency key states.
const (
	IdempotencyInProgress IdempotencyState = "in_progress"
	IdempotencyDone       IdempotencyState = "done"
)

// Idempotency is a caller's idempotency key and the answer it recorded.
type Idempotency struct {
	Caller      string // keys are scoped per caller
	Key         string
	Fingerprint string // what the request was (method, path, query); a reuse must match
	State       IdempotencyState
	RequestID   string    // the request that claimed the key
	LeaseUntil  time.Time // in progress only: after it, the claim is abandoned (crash)
	ExpiresAt   time.Time // after it, the key is forgotten
	Status      int       // done only: the recorded HTTP status
	ContentType string    // done only
	RetryAfter  string    // done only: the recorded Retry-After header, if any
	Body        []byte    // done only: the recorded body (small: JSON)
	CreatedAt   time.Time
}

// Store is everything the gateway keeps. Implementations are safe for concurrent use by
// many goroutines and, for PostgreSQL, by many processes (replicas).
type Store interface {
	batch.Store
	// SetBatchStatus sets a known batch's list status; batch.ErrNotStored for an unknown batch.
	SetBatchStatus(ctx context.Context, id, status string) error

	// LoadCredentials returns the stored credentials; found is false when none were stored.
	LoadCredentials(ctx context.Context) (c concur.Credentials, found bool, err error)
	// UpdateCredentials runs fn (once) while holding the credentials lock, which every process
	// sharing the store respects (a row lock in PostgreSQL, a write transaction in SQLite),
	// so refreshes are serialised across replicas. fn gets the stored credentials (found
	// false when none). When fn returns non-nil, that value is stored (Version incremented,
	// UpdatedAt set) and committed before UpdateCredentials returns it; when fn returns nil,
	// nothing is written and the stored value is returned. An error from fn rolls back.
	// fn must not call the Store. Stored credentials that cannot be decrypted fail with an
	// error wrapping ErrUndecryptable before fn is called.
	UpdateCredentials(ctx context.Context, fn func(cur concur.Credentials, found bool) (*concur.Credentials, error)) (concur.Credentials, error)

	// ClaimIdempotencyKey records rec (State in progress) unless a live record exists for
	// (rec.Caller, rec.Key): live means not expired at now and, when in progress, with an
	// unexpired lease. It returns the live record and claimed=false, or rec and
	// claimed=true. A record that is not live is replaced. rec.Key, rec.LeaseUntil and
	// rec.ExpiresAt must be set.
	ClaimIdempotencyKey(ctx context.Context, rec Idempotency, now time.Time) (existing Idempotency, claimed bool, err error)
	// CompleteIdempotencyKey stores the answer of a claimed key (State done): Status,
	// ContentType, RetryAfter, Body, and ExpiresAt when not zero. The claim must still be
	// rec.RequestID's, in progress: batch.ErrNotStored otherwise (released or taken over).
	CompleteIdempotencyKey(ctx context.Context, rec Idempotency) error
	// ReleaseIdempotencyKey forgets requestID's claim of a key, so the request may be tried
	// again. A recorded answer (State done), and a claim another request took over after
	// the lease ended, are kept.
	ReleaseIdempotencyKey(ctx context.Context, caller, key, requestID string) error
	// PurgeIdempotencyKeys deletes records that expired by now (ExpiresAt <= now, as for
	// ClaimIdempotencyKey) and returns how many.
	PurgeIdempotencyKeys(ctx context.Context, now time.Time) (int64, error)

	// Downloads keeps the downloads of payment files and their fingerprints (downloads.go).
	Downloads

	// Ping reports whether the store is reachable.
	Ping(ctx context.Context) error
	// Close releases the store's connections.
	Close() error
}
