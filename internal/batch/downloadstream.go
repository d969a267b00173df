package batch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// chunk is the size of one read from Concur and one write to the caller. A stream holds
// two (one read ahead, one withheld), so memory does not grow with the file.
const chunk = 32 << 10

// recordTimeout bounds the recording of a download that ended, whose caller may be gone.
const recordTimeout = 10 * time.Second

// Sink is where a download streams to: the caller's connection.
type Sink interface {
	io.Writer
	// Abort ends the caller's connection now: a Write in progress fails, and so does any
	// later one. It is called at most once, possibly while a Write is in progress.
	Abort()
}

// Errors of a streamed download, for the access log: the caller sees a cut connection.
var (
	// ErrDownloadSlow: the caller (or Concur) moved less than the minimum throughput.
	ErrDownloadSlow = errors.New("download cut: slower than the minimum throughput")
	// ErrDownloadMismatch: Concur's file differed from the close's fingerprint; the
	// download was cut before its last bytes.
	ErrDownloadMismatch = errors.New("download cut: Concur's payment file differs from its fingerprint (the first " +
		"complete download of this close)")
)

// DownloadStream is one download being streamed; see Downloads.Begin.
type DownloadStream struct {
	d       *Downloads
	f       *File
	req     FileRequest
	started time.Time

	fp    Fingerprint
	sum   []byte // fp's SHA-256, decoded
	known bool   // a fingerprint is recorded for the close

	outcome DownloadOutcome
	sent    atomic.Int64 // bytes written to the caller
	digest  string       // hex SHA-256 of Concur's whole file; "" unless read to its end
}

// StreamResult is how a download ended.
type StreamResult struct {
	Outcome string // complete, cut, mismatch or failed (Download*)
	Bytes   int64  // sent to the caller
	// Changed: Concur's file differs from the fingerprint of the close (also when a
	// concurrent first download recorded another one).
	Changed bool
	// RecordErr is a failure to record the download; the caller's answer is not affected.
	RecordErr error
}

// ReprDigest is the Repr-Digest field value (RFC 9530) of the file as first downloaded,
// "" when no fingerprint is known.
func (s *DownloadStream) ReprDigest() string {
	if !s.known {
		return ""
	}
	return reprDigest(s.sum)
}

// Length is the file's length to announce: the fingerprint's when known, else Concur's
// (-1 when unknown).
func (s *DownloadStream) Length() int64 {
	if s.known {
		return s.fp.Size
	}
	return s.f.ContentLength
}

// Stream copies the file to w, hashing what Concur sends. When a fingerprint is known, a
// file that grows beyond its size, or ends with another digest or size, is cut before
// its last chunk reaches the caller: one chunk is always withheld until the next one (or
// the end, verified) arrives. A download slower than the minimum throughput is cut: the
// Concur body is closed and w aborted. The download is recorded (a complete first one
// records the fingerprint) on a context of its own, so also when the caller left. err is
// nil when every byte was sent; a whole file that turned out to differ from a fingerprint
// recorded meanwhile (two first downloads at once) is nil with Changed set.
func (s *DownloadStream) Stream(ctx context.Context, w Sink) (StreamResult, error) {
	var (
		h          = sha256.New()
		cur, spare = make([]byte, chunk), make([]byte, chunk)
		pending    []byte // read, not yet sent
		read       int64
		slow       atomic.Bool
		err        error
	)
	cut := func() {
		slow.Store(true)
		w.Abort()
		_ = s.f.Body.Close()
	}
	stop := sync.OnceFunc(s.watch(cut))
	defer stop() // also when the stream panics: the watcher must not outlive the handler
	err = func() error {
		for {
			n, rerr := s.f.Body.Read(cur)
			if n > 0 {
				_, _ = h.Write(cur[:n]) // never fails
				read += int64(n)
				if s.known && read > s.fp.Size {
					return ErrDownloadMismatch
				}
				if err := s.write(w, pending); err != nil {
					return err
				}
				pending, cur, spare = cur[:n], spare, cur
			}
			switch {
			case errors.Is(rerr, io.EOF):
				s.digest = hex.EncodeToString(h.Sum(nil))
				if s.known && (s.digest != s.fp.SHA256 || read != s.fp.Size) {
					return ErrDownloadMismatch
				}
				return s.write(w, pending)
			case rerr != nil:
				return rerr
			}
		}
	}()
	stop()
	switch {
	case err == nil:
		s.outcome = DownloadComplete
	case errors.Is(err, ErrDownloadMismatch):
		s.outcome = DownloadMismatch
	case slow.Load():
		s.outcome, err = DownloadCut, fmt.Errorf("%w (%d bytes/s over %v)", ErrDownloadSlow, s.d.o.MinRate, s.d.o.RateWindow)
	default:
		s.outcome = DownloadFailed
	}
	return s.record(ctx), err
}

// write sends p, counting what reached the caller.
func (s *DownloadStream) write(w Sink, p []byte) error {
	if len(p) == 0 {
		return nil
	}
	n, err := w.Write(p)
	s.sent.Add(int64(n))
	return err
}

// watch cuts the download when less than MinRate×RateWindow bytes reached the caller
// within a window. stop ends the watch, and returns once it has ended.
func (s *DownloadStream) watch(cut func()) (stop func()) {
	o := s.d.o
	if o.MinRate <= 0 {
		return func() {}
	}
	need := int64(float64(o.MinRate) * o.RateWindow.Seconds())
	ticks, stopTicks := o.Ticker(o.RateWindow)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer stopTicks()
		last := int64(0)
		for {
			select {
			case <-done:
				return
			case <-ticks:
				n := s.sent.Load()
				if n-last < need {
					cut()
					return
				}
				last = n
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// record stores the download's end on a context that outlives the caller's.
func (s *DownloadStream) record(ctx context.Context) StreamResult {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	rec, fp, found, err := s.d.st.RecordDownload(ctx, Download{CloseID: s.f.CloseID, Caller: s.req.Caller,
		RequestID: s.req.RequestID, StartedAt: s.started, EndedAt: s.d.o.Now(), Bytes: s.sent.Load(),
		SHA256: s.digest, Outcome: s.outcome})
	res := StreamResult{Outcome: string(s.outcome), Bytes: s.sent.Load(), RecordErr: err}
	if err == nil {
		res.Outcome = string(rec.Outcome)
		res.Changed = rec.Outcome == DownloadMismatch || (found && s.digest != "" && fp.SHA256 != s.digest)
	} else {
		res.Changed = s.outcome == DownloadMismatch
	}
	s.d.obs.DownloadEnded(res.Outcome)
	return res
}
