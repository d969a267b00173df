package telemetry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/finplat/payment-batch-gateway/internal/concur"
)

// receiver is an OTLP/HTTP traces endpoint that keeps what it is sent.
type receiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	spans []*tracepb.Span
	attrs map[string]string // the resource's string attributes, from the last export
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	r := &receiver{attrs: map[string]string{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		var msg coltracepb.ExportTraceServiceRequest
		if req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" || err != nil ||
			proto.Unmarshal(body, &msg) != nil {
			t.Errorf("export: %s %s %q: %v", req.Method, req.URL.Path, req.Header.Get("Content-Type"), err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rs := range msg.GetResourceSpans() {
			for _, a := range rs.GetResource().GetAttributes() {
				r.attrs[a.GetKey()] = a.GetValue().GetStringValue()
			}
			for _, ss := range rs.GetScopeSpans() {
				r.spans = append(r.spans, ss.GetSpans()...)
			}
		}
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		b, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		_, _ = w.Write(b)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// Off, the provider is a no-op; on, spans reach the OTLP/HTTP endpoint with the service's
// name and version, at the latest when the provider shuts down.
func TestTracingExportsOverOTLPHTTP(t *testing.T) {
	t.Parallel()
	off, err := NewTracing(context.Background(), TracingConfig{})
	if err != nil || off.Enabled() {
		t.Fatalf("no endpoint: enabled=%v err=%v", off.Enabled(), err)
	}
	if err := off.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	rcv := newReceiver(t)
	on, err := NewTracing(context.Background(), TracingConfig{Endpoint: rcv.srv.URL + "/v1/traces",
		ServiceName: "gateway-test", Version: "v9"})
	if err != nil || !on.Enabled() {
		t.Fatalf("with an endpoint: enabled=%v err=%v", on.Enabled(), err)
	}
	_, span := on.Provider.Tracer("test").Start(context.Background(), "work")
	span.End()
	if err := on.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.spans) != 1 || rcv.spans[0].GetName() != "work" {
		t.Fatalf("received %v, want the one span", rcv.spans)
	}
	if rcv.attrs["service.name"] != "gateway-test" || rcv.attrs["service.version"] != "v9" {
		t.Errorf("resource %v", rcv.attrs)
	}
}

// A request to Concur is a client span named after its operation, a child of the span in
// its context; no trace context is sent to Concur.
func TestConcurTransportSpans(t *testing.T) {
	t.Parallel()
	var (
		mu   sync.Mutex
		sent []string
	)
	concurSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		sent = append(sent, r.Header.Get("traceparent")+r.Header.Get("tracestate"))
	}))
	t.Cleanup(concurSrv.Close)
	rcv := newReceiver(t)
	tr, err := NewTracing(context.Background(), TracingConfig{Endpoint: rcv.srv.URL + "/v1/traces", ServiceName: "g"})
	if err != nil {
		t.Fatal(err)
	}
	base := concur.DefaultTransport(5 * time.Second)
	t.Cleanup(base.CloseIdleConnections)
	client := &http.Client{Transport: ConcurTransport(tr.Provider, base)}
	ctx, parent := tr.Provider.Tracer("test").Start(context.Background(), "parent")
	for _, path := range []string{"/api/expense/paymentbatch/v1.1/batch/K3y$1/close", "/oauth2/v0/token"} {
		req, _ := http.NewRequestWithContext(ctx, "POST", concurSrv.URL+path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	parent.End()
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	for _, h := range sent {
		if h != "" {
			t.Errorf("trace context sent to Concur: %q", h)
		}
	}
	mu.Unlock()
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	names := map[string]*tracepb.Span{}
	for _, s := range rcv.spans {
		names[s.GetName()] = s
	}
	pid := parent.SpanContext().SpanID()
	for _, n := range []string{"concur close", "concur token"} {
		s := names[n]
		if s == nil {
			t.Errorf("no span %q among %v", n, names)
			continue
		}
		if s.GetKind() != tracepb.Span_SPAN_KIND_CLIENT || trace.SpanID(s.GetParentSpanId()) != pid {
			t.Errorf("%s: kind %v parent %x, want a client span child of %s", n, s.GetKind(), s.GetParentSpanId(), pid)
		}
	}
}

// With tracing off, the Concur transport is the base one: no otelhttp work per call.
func TestConcurTransportOffIsBase(t *testing.T) {
	t.Parallel()
	base := &http.Transport{}
	for _, tp := range []trace.TracerProvider{nil, tracenoop.NewTracerProvider()} {
		if got := ConcurTransport(tp, base); got != base {
			t.Errorf("ConcurTransport(%T) = %T, want the base transport", tp, got)
		}
	}
}
