package httpapi

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/finplat/payment-batch-gateway/api"
	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// Downloads is what the file and closes handlers need of the downloads of payment files
// (batch.Downloads).
type Downloads interface {
	// Admit takes one of the caller's download slots, or refuses (too_many_downloads).
	Admit(caller string) (release func(), err error)
	// Begin prepares the download of f: its fingerprint, if known.
	Begin(ctx context.Context, f *batch.File, req batch.FileRequest) (*batch.DownloadStream, error)
	// History is the recorded downloads of the batch's closes from sinceCloseID on.
	History(ctx context.Context, batchID string, sinceCloseID int64) (map[int64][]batch.Download, error)
}

// errAborted is a write to a download the gateway has cut.
var errAborted = errors.New("the download was cut by the gateway")

// fileSink writes a payment file to the caller, moving the write deadline forward per
// chunk: a slow but live caller may take as long as it needs per chunk (the minimum
// throughput aside), a stalled one is dropped after timeout. Abort sets the deadline in
// the past, which fails a Write in progress; the lock keeps a Write from moving the
// deadline forward again after that.
type fileSink struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration

	mu      sync.Mutex
	aborted bool
}

func newFileSink(w http.ResponseWriter, timeout time.Duration) *fileSink {
	return &fileSink{w: w, rc: http.NewResponseController(w), timeout: timeout}
}

func (s *fileSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	if s.aborted {
		s.mu.Unlock()
		return 0, errAborted
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout)) // unsupported only in tests' recorders
	s.mu.Unlock()
	return s.w.Write(p)
}

// flush sends what is buffered, the headers at first.
func (s *fileSink) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	_ = s.rc.Flush() // unsupported only in tests' recorders
}

func (s *fileSink) Abort() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.aborted = true
	_ = s.rc.SetWriteDeadline(time.Unix(1, 0))
}

// logDownload notes what the access log's line cannot say: a whole file that differs
// from the fingerprint a concurrent first download recorded, and a download that could
// not be recorded. Never the File-Url.
func logDownload(ctx context.Context, id string, closeID int64, res batch.StreamResult, err error) {
	log := zerolog.Ctx(ctx)
	if res.Changed && err == nil {
		log.Warn().Str("batchId", id).Int64("closeId", closeID).Str("outcome", res.Outcome).Int64("bytes", res.Bytes).
			Msg("Concur's payment file differs from the fingerprint another download recorded meanwhile: " +
				"recorded as a mismatch")
	}
	if res.RecordErr != nil {
		log.Error().Err(res.RecordErr).Str("batchId", id).Int64("closeId", closeID).Str("outcome", res.Outcome).
			Msg("the download could not be recorded")
	}
}

// fileDownloads is the wire form of a close's recorded downloads.
func fileDownloads(ds []batch.Download) []api.FileDownload {
	if len(ds) == 0 {
		return nil
	}
	out := make([]api.FileDownload, len(ds))
	for i, d := range ds {
		out[i] = api.FileDownload{Caller: d.Caller, RequestID: d.RequestID, At: timeString(d.StartedAt),
			EndedAt: timeString(d.EndedAt), Bytes: d.Bytes, SHA256: d.SHA256, Outcome: string(d.Outcome)}
	}
	return out
}
