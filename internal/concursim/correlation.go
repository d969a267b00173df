package concursim

import (
	"net/http"
	"strings"
)

// Concur answers carry a concur-correlationid header, which its support asks for. The
// simulator sends a fresh GUID-shaped one on every answer of the token endpoint and the
// API (errors, faults and chaos answers included; a dropped connection has none) and keeps
// the last maxCorrelationsKept in Stats.CorrelationIDs, so a test can match what a client
// logged or stored.

// HeaderCorrelationID is Concur's correlation header.
const HeaderCorrelationID = "concur-correlationid"

// maxCorrelationsKept bounds Stats.CorrelationIDs.
const maxCorrelationsKept = 100

// Correlation is one correlation id sent, with the operation (token, list, close, file or
// other) and status it answered.
type Correlation struct {
	ID     string `json:"id"`
	Op     string `json:"op"`
	Status int    `json:"status"`
}

// correlated gives each answer of next a fresh correlation id, recorded when the answer's
// status is sent.
func (s *Sim) correlated(op string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := strings.ToLower(newGUID())
		w.Header().Set(HeaderCorrelationID, id)
		next.ServeHTTP(&correlatedWriter{ResponseWriter: w, record: func(status int) {
			s.mu.Lock()
			defer s.mu.Unlock()
			ids := append(s.stats.CorrelationIDs, Correlation{ID: id, Op: op, Status: status})
			if len(ids) > maxCorrelationsKept {
				ids = append(ids[:0:0], ids[len(ids)-maxCorrelationsKept:]...)
			}
			s.stats.CorrelationIDs = ids
		}}, r)
	})
}

// correlatedWriter records the status once, when it is sent. It is an http.Flusher, as
// the server's writer is (interceptors assert it); Unwrap lets http.ResponseController
// reach Hijack and the rest underneath.
type correlatedWriter struct {
	http.ResponseWriter
	record func(status int)
	sent   bool
}

func (c *correlatedWriter) WriteHeader(code int) {
	if !c.sent && code >= 200 {
		c.sent = true
		c.record(code)
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *correlatedWriter) Write(b []byte) (int, error) {
	if !c.sent {
		c.WriteHeader(http.StatusOK)
	}
	return c.ResponseWriter.Write(b)
}

// Flush sends the header (200 unless written) and what was written so far.
func (c *correlatedWriter) Flush() {
	if !c.sent {
		c.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(c.ResponseWriter).Flush()
}

func (c *correlatedWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
