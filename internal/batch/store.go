package batch

import (
	"context"
	"errors"
	"time"
)

// The domain's words for what it keeps. internal/store maps its rows to these types and
// defines none of its own; the domain never imports the store.

// Errors a Store returns, tested with errors.Is.
var (
	// ErrNotStored: no such batch or attempt.
	ErrNotStored = errors.New("store: not found")
	// ErrStateChanged: the batch's close state moved on since it was read (another close,
	// in this process or another replica, changed it first): read it again and decide again.
	ErrStateChanged = errors.New("store: the batch's close state changed since it was read")
)

// Batch statuses as Concur's filtered batch lists tell them. "" means not known.
const (
	StatusOpen   = "OPEN"
	StatusClosed = "CLOSED"
)

// Batch is a batch as the gateway knows it: what Concur's list said of it, and the state
// of its close.
type Batch struct {
	ID            string // plain BatchID, primary key
	URL           string // encrypted Batch-URL; never leaves the gateway
	Name          string
	Total         string // decimal as Concur sent it
	Currency      string
	Count         string
	Type          string
	PaymentMethod string
	Status        string    // which of Concur's lists held it: StatusOpen, StatusClosed or "" (unknown)
	FirstSeen     time.Time // set on first insert, never changed
	LastSeen      time.Time // the last time a batch list held it
	Close         CloseState
}

// State is where a batch's close stands (close.go has the diagram).
type State string

// The states of a batch's close.
const (
	// StateOpen: no close of the gateway is known to have taken effect.
	StateOpen State = "open"
	// StateClosing: an attempt holds the batch's lease and may be talking to Concur.
	StateClosing State = "closing"
	// StateScheduled: Concur accepted (or may have accepted) an asynchronous close whose
	// job has not been seen to run; the finisher watches the batch list for it.
	StateScheduled State = "scheduled"
	// StateClosed: Concur closed the batch.
	StateClosed State = "closed"
	// StateUnknown: a close may have reached Concur and its answer was lost; Concur's
	// batch list settles it once SettleUntil has passed.
	StateUnknown State = "unknown"
)

// CloseState is the persisted state of a batch's close. Every time in it is the
// database's clock, never a replica's.
type CloseState struct {
	State   State
	Version int64 // incremented by every change: the compare in compare-and-set
	// Prev is, while closing, the state to go back to when the attempt has no effect.
	Prev State
	// CloseID is, while closing, the close that holds the lease.
	CloseID    int64
	LeaseUntil time.Time // closing: after it, the close counts as crashed
	// SettleUntil is, when unknown, the time before which Concur's batch list is not
	// trusted to tell whether the lost close went through; when scheduled, the horizon
	// by which Concur's job must have run.
	SettleUntil time.Time
	CheckAt     time.Time // scheduled: when the finisher next reads the batch list
	FileClose   int64     // closed: the close whose File-Url is the batch's file; 0 when none is known
	// Now is the database's clock when the state was read (not stored).
	Now time.Time
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

// Outcome is how a close attempt ended.
type Outcome string

// Outcomes of a close attempt.
const (
	OutcomeInProgress Outcome = "in_progress" // running; holds the batch's close lease
	OutcomeClosed     Outcome = "closed"      // Concur closed the batch (or regenerated its file), or accepted an asynchronous close
	OutcomeFailed     Outcome = "failed"      // Concur answered and did not close it
	OutcomeUnknown    Outcome = "unknown"     // it may have reached Concur: the batch may or may not be closed
	OutcomeRefused    Outcome = "refused"     // nothing reached Concur: the gateway refused it, or it could not be sent
)

// Close is one attempt to close a batch: the audit trail's row.
type Close struct {
	ID             int64 // assigned by the store, increasing
	BatchID        string
	Caller         string // the authenticated caller's name ("anonymous" without authentication; System for the gateway's own)
	RequestID      string
	IdempotencyKey string // "" when the caller sent none
	Regenerate     bool   // the close was made on a closed batch on purpose: Concur regenerates its file
	Async          bool   // Concur's asynchronous (v1.2) close: it schedules the close
	StartedAt      time.Time
	EndedAt        time.Time // zero while in progress
	LeaseUntil     time.Time // in progress only
	Outcome        Outcome
	UpstreamStatus int // Concur's HTTP status, 0 when Concur was not reached or did not answer
	// UpstreamCorrelationID is the concur-correlationid of the Concur answer that decided
	// the outcome (a success's, an error's, or a 200's that could not be read); "" when none.
	UpstreamCorrelationID string
	ErrorCode             string // the gateway's problem code when the attempt did not succeed
	Detail                string // caller-safe explanation of the outcome
	BatchStatus           string // Concur's BatchStatus
	Status                string // Concur's Status
	JobQueueKey           string
	FileURL               string // Concur's File-Url; kept server-side
	// Claim is a random token drawn by the request that began the attempt: only it can
	// prove the attempt is its own (request ids come from callers and may repeat).
	Claim string `json:"-"`
}

// Result is what Concur answered the close, as the domain keeps it (ClosedAt is when the
// close ended, on the database's clock).
func (c Close) Result() CloseResult {
	return CloseResult{
		BatchID: c.BatchID, BatchStatus: c.BatchStatus, Status: c.Status, JobQueueKey: c.JobQueueKey, FileURL: c.FileURL,
		CorrelationID: c.UpstreamCorrelationID, ClosedAt: c.EndedAt, Regenerated: c.Regenerate && c.Caller != System, // as asked for with ?regenerate=true
	}
}

// System is the caller recorded for the closes the gateway makes on its own: the v1.1
// close that obtains the File-Url once an asynchronous close has run.
const System = "gateway"

// Change is one transition of a batch's close state, applied by Store.Apply in one
// transaction: the state moves from the version it was decided on to To, and the
// attempts Begin and End are written with it.
type Change struct {
	BatchID string
	// From is the version of the close state the change was decided on; the change
	// fails with ErrStateChanged when the stored version differs.
	From int64
	// To is the new state (its Version and Now are ignored). When Begin is set, To.CloseID
	// and To.LeaseUntil are Begin's. Nil leaves the state as it is (From is then ignored).
	To *CloseState
	// Begin, when set, is inserted as a new attempt (in progress when its Outcome is, or
	// ended); its ID is assigned.
	Begin *Close
	// End, when set, ends the attempt End.ID: its outcome and results are written.
	End *Close
}

// Store is what the domain keeps (internal/store implements it, on SQLite and
// PostgreSQL). Its methods are safe for concurrent use by many goroutines and processes.
type Store interface {
	// UpsertBatches inserts or updates what Concur's list says of batches, in one
	// transaction: FirstSeen is kept, a status "" keeps the stored one, and CLOSED never
	// goes back to OPEN; the close state is never touched. LastSeen is set to seenAt.
	UpsertBatches(ctx context.Context, batches []Batch, seenAt time.Time) error
	// GetBatch returns the batch with its close state (Close.Now set), or ErrNotStored.
	GetBatch(ctx context.Context, id string) (Batch, error)
	// ListBatches returns the batches that match q, in ascending byte order of their ID.
	ListBatches(ctx context.Context, q BatchQuery) ([]Batch, error)
	// Apply applies c in one transaction and returns the batch as it then is, with the
	// IDs of c.Begin assigned. Times in c are the database's clock (derived from a
	// Close.Now the store gave).
	Apply(ctx context.Context, c Change) (Batch, Close, error)
	// GetClose returns the attempt, or ErrNotStored.
	GetClose(ctx context.Context, id int64) (Close, error)
	// CloseByKey returns the caller's latest attempt on the batch that carried the
	// idempotency key, or ErrNotStored.
	CloseByKey(ctx context.Context, batchID, caller, key string) (Close, error)
	// ListCloses returns the batch's attempts, newest first, at most limit.
	ListCloses(ctx context.Context, batchID string, limit int) ([]Close, error)
	// DueScheduled returns up to limit batches the finisher has work for, by the
	// database's clock: scheduled with CheckAt passed, unknown with SettleUntil passed,
	// closing with LeaseUntil passed.
	DueScheduled(ctx context.Context, limit int) ([]Batch, error)
}
