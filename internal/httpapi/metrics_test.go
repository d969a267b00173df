package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/finplat/payment-batch-gateway/internal/telemetry"
)

// requestLog is a RequestObserver that records what it is told.
type requestLog struct {
	mu   sync.Mutex
	seen []observedRequest
}

type observedRequest struct {
	Method, Route string
	Status        int
}

func (l *requestLog) ObserveRequest(method, route string, status int, took time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if took <= 0 {
		method += " (no duration)"
	}
	l.seen = append(l.seen, observedRequest{method, route, status})
}

func (l *requestLog) all() []observedRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]observedRequest(nil), l.seen...)
}

// Every request is counted once, by its route pattern (never its path), method and the
// status it was answered with: unmatched routes, refusals and panics included.
func TestMetricsCountRequestsByRoutePattern(t *testing.T) {
	t.Parallel()
	obs := &requestLog{}
	h := NewHandler(Deps{Log: zerolog.Nop(), Batches: panicky{}, Metrics: obs,
		Admin: Admin{Ready: NewReadiness(nil, nil, 0), Metrics: http.NotFoundHandler()}})
	for _, r := range []struct{ method, path string }{
		{"GET", "/healthz"},
		{"GET", "/readyz"},
		{"POST", "/batches/6f1c2a9e/close"},       // panics: 500
		{"POST", "/batches/a.b/close"},            // 400 before the service
		{"GET", "/batches/abc/file"},              // panics: 500
		{"GET", "/no/such/route/with/an-id-4711"}, // 404
		{"DELETE", "/batches"},                    // 405
		{"BREW", "/batches"},                      // a method of the caller's own
	} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(r.method, r.path, nil))
	}
	want := []observedRequest{
		{"GET", "/healthz", 200},
		{"GET", "/readyz", 200},
		{"POST", "/batches/{id}/close", 500},
		{"POST", "/batches/{id}/close", 400},
		{"GET", "/batches/{id}/file", 500},
		{"GET", "unmatched", 404},
		{"DELETE", "unmatched", 405},
		{"BREW", "unmatched", 405},
	}
	if diff := cmp.Diff(want, obs.all()); diff != "" {
		t.Errorf("observed (-want +got):\n%s", diff)
	}
}

// The trace id of the caller's traceparent is in the request's log lines, with tracing off
// (a no-op provider) as with it on; with it on, the server span is a child of the caller's
// span and is named after the route pattern.
func TestTraceIDInLogsAndSpanNamedByRoute(t *testing.T) {
	t.Parallel()
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	traceparent := "00-" + traceID + "-" + parentID + "-01"
	rec := tracetest.NewSpanRecorder()
	sdk := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = sdk.Shutdown(context.Background()) })
	for name, tp := range map[string]trace.TracerProvider{"off": tracenoop.NewTracerProvider(), "on": sdk} {
		t.Run(name, func(t *testing.T) {
			logs := &syncBuffer{}
			h := NewHandler(Deps{Log: zerolog.New(logs), Batches: panicky{},
				Trace: telemetry.ServerMiddleware(tp, IsAdminRequest)})
			req := httptest.NewRequest("POST", "/batches/a.b/close", nil)
			req.Header.Set("traceparent", traceparent)
			h.ServeHTTP(httptest.NewRecorder(), req)
			var line struct{ TraceID, Route string }
			if err := json.Unmarshal([]byte(strings.TrimSpace(logs.String())), &line); err != nil {
				t.Fatalf("access log %q: %v", logs, err)
			}
			if line.TraceID != traceID || line.Route != "/batches/{id}/close" {
				t.Errorf("access log has traceId %q route %q, want %s: %s", line.TraceID, line.Route, traceID, logs)
			}

			logs = &syncBuffer{}
			h = NewHandler(Deps{Log: zerolog.New(logs), Batches: panicky{}, Trace: telemetry.ServerMiddleware(tp, IsAdminRequest)})
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/nope", nil))
			if strings.Contains(logs.String(), "traceId") != (name == "on") {
				t.Errorf("without a traceparent, tracing %s: %s", name, logs)
			}
		})
	}
	var spans []string
	for _, s := range rec.Ended() {
		spans = append(spans, s.Name())
		if s.Name() == "POST /batches/{id}/close" &&
			(s.Parent().TraceID().String() != traceID || s.Parent().SpanID().String() != parentID || !s.Parent().IsRemote()) {
			t.Errorf("server span's parent = %v, want the caller's span", s.Parent())
		}
	}
	if diff := cmp.Diff([]string{"POST /batches/{id}/close", "GET unmatched"}, spans); diff != "" {
		t.Errorf("spans (-want +got):\n%s", diff)
	}
}

// Probes and scrapes are not traced.
func TestAdminRequestsAreNotTraced(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	sdk := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = sdk.Shutdown(context.Background()) })
	h := NewHandler(Deps{Log: zerolog.Nop(), Batches: panicky{}, Trace: telemetry.ServerMiddleware(sdk, IsAdminRequest),
		Admin: Admin{Ready: NewReadiness(nil, nil, 0), Metrics: http.NotFoundHandler()}})
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil))
	}
	if n := len(rec.Ended()); n != 0 {
		t.Errorf("%d spans for admin requests, want none", n)
	}
}
