// Package batch is the gateway's domain: what a Concur payment batch is, what closing one
// yields, the error vocabulary every layer speaks, and the service that closes a batch by
// its plain BatchID and lists the batches the gateway knows.
//
// It imports nothing of ours: it declares what it needs, and the others implement it. The
// Concur client implements [Upstream], the store implements [Store] (mapping its rows to
// this package's types), and the HTTP layer calls [Service]. internal/imports_test.go
// holds the rule for every package.
package batch

import (
	"context"
	"io"
	"sync"
	"time"
)

// ListStatus filters the batch list. Concur takes it as a path segment.
type ListStatus string

// The batch-list filters Concur knows.
const (
	ListAll    ListStatus = ""
	ListOpen   ListStatus = "OPEN"
	ListClosed ListStatus = "CLOSED"
)

// Summary is one entry of Concur's batch list. URL is the encrypted Batch-URL: it is the
// only way to address the batch upstream and never leaves the gateway.
type Summary struct {
	ID            string // unencrypted BatchID, as internal systems know it
	Name          string
	Total         string // decimal as Concur sent it, e.g. "1289.40"
	Currency      string // ISO 4217
	Count         string // number of reports, as Concur sent it
	Type          string // "Employee" | "Card Program"
	PaymentMethod string
	URL           string // encrypted Batch-URL, opaque to the domain
}

// CloseResult is Concur's answer to a close. Every field is optional upstream; values are
// passed through as sent (trimmed), so undocumented statuses are not lost.
type CloseResult struct {
	BatchID     string `json:"-"` // the plain BatchID; set on recorded results
	BatchStatus string // e.g. "CLOSED"
	Status      string // e.g. "SUCCESS"
	JobQueueKey string
	FileURL     string // Concur's File-Url; opaque, kept server-side
	// CorrelationID is the concur-correlationid header of Concur's answer (not its XML,
	// hence no JSON in the golden files): what Concur's support asks for.
	CorrelationID string `json:"-"`
	// Set by the domain, not by Concur (hence no JSON in the golden files).
	ClosedAt    time.Time `json:"-"`
	Regenerated bool      `json:"-"` // the batch was already closed: Concur regenerated its payment file
	// Accepted: an asynchronous (v1.2) close that Concur scheduled; the batch is closed
	// when its job has run, and its File-Url is obtained on the first download.
	Accepted bool `json:"-"`
}

// File is a payment file being streamed from Concur. The caller must close Body.
type File struct {
	// CloseID is the recorded close whose File-Url this file was downloaded from (set by
	// the Service; 0 from the Upstream).
	CloseID            int64
	Body               io.ReadCloser
	ContentType        string // as Concur sent it, or sniffed when Concur sent none
	ContentLength      int64  // -1 when unknown
	ContentDisposition string // as Concur sent it; may be empty
}

// Upstream is what the domain needs from Concur. Implementations own transport,
// credentials and XML, and return *Error values with upstream codes for every failure.
type Upstream interface {
	// ListBatches reads the batch list, filtered by status when status is not ListAll, and
	// hands each summary to fn as it is read, in the list's order, so that a list of any
	// length is never held whole. A list that fails while it is read may be tried again
	// from its start: fn may then be handed summaries it already had. An error of fn stops
	// the list, and ListBatches returns it as is. ListBatches returns nil only once the
	// list was read completely.
	ListBatches(ctx context.Context, status ListStatus, fn func(Summary) error) error
	// CloseBatch closes (v1.1, synchronous) the batch at the encrypted batchURL.
	CloseBatch(ctx context.Context, batchURL string) (CloseResult, error)
	// CloseBatchAsync schedules the close (v1.2, asynchronous) of the batch at batchURL;
	// the answer has a Status and a JobQueueKey, no File-Url.
	CloseBatchAsync(ctx context.Context, batchURL string) (CloseResult, error)
	// OpenFile starts the download of a File-Url returned by CloseBatch.
	OpenFile(ctx context.Context, fileURL string) (*File, error)
}

// MaxCorrelationID bounds a correlation id: the Upstream drops a concur-correlationid
// header longer than this, or with anything but visible ASCII, since it comes from outside
// and reaches logs and the store.
const MaxCorrelationID = 128

// Correlations collects the correlation ids (concur-correlationid) of the Concur answers
// got on a context's behalf, for the log line of the request that made the calls: the
// Upstream notes each answer's with NoteCorrelation, whatever its status. It keeps the
// first maxCorrelations and counts the rest. Safe for concurrent use: a list read under a
// single flight may still note into a request that has ended.
type Correlations struct {
	mu   sync.Mutex
	ids  []string
	more int
}

const maxCorrelations = 16 // a list read twice, retried, and a close: well within

type correlationsKey struct{}

// WithCorrelations returns a copy of ctx whose Concur answers are noted in the returned
// Correlations. A context that already carries one gets a fresh one: the inner notes only
// what is asked for within it.
func WithCorrelations(ctx context.Context) (context.Context, *Correlations) {
	c := &Correlations{}
	return context.WithValue(ctx, correlationsKey{}, c), c
}

// NoteCorrelation notes id, the correlation id of a Concur answer, in ctx's Correlations;
// nothing without one, or for "".
func NoteCorrelation(ctx context.Context, id string) {
	c, _ := ctx.Value(correlationsKey{}).(*Correlations)
	if c == nil || id == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.ids) < maxCorrelations {
		c.ids = append(c.ids, id)
	} else {
		c.more++
	}
}

// IDs returns the ids noted so far, in the order of the answers, and how many more were
// not kept.
func (c *Correlations) IDs() (ids []string, more int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.ids...), c.more
}
