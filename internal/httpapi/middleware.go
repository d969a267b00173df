package httpapi

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"runtime/debug"
	"slices"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// Each context value has its own key type, so no two can collide.
type (
	requestIDKey struct{} // the request id: string
	outcomeKey   struct{} // what the handler tells the access log: *outcome
)

// validRequestID is what we accept from a caller's X-Request-ID: anything else (CR/LF,
// quotes, huge values) is replaced, so the header cannot inject into logs or answers.
var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// requestID honours a well-formed X-Request-ID, or makes one, and echoes it.
func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-ID")
		if !validRequestID.MatchString(id) {
			id = rand.Text()
		}
		w.Header().Set("X-Request-ID", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
	})
}

func requestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// outcome is what a handler tells the access log: the batch it worked on and the error
// it answered with. Errors are logged once, here, at the edge.
type outcome struct {
	caller     string // the authenticated caller
	batchID    string
	err        error
	stack      string // set when the request panicked
	callerGone bool   // the caller hung up before the answer
	// correlations are Concur's answers to the request's calls (nil outside accessLog)
	correlations *batch.Correlations
}

// statusCallerGone is logged for a request whose caller hung up (nginx's convention).
const statusCallerGone = 499

// withOutcome returns a copy of ctx that carries o, for outcomeFrom.
func withOutcome(ctx context.Context, o *outcome) context.Context {
	return context.WithValue(ctx, outcomeKey{}, o)
}

func outcomeFrom(ctx context.Context) *outcome {
	if o, ok := ctx.Value(outcomeKey{}).(*outcome); ok {
		return o
	}
	return &outcome{} // outside accessLog (unit tests of a single handler): discard
}

// accessLog puts a request-scoped logger in the context (with the request id, and the
// trace id when the request is part of a trace, so the Concur client's lines carry them
// too) and writes one line per request; obs counts it (metrics.go). The line is written in
// a defer, so a request aborted by a panic (a cut file stream) still gets it. It carries
// concurCorrelationIds: the concur-correlationid of every Concur answer the request's own
// calls got (a close, a file, a batch-list read), in order, noted by the Concur client in
// the context's batch.Correlations; a request that only waited for another's list read
// has none of its own.
func accessLog(log zerolog.Logger, obs RequestObserver) func(http.Handler) http.Handler {
	if obs == nil {
		obs = nopRequestObserver{}
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			lc := log.With().Str("requestId", requestIDFrom(r.Context()))
			if sc := trace.SpanContextFromContext(r.Context()); sc.IsValid() {
				lc = lc.Str("traceId", sc.TraceID().String())
			}
			l := lc.Logger()
			ctx, corr := batch.WithCorrelations(r.Context())
			o := &outcome{correlations: corr}
			req := r.WithContext(withOutcome(l.WithContext(ctx), o))
			sw := &statusWriter{ResponseWriter: w}
			defer func() {
				status, pattern := answered(req, sw, o)
				took := time.Since(start)
				obs.ObserveRequest(r.Method, pattern, status, took)
				nameSpan(req, pattern)
				logRequest(l, req, sw, o, status, pattern, took)
			}()
			next.ServeHTTP(sw, req)
		})
	}
}

// answered is the status the request is logged and counted with, and its route pattern
// ("unmatched" when no route matched).
func answered(r *http.Request, sw *statusWriter, o *outcome) (status int, pattern string) {
	status = sw.status
	switch {
	case o.callerGone && status == 0:
		status = statusCallerGone
	case status == 0:
		status = http.StatusOK
	}
	pattern = "unmatched"
	if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
		pattern = rc.RoutePattern()
	}
	return status, pattern
}

func logRequest(l zerolog.Logger, r *http.Request, sw *statusWriter, o *outcome, status int, pattern string, took time.Duration) {
	ev := l.Info()
	switch {
	case status >= 500 || o.stack != "":
		ev = l.Error()
	case status >= 400 || o.err != nil:
		ev = l.Warn()
	}
	if o.caller != "" {
		ev = ev.Str("callerName", o.caller)
	}
	if o.batchID != "" {
		ev = ev.Str("batchId", o.batchID)
	}
	if o.err != nil {
		ev = ev.AnErr("error", o.err)
	}
	if o.stack != "" {
		ev = ev.Str("stack", o.stack)
	}
	var ids []string
	if o.correlations != nil {
		var more int
		if ids, more = o.correlations.IDs(); more > 0 {
			ev = ev.Int("concurCorrelationIdsMore", more)
		}
	}
	// An answer this request did not get itself (a batch-list fetch it joined, a refusal
	// remembered) can still be its error's: the id the problem shows is on the line too.
	if e, ok := errors.AsType[*batch.Error](o.err); ok && e.CorrelationID != "" && !slices.Contains(ids, e.CorrelationID) {
		ids = append(ids, e.CorrelationID)
	}
	if len(ids) > 0 {
		ev = ev.Strs("concurCorrelationIds", ids)
	}
	ev.Str("method", r.Method).
		Str("route", pattern).
		Int("status", status).
		Int64("bytes", sw.bytes).
		Dur("duration", took).
		Msg("request")
}

// recoverer turns a panic into a 500 problem, or, once the answer has begun, into a cut
// connection (http.ErrAbortHandler); the access-log line carries the panic and its
// stack. http.ErrAbortHandler passes through.
func recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w, sent := watchStatus(w)
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			err := fmt.Errorf("panic: %v", v)
			o := outcomeFrom(r.Context())
			o.err, o.stack = err, string(debug.Stack())
			if sent.Status() == 0 {
				writeProblem(w, r, err)
				return
			}
			// The answer has begun (a file streaming): cut the connection, so the caller
			// sees a broken answer rather than a short one that ends cleanly.
			panic(http.ErrAbortHandler)
		}()
		next.ServeHTTP(w, r)
	})
}

// statusRecorder is a writer that knows the status it has sent, 0 while none:
// statusWriter, and the idempotency recorder.
type statusRecorder interface{ Status() int }

// watchStatus returns the writer to hand on, and what tells whether the answer has begun:
// w itself when w, or a writer it wraps (following Unwrap, as http.ResponseController
// does), records its status; otherwise a statusWriter around w. So a wrapper in between
// that hides the access log's statusWriter cannot make a begun answer look unbegun.
func watchStatus(w http.ResponseWriter) (http.ResponseWriter, statusRecorder) {
	for u := w; ; {
		if s, ok := u.(statusRecorder); ok {
			return w, s
		}
		inner, ok := u.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		u = inner.Unwrap()
	}
	sw := &statusWriter{ResponseWriter: w}
	return sw, sw
}

// statusWriter records the status and size of an answer. Unwrap lets
// http.ResponseController reach the underlying writer (flush, deadlines).
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Status is the status sent, 0 while none.
func (w *statusWriter) Status() int { return w.status }

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
