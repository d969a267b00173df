package batch

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// DownloadOutcome is how a download of a payment file ended.
type DownloadOutcome string

// Outcomes of a download.
const (
	DownloadComplete DownloadOutcome = "complete" // every byte reached the caller, and matched the fingerprint if one was known
	DownloadCut      DownloadOutcome = "cut"      // the gateway ended it: the caller read too slowly
	DownloadMismatch DownloadOutcome = "mismatch" // Concur's file differed from the close's fingerprint
	DownloadFailed   DownloadOutcome = "failed"   // Concur's stream broke, or the caller left
)

// Download is one download of the payment file of a close.
type Download struct {
	ID        int64 // assigned by RecordDownload, increasing
	CloseID   int64 // the close whose File-Url was streamed
	BatchID   string
	Caller    string
	RequestID string
	StartedAt time.Time
	EndedAt   time.Time
	Bytes     int64  // sent to the caller (all of the file when complete)
	SHA256    string // hex SHA-256 of Concur's whole file, when it was read to its end; "" otherwise
	Outcome   DownloadOutcome
}

// Fingerprint is what the payment file of a close is known to be: the SHA-256 and size of
// its first complete download.
type Fingerprint struct {
	CloseID    int64
	SHA256     string // hex
	Size       int64
	DownloadID int64 // the download that recorded it
	RecordedAt time.Time
}

// DownloadStore is what downloads need from the store.
type DownloadStore interface {
	RecordDownload(ctx context.Context, d Download) (Download, Fingerprint, bool, error)
	FileFingerprint(ctx context.Context, closeID int64) (Fingerprint, error)
	ListDownloads(ctx context.Context, batchID string, sinceCloseID int64, perClose int) ([]Download, error)
}

// DownloadObserver is told what downloads do, for metrics. Its methods must be quick and
// safe for concurrent use.
type DownloadObserver interface {
	// DownloadAdmitted and DownloadReleased bracket every download that got a slot.
	DownloadAdmitted()
	DownloadReleased()
	// DownloadRefused is told of a download refused for the cap it hit: "caller" or "total".
	DownloadRefused(limit string)
	// DownloadEnded is told how every streamed download ended (Download*): "cut" is a
	// download cut for its slowness.
	DownloadEnded(outcome string)
}

type nopDownloadObserver struct{}

func (nopDownloadObserver) DownloadAdmitted()      {}
func (nopDownloadObserver) DownloadReleased()      {}
func (nopDownloadObserver) DownloadRefused(string) {}
func (nopDownloadObserver) DownloadEnded(string)   {}

// DownloadOptions bound the downloads of payment files.
type DownloadOptions struct {
	// PerCaller and Max cap the downloads running at once for one caller and in all (in
	// this process); 0 is no cap.
	PerCaller, Max int
	// MinRate is the least throughput, in bytes per second averaged over RateWindow, of a
	// download once its headers are sent; a slower one is cut. 0 is no minimum.
	MinRate int64
	// RateWindow is the window MinRate is averaged over; default 30 s.
	RateWindow time.Duration
	// RetryAfter is the Retry-After of a refused download; default 5 s.
	RetryAfter time.Duration
	// PerClose is how many downloads History keeps per close, newest first; default 20.
	PerClose int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Ticker ticks every d until stop is called; nil means a time.Ticker. Tests drive the
	// throughput check with it.
	Ticker func(d time.Duration) (ticks <-chan time.Time, stop func())
	// Observer is told of admissions, refusals and outcomes; nil: nobody.
	Observer DownloadObserver
}

// Downloads admits, streams and records the downloads of payment files. A download is
// admitted under two caps (per caller, in all) before Concur is called; once streaming it
// must keep a minimum throughput; and it is verified against the fingerprint of the close
// it streams (the SHA-256 and size of that close's first complete download).
type Downloads struct {
	st  DownloadStore
	o   DownloadOptions
	obs DownloadObserver

	mu       sync.Mutex
	byCaller map[string]int
	total    int
}

// NewDownloads returns the downloads of payment files kept in st. A nil st keeps
// nothing: no fingerprint is ever known, and no download is recorded.
func NewDownloads(st DownloadStore, o DownloadOptions) *Downloads {
	if st == nil {
		st = nopDownloadStore{}
	}
	if o.RateWindow <= 0 {
		o.RateWindow = 30 * time.Second
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = 5 * time.Second
	}
	if o.PerClose <= 0 {
		o.PerClose = 20
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Ticker == nil {
		o.Ticker = func(d time.Duration) (<-chan time.Time, func()) {
			t := time.NewTicker(d)
			return t.C, t.Stop
		}
	}
	d := &Downloads{st: st, o: o, obs: o.Observer, byCaller: map[string]int{}}
	if d.obs == nil {
		d.obs = nopDownloadObserver{}
	}
	return d
}

type nopDownloadStore struct{}

func (nopDownloadStore) RecordDownload(_ context.Context, d Download) (Download, Fingerprint, bool, error) {
	return d, Fingerprint{}, false, nil
}

func (nopDownloadStore) FileFingerprint(context.Context, int64) (Fingerprint, error) {
	return Fingerprint{}, ErrNotStored
}

func (nopDownloadStore) ListDownloads(context.Context, string, int64, int) ([]Download, error) {
	return nil, nil
}

// Admit takes one of caller's download slots, or refuses with CodeTooManyDownloads (and a
// Retry-After) when the caller, or the gateway, runs as many downloads as allowed. release
// gives the slot back; calling it again does nothing.
func (d *Downloads) Admit(caller string) (release func(), err error) {
	d.mu.Lock()
	limit := ""
	switch {
	case d.o.PerCaller > 0 && d.byCaller[caller] >= d.o.PerCaller:
		limit = "caller"
	case d.o.Max > 0 && d.total >= d.o.Max:
		limit = "total"
	default:
		d.byCaller[caller]++
		d.total++
	}
	d.mu.Unlock()
	switch limit {
	case "caller":
		d.obs.DownloadRefused(limit)
		return nil, &Error{Code: CodeTooManyDownloads, RetryAfter: d.o.RetryAfter,
			Detail: fmt.Sprintf("this caller is already downloading %d payment files, as many as allowed at once; "+
				"try again when one has finished", d.o.PerCaller)}
	case "total":
		d.obs.DownloadRefused(limit)
		return nil, &Error{Code: CodeTooManyDownloads, RetryAfter: d.o.RetryAfter,
			Detail: "the gateway is streaming as many payment files as it allows at once; try again shortly"}
	}
	d.obs.DownloadAdmitted()
	var once sync.Once
	return func() { once.Do(func() { d.release(caller) }) }, nil
}

func (d *Downloads) release(caller string) {
	d.mu.Lock()
	if d.byCaller[caller]--; d.byCaller[caller] <= 0 {
		delete(d.byCaller, caller)
	}
	d.total--
	d.mu.Unlock()
	d.obs.DownloadReleased()
}

// History returns the recorded downloads of the batch's closes from sinceCloseID on, by
// close id, newest first and at most DownloadOptions.PerClose per close.
func (d *Downloads) History(ctx context.Context, batchID string, sinceCloseID int64) (map[int64][]Download, error) {
	rows, err := d.st.ListDownloads(ctx, batchID, sinceCloseID, d.o.PerClose)
	if err != nil {
		return nil, storeError(err)
	}
	out := map[int64][]Download{}
	for _, r := range rows {
		out[r.CloseID] = append(out[r.CloseID], r)
	}
	return out, nil
}

// Begin prepares the download of f, the file of f.CloseID, for req: it reads the close's
// fingerprint. When Concur announces a length other than the fingerprint's, the file has
// changed: the download is recorded as a mismatch and refused with CodeFileChanged before
// anything is sent. Begin makes f.Body safe to close more than once and concurrently with
// a Read (a download cut for slowness closes it); the caller still closes it.
func (d *Downloads) Begin(ctx context.Context, f *File, req FileRequest) (*DownloadStream, error) {
	f.Body = &onceCloser{ReadCloser: f.Body}
	s := &DownloadStream{d: d, f: f, req: req, started: d.o.Now()}
	fp, err := d.st.FileFingerprint(ctx, f.CloseID)
	switch {
	case errors.Is(err, ErrNotStored):
	case err != nil:
		return nil, storeError(err)
	default:
		sum, err := hex.DecodeString(fp.SHA256)
		if err != nil || len(sum) != 32 || fp.Size < 0 {
			return nil, &Error{Code: CodeInternal, Err: fmt.Errorf("close %d: a malformed fingerprint is stored", f.CloseID)}
		}
		s.fp, s.sum, s.known = fp, sum, true
	}
	if s.known && f.ContentLength >= 0 && f.ContentLength != s.fp.Size {
		s.outcome = DownloadMismatch
		res := s.record(ctx)
		return nil, &Error{Code: CodeFileChanged, Err: res.RecordErr,
			Detail: fmt.Sprintf("Concur's payment file of batch %s is not the one first downloaded from this close: "+
				"Concur announced %d bytes, the first complete download had %d; the change is recorded",
				req.ID, f.ContentLength, s.fp.Size)}
	}
	return s, nil
}

// onceCloser closes its ReadCloser once, however often and from however many goroutines
// Close is called.
type onceCloser struct {
	io.ReadCloser
	once sync.Once
	err  error
}

func (c *onceCloser) Close() error {
	c.once.Do(func() { c.err = c.ReadCloser.Close() })
	return c.err
}

// reprDigest is the Repr-Digest field value of a SHA-256 (RFC 9530).
func reprDigest(sum []byte) string {
	return "sha-256=:" + base64.StdEncoding.EncodeToString(sum) + ":"
}
