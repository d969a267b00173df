// Package store keeps what the gateway must not forget: the batches it has seen (and so
// their encrypted Batch-URLs), every close attempt, the Concur credentials and the
// idempotency keys of its callers. One interface, [Store], has two implementations: SQLite
// (modernc.org/sqlite, the embedded default) and PostgreSQL (jackc/pgx), chosen by [Open].
// Schema migrations are embedded and applied by Open. Credentials are encrypted at rest
// with AES-GCM (internal/secretbox). Times are kept to the microsecond, in UTC (the zero
// time as 0): compare what is read back with times truncated to the microsecond. The
// package imports nothing else of the gateway but internal/secretbox: the domain and the
// Concur client declare the narrow interfaces they need in terms of its types.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors callers test with errors.Is.
var (
	// ErrNotFound: no such batch (or, from FinishClose, no such attempt; from
	// CompleteIdempotencyKey, no such claim).
	ErrNotFound = errors.New("store: not found")
	// ErrCloseInProgress: another attempt to close the batch is in progress (its lease has
	// not expired), in this process or another one.
	ErrCloseInProgress = errors.New("store: a close of this batch is in progress")
	// ErrUndecryptable: stored credentials cannot be decrypted with the configured key.
	ErrUndecryptable = errors.New("store: stored credentials cannot be decrypted with this key")
)

// Batch statuses as Concur's filtered batch lists tell them. "" means not known.
const (
	StatusOpen   = "OPEN"
	StatusClosed = "CLOSED"
)

// Batch is a batch as the gateway knows it.
type Batch struct {
	ID            string // plain BatchID, primary key
	URL           string // encrypted Batch-URL; never leaves the gateway
	Name          string
	Total         string // decimal as Concur sent it
	Currency      string
	Count         string
	Type          string
	PaymentMethod string
	Status        string    // StatusOpen, StatusClosed or "" (unknown)
	FirstSeen     time.Time // set on first insert, never changed
	LastSeen      time.Time // the last time a batch list held it
}

// BatchQuery selects stored batches for ListBatches. Empty filters match every batch;
// set ones must match exactly.
type BatchQuery struct {
	Status        string // StatusOpen or StatusClosed
	Currency      string
	PaymentMethod string
	Type          string
	// After is the keyset cursor: only batches whose ID sorts after it (byte order) are
	// returned. "" starts at the beginning.
	After string
	Limit int
}

// MaxListBatches caps ListBatches's limit.
const MaxListBatches = 1000

// Outcome is how a close attempt ended.
type Outcome string

// Outcomes of a close attempt.
const (
	OutcomeInProgress Outcome = "in_progress" // running; holds the batch's close lease
	OutcomeClosed     Outcome = "closed"      // Concur closed the batch (or regenerated its file)
	OutcomeFailed     Outcome = "failed"      // Concur answered and did not close it, or it never reached Concur
	OutcomeUnknown    Outcome = "unknown"     // it may have reached Concur: the batch may or may not be closed
	OutcomeRefused    Outcome = "refused"     // the gateway refused it without calling Concur
)

// Close is one attempt to close a batch.
type Close struct {
	ID             int64 // assigned by BeginClose / RecordClose, increasing
	BatchID        string
	Caller         string // the authenticated caller's name ("anonymous" without authentication)
	RequestID      string
	IdempotencyKey string // "" when the caller sent none
	Regenerate     bool   // the caller asked for an explicit regeneration
	Async          bool   // Concur's asynchronous (v1.2) close: it schedules the close
	StartedAt      time.Time
	EndedAt        time.Time // zero while in progress
	LeaseUntil     time.Time // in progress only: after it, the attempt counts as crashed (unknown)
	Outcome        Outcome
	UpstreamStatus int    // Concur's HTTP status, 0 when Concur was not reached or did not answer
	ErrorCode      string // the gateway's problem code when the attempt did not succeed
	Detail         string // caller-safe explanation of the outcome
	BatchStatus    string // Concur's BatchStatus
	Status         string // Concur's Status
	JobQueueKey    string
	FileURL        string // Concur's File-Url; kept server-side
}

// Begun is what BeginClose returns: the new in-progress attempt and what the gateway knew
// about the batch when it began, read in the same transaction.
type Begun struct {
	Attempt Close
	Batch   Batch
	// LastDecisive is the latest finished attempt that reached or may have reached Concur
	// (outcome closed, failed or unknown), nil when none.
	LastDecisive *Close
	// LastClosed is the latest attempt with outcome closed, nil when none.
	LastClosed *Close
}

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
	SeedHash  string
	Version   int64 // incremented by every write; 0 when nothing was ever stored
	UpdatedAt time.Time
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
	// UpsertBatches inserts or updates batches, all in one transaction: every field is
	// overwritten except FirstSeen (kept) and Status (kept when the new one is "", and
	// CLOSED never goes back to OPEN: Concur does not reopen batches, so an OPEN entry
	// after CLOSED is a stale list);
	// LastSeen is set to seenAt. Batches missing from the slice are left as they are.
	UpsertBatches(ctx context.Context, batches []Batch, seenAt time.Time) error
	// GetBatch returns the batch or ErrNotFound.
	GetBatch(ctx context.Context, id string) (Batch, error)
	// ListBatches returns the stored batches that match q, in ascending byte order of their
	// ID (the same order on every dialect: Go's strings.Compare), after q.After, at most
	// q.Limit (which must be positive; it is capped at MaxListBatches). Batches that left
	// Concur's lists are still stored, and so listed, with their last known status.
	ListBatches(ctx context.Context, q BatchQuery) ([]Batch, error)

	// BeginClose records c as in progress, holding the batch's close lease until
	// c.LeaseUntil, unless another attempt of the batch is in progress with an unexpired
	// lease: then it returns ErrCloseInProgress and records nothing. In-progress attempts
	// of the batch whose lease expired before c.StartedAt are first marked unknown (their
	// process died mid-call). The batch must exist (ErrNotFound otherwise).
	BeginClose(ctx context.Context, c Close) (Begun, error)
	// FinishClose ends the attempt c.ID with c's outcome and results (Outcome, EndedAt,
	// UpstreamStatus, ErrorCode, Detail, BatchStatus, Status, JobQueueKey, FileURL). When
	// the outcome is closed and the attempt carries a File-Url or a BatchStatus CLOSED, the
	// batch's Status becomes StatusClosed in the same transaction (an accepted asynchronous
	// close carries neither: the batch list tells when its job has run).
	// The outcome must not be in progress; an attempt already marked unknown (its lease
	// expired) takes c's outcome. ErrNotFound when there is no attempt c.ID.
	FinishClose(ctx context.Context, c Close) error
	// RecordClose inserts an attempt that is already finished (e.g. refused) and returns it
	// with its ID. Its outcome must not be in progress; the batch must exist (ErrNotFound).
	RecordClose(ctx context.Context, c Close) (Close, error)
	// LastClosed returns the batch's latest attempt with outcome closed; ErrNotFound when
	// none.
	LastClosed(ctx context.Context, batchID string) (Close, error)
	// UnknownAfter reports whether an attempt of the batch after attempt afterID has an
	// unknown outcome.
	UnknownAfter(ctx context.Context, batchID string, afterID int64) (bool, error)
	// ListCloses returns the batch's attempts, newest first, at most limit (which must be
	// positive; it is capped at MaxListCloses).
	ListCloses(ctx context.Context, batchID string, limit int) ([]Close, error)
	// SetBatchStatus sets a known batch's status (e.g. CLOSED learned from the batch list);
	// ErrNotFound for an unknown batch.
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
	// rec.RequestID's, in progress: ErrNotFound otherwise (released or taken over).
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
