package concursim

import (
	"net/http"
	"time"
)

// msgNoReports is Concur's exact answer when closing a batch without reports.
const msgNoReports = "The batch you attempted to close does not contain any reports. " +
	"If you recently approved reports for payment, wait 30 minutes and try again."

const msgInvalidBatch = "The Batch ID is invalid."

// refuseChunked answers 400 to a request whose body has no declared length, as Concur
// does for chunked transfer encoding. It runs before authentication, like the front end
// that enforces it upstream.
func (s *Sim) refuseChunked(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TransferEncoding) > 0 || r.ContentLength == -1 {
			s.count(func(st *Stats) { st.ChunkedRejected++ })
			s.writeError(w, http.StatusBadRequest, "chunked transfer encoding is not supported")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// handleClose is POST {v1.1|v1.2}/batch/{encrypted}/close.
func (s *Sim) handleClose(w http.ResponseWriter, r *http.Request) {
	version := r.PathValue("version")
	if version != "v1.1" && version != "v1.2" {
		s.writeError(w, http.StatusNotFound, "The requested resource was not found.")
		return
	}
	key := r.PathValue("key")
	if !validKey(key) {
		s.writeError(w, http.StatusBadRequest, msgInvalidBatch)
		return
	}

	s.mu.Lock()
	b, ok := s.byKey[key]
	switch {
	case !ok:
		s.mu.Unlock()
		s.writeError(w, http.StatusNotFound, msgInvalidBatch)
		return
	case b.Count == 0:
		s.mu.Unlock()
		s.writeError(w, http.StatusInternalServerError, msgNoReports)
		return
	}
	if version == "v1.2" {
		s.stats.AsyncCloses[b.ID]++
		s.scheduleCloseLocked(b)
		s.mu.Unlock()
		// Newer pages list two members for v1.2; .NET sends the empty File-Url as i:nil.
		writeBatchStatus(w, "", "", "SUCCESS", newJobQueueKey())
		return
	}

	if b.Closed {
		s.stats.Regenerations[b.ID]++
	}
	b.Closed = true
	jobRunKey := newKey(32)
	s.files[jobRunKey] = b
	s.stats.Closes[b.ID]++
	s.mu.Unlock()

	writeBatchStatus(w, "CLOSED", s.origin(r)+apiPrefix+"v1.1/batch/"+jobRunKey+"/file", "SUCCESS", newJobQueueKey())
}

// writeBatchStatus sends a close answer: root BatchStatus, then its members in Concur's
// order. An empty batchStatus is left out; an empty fileURL is sent as i:nil.
func writeBatchStatus(w http.ResponseWriter, batchStatus, fileURL, status, jobQueueKey string) {
	var d xmlDoc
	d.open("BatchStatus", "xmlns", nsPaymentBatch, "xmlns:i", nsXSI)
	d.nl()
	if batchStatus != "" {
		d.b.WriteString("    ")
		d.elem("BatchStatus", batchStatus)
		d.nl()
	}
	d.b.WriteString("    ")
	if fileURL == "" {
		d.nilElem("File-Url")
	} else {
		d.elem("File-Url", fileURL)
	}
	d.nl()
	d.b.WriteString("    ")
	d.elem("Status", status)
	d.nl()
	d.b.WriteString("    ")
	d.elem("JobQueueKey", jobQueueKey)
	d.nl()
	d.close("BatchStatus")
	writeXML(w, http.StatusOK, &d)
}

// scheduleCloseLocked closes b after AsyncCloseDelay. s.mu must be held.
func (s *Sim) scheduleCloseLocked(b *batchState) {
	if s.opts.AsyncCloseDelay < 0 || s.shutdown {
		b.Closed = true
		return
	}
	var t *time.Timer
	t = time.AfterFunc(s.opts.AsyncCloseDelay, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, pending := s.timers[t]; !pending {
			return // stopped by Close after it had already fired
		}
		delete(s.timers, t)
		b.Closed = true
	})
	s.timers[t] = struct{}{}
}
