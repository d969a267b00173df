package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	"github.com/finplat/payment-batch-gateway/api"
	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// transparentWriter is a wrapper in between that follows the Unwrap convention
// (http.ResponseController's), as the idempotency recorder does.
type transparentWriter struct{ http.ResponseWriter }

func (w transparentWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// opaqueWriter is a wrapper in between that hides the writer it wraps.
type opaqueWriter struct{ http.ResponseWriter }

// Whether an answer has begun decides between a problem (nothing sent yet) and a cut
// connection (a file stream broke: never pass a short file off as whole). A wrapper
// between the access log's statusWriter and the handler, transparent or not, must not
// change that decision; nor must the absence of any status-recording writer (a handler
// served on its own).
func TestBegunAnswerIsCutWhateverWrapsIt(t *testing.T) {
	t.Parallel()
	wrappers := map[string]func(http.ResponseWriter) http.ResponseWriter{
		"no wrapper":          func(w http.ResponseWriter) http.ResponseWriter { return w },
		"transparent wrapper": func(w http.ResponseWriter) http.ResponseWriter { return transparentWriter{w} },
		"opaque wrapper":      func(w http.ResponseWriter) http.ResponseWriter { return opaqueWriter{w} },
	}
	handlers := map[string]struct {
		h     http.Handler
		begun bool
	}{
		"error before the answer": {handle(func(http.ResponseWriter, *http.Request) error {
			return batch.Errorf(batch.CodeBatchNotFound, "no such batch")
		}), false},
		"error after the answer began": {handle(func(w http.ResponseWriter, _ *http.Request) error {
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte("part of a file"))
			return errors.New("concur stream cut")
		}), true},
		"panic before the answer": {recoverer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
			panic("boom")
		})), false},
		"panic after the answer began": {recoverer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte("part of a file"))
			panic("boom")
		})), true},
	}
	for wname, wrap := range wrappers {
		for hname, tt := range handlers {
			for _, logged := range []bool{true, false} {
				name := wname + "/" + hname
				if !logged {
					name += "/without the access log"
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						tt.h.ServeHTTP(wrap(w), r)
					})
					if logged {
						h = accessLog(zerolog.New(zerolog.NewTestWriter(t)), nil)(h)
					}
					rec := httptest.NewRecorder()
					cut := serveRecovering(h, rec, httptest.NewRequest(http.MethodGet, "/batches/b-1/file", nil))
					switch {
					case tt.begun && !cut:
						t.Errorf("a begun answer was finished as %d %q, not cut", rec.Code, rec.Body)
					case !tt.begun && cut:
						t.Error("an answer that had not begun was cut, not answered with a problem")
					case !tt.begun && (rec.Code < 400 || rec.Header().Get("Content-Type") != "application/problem+json"):
						t.Errorf("answered %d %s, want a problem", rec.Code, rec.Header().Get("Content-Type"))
					case tt.begun && strings.Contains(rec.Body.String(), "problems/"):
						t.Errorf("a problem was appended to a begun answer: %q", rec.Body)
					}
				})
			}
		}
	}
}

// serveRecovering serves r and reports whether the handler cut the connection.
func serveRecovering(h http.Handler, w http.ResponseWriter, r *http.Request) (cut bool) {
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				panic(v)
			}
			cut = true
		}
	}()
	h.ServeHTTP(w, r)
	return false
}

func TestWatchStatusFindsTheRecorderOrAddsOne(t *testing.T) {
	t.Parallel()
	sw := &statusWriter{ResponseWriter: httptest.NewRecorder()}
	if w, s := watchStatus(transparentWriter{sw}); s != statusRecorder(sw) || w != (transparentWriter{sw}) {
		t.Errorf("through a transparent wrapper: got %T, %T; want the access log's statusWriter, the writer as given", w, s)
	}
	w, s := watchStatus(opaqueWriter{sw})
	if s == statusRecorder(sw) || w == http.ResponseWriter(opaqueWriter{sw}) {
		t.Fatalf("an opaque wrapper: got %T, %T; want a statusWriter of its own", w, s)
	}
	if w.WriteHeader(http.StatusTeapot); s.Status() != http.StatusTeapot || sw.Status() != http.StatusTeapot {
		t.Errorf("statuses %d, %d after a write through the added recorder", s.Status(), sw.Status())
	}
}

func TestPanicBecomesProblem(t *testing.T) {
	t.Parallel()
	h, logs := newTestHandler(t, panicky{})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/batches/abc/close", nil))
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), `"code":"internal"`) {
		t.Fatalf("got %d %s", rec.Code, rec.Body)
	}
	if strings.Contains(rec.Body.String(), "boom") {
		t.Errorf("panic value leaked: %s", rec.Body)
	}
	if lines := strings.Count(logs.String(), "\n"); lines != 1 ||
		!strings.Contains(logs.String(), `"stack":`) || !strings.Contains(logs.String(), `"status":500`) {
		t.Errorf("want the panic and its stack on the one access line:\n%s", logs)
	}
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	h, logs := newTestHandler(t, panicky{})
	tests := []struct {
		name, in string
		kept     bool
	}{
		{"honoured", "abc-123_x.y:z", true},
		{"header injection", "abc\r\nX-Evil: 1", false},
		{"quotes", `a"b`, false},
		{"too long", strings.Repeat("a", 129), false},
		{"absent", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("GET", "/nope", nil)
			req.Header["X-Request-Id"] = []string{tt.in}
			h.ServeHTTP(rec, req)
			got := rec.Header().Get("X-Request-ID")
			if !validRequestID.MatchString(got) {
				t.Fatalf("echoed id %q is not well-formed", got)
			}
			if (got == tt.in) != tt.kept {
				t.Errorf("X-Request-ID %q -> %q, kept=%v", tt.in, got, tt.kept)
			}
			if !strings.Contains(rec.Body.String(), `"requestId":"`+got+`"`) {
				t.Errorf("problem does not carry the request id: %s", rec.Body)
			}
		})
	}
	if strings.Contains(logs.String(), "X-Evil") {
		t.Errorf("injected header reached the log")
	}
}

func TestAccessLogLine(t *testing.T) {
	t.Parallel()
	h, logs := newTestHandler(t, panicky{})
	req := httptest.NewRequest("POST", "/batches/a.b/close", nil)
	req.Header.Set("X-Request-ID", "rid-42")
	h.ServeHTTP(httptest.NewRecorder(), req)
	var line map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(logs.String())), &line); err != nil {
		t.Fatalf("want exactly one JSON log line, got %q: %v", logs, err)
	}
	for k, want := range map[string]any{
		"requestId": "rid-42", "method": "POST", "route": "/batches/{id}/close", "status": float64(400), "message": "request",
	} {
		if line[k] != want {
			t.Errorf("log %s = %v, want %v", k, line[k], want)
		}
	}
	if _, ok := line["duration"]; !ok {
		t.Errorf("no duration in %v", line)
	}
}

// correlating is a BatchService whose close gets two answers from Concur, as a close that
// reads the batch list first does, and fails with the second; its audit trail lists an
// attempt with the correlation id of the answer that decided it.
type correlating struct{ panicky }

func (correlating) Close(ctx context.Context, _ batch.CloseRequest) (batch.CloseResult, error) {
	batch.NoteCorrelation(ctx, "corr-list")
	batch.NoteCorrelation(context.WithoutCancel(ctx), "corr-close") // the close runs detached
	return batch.CloseResult{}, &batch.Error{Code: batch.CodeBatchNotClosable, Delivery: batch.Answered,
		Detail: "no reports", Upstream: &batch.UpstreamError{Status: 500, Message: "no reports"}, CorrelationID: "corr-close"}
}

// The access log line carries the correlation ids of the Concur answers the request got,
// in order, and the problem the one that decided it; a request that reached no Concur
// answer has no such field.
func TestAccessLogLineCarriesCorrelationIDs(t *testing.T) {
	t.Parallel()
	h, logs := newTestHandler(t, correlating{})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/batches/b-1/close", nil))
	var p api.Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Upstream == nil || p.Upstream.CorrelationID != "corr-close" {
		t.Errorf("problem %s: want upstream.correlationId corr-close (%v)", rec.Body, err)
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/batches/a.b/close", nil)) // invalid id: no call
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want two log lines, got %q", logs)
	}
	var first, second map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatal(err)
	}
	if got, want := first["concurCorrelationIds"], []any{"corr-list", "corr-close"}; !cmp.Equal(got, want) {
		t.Errorf("concurCorrelationIds = %v, want %v", got, want)
	}
	if _, ok := second["concurCorrelationIds"]; ok {
		t.Errorf("a request that reached no Concur answer logs concurCorrelationIds: %v", second)
	}
}

// The audit trail's attempt carries the record's correlation id as upstreamCorrelationId.
func TestCloseAttemptCarriesCorrelationID(t *testing.T) {
	t.Parallel()
	a := closeAttempt("b-1", batch.Close{ID: 3, Outcome: batch.OutcomeFailed, UpstreamStatus: 500,
		UpstreamCorrelationID: "corr-3"})
	b, err := json.Marshal(a)
	if err != nil || !strings.Contains(string(b), `"upstreamCorrelationId":"corr-3"`) {
		t.Errorf("attempt %s (%v): want upstreamCorrelationId corr-3", b, err)
	}
	if b, _ := json.Marshal(closeAttempt("b-1", batch.Close{ID: 4, Outcome: batch.OutcomeRefused})); strings.Contains(string(b), "upstreamCorrelationId") {
		t.Errorf("attempt without one: %s", b)
	}
}

// joined answers with the error of a Concur answer another request got (a batch-list
// fetch it joined, a refusal remembered): it noted none of its own.
type joined struct{ panicky }

func (joined) Close(context.Context, batch.CloseRequest) (batch.CloseResult, error) {
	return batch.CloseResult{}, &batch.Error{Code: batch.CodeUpstreamUnavailable, Delivery: batch.Answered,
		Upstream: &batch.UpstreamError{Status: 503}, CorrelationID: "corr-other"}
}

// The id a problem shows is on the request's log line, even when another request got it.
func TestAccessLogLineCarriesTheProblemsCorrelationID(t *testing.T) {
	t.Parallel()
	h, logs := newTestHandler(t, joined{})
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/batches/b-1/close", nil))
	var line map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(logs.String())), &line); err != nil {
		t.Fatal(err)
	}
	if got, want := line["concurCorrelationIds"], []any{"corr-other"}; !cmp.Equal(got, want) {
		t.Errorf("concurCorrelationIds = %v, want %v", got, want)
	}
}
