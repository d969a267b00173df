// Package store keeps what the gateway must not forget: the batches it has seen (and so
// their encrypted Batch-URLs), every close attempt, the Concur credentials and the
// idempotency keys of its callers. One interface, [Store], has two implementations: SQLite
// (modernc.org/sqlite, the embedded default) and PostgreSQL (jackc/pgx), chosen by [Open].
// Schema migrations are embedded and applied by Open. Credentials are encrypted at rest
// with AES-GCM (internal/secretbox). Times are kept to the microsecond, in UTC (the zero
// time as 0): compare what is read back with times truncated to the microsecond. Batches
// and their closes are the domain's (internal/batch defines them and the interface it
// needs; this package maps rows to them); the credentials and idempotency records are
// this package's own. It imports, of ours, only the domain and internal/secretbox.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// Errors callers test with errors.Is.
var (
	// ErrUndecryptable: stored credentials cannot be decrypted with the configured key.
	ErrUndecryptable = errors.New("store: stored credentials cannot be decrypted with this key")
)

// MaxListBatches caps ListBatches's limit.
const MaxListBatches = 1000

// Credentials are the gateway's Concur OAuth grant. Tokens are encrypted at rest.
type Credentials struct {
	RefreshToken   string    // the newest refresh token: the one to redeem next
	RefreshExpiry  time.Time // zero when unknown
	AccessToken    string    // the newest access token, shared by replicas; "" when none
	AccessExpiry   time.Time // zero when unknown
	AccessLifetime time.Duration
	Geolocation    string
	// SeedHash is the hex SHA-256 of the configured refresh token this chain of rotations
	// started from: when the configured token changes (a person re-authorised the
	// gateway), the configured one wins over the stored one.
	SeedHash string
	// Redeeming is the marker of a refresh token being presented to Concur (zero: none),
	// committed before the token call so that other replicas wait, cleared with the grant.
	Redeeming Redemption
	// SpentSeeds and SpentTokens list, space-separated and newest first, the hex SHA-256
	// of the seeds that started a chain and of the latest refresh tokens redeemed. The
	// store keeps them as given; the Concur client decides what goes in.
	SpentSeeds  string
	SpentTokens string
	Version     int64 // incremented by every write; 0 when nothing was ever stored
	UpdatedAt   time.Time
}

// Redemption is a replica's announcement that it is presenting a refresh token to Concur.
// Its lease runs on the database's clock, the one clock every replica shares.
type Redemption struct {
	TokenHash string // hex SHA-256 of the refresh token being redeemed; "" for no marker
	// Lease, when positive on a write with TokenHash set, (re)starts the lease: Until
	// becomes the database's now plus Lease. Otherwise Until is written as given. Reads
	// leave it 0.
	Lease time.Duration
	Until time.Time // read: when the lease ends, on the database's clock
	Live  bool      // read: the lease had not ended when the row was read (database's clock)
}

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
	LoadCredentials(ctx context.Context) (c Credentials, found bool, err error)
	// UpdateCredentials runs fn (once) while holding the credentials lock, which every process
	// sharing the store respects (a row lock in PostgreSQL, a write transaction in SQLite),
	// so refreshes are serialised across replicas. fn gets the stored credentials (found
	// false when none). When fn returns non-nil, that value is stored (Version incremented,
	// UpdatedAt set) and committed before UpdateCredentials returns it; when fn returns nil,
	// nothing is written and the stored value is returned. An error from fn rolls back.
	// fn must not call the Store. Stored credentials that cannot be decrypted fail with an
	// error wrapping ErrUndecryptable before fn is called.
	UpdateCredentials(ctx context.Context, fn func(cur Credentials, found bool) (*Credentials, error)) (Credentials, error)

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
