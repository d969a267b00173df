package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an OTLP/HTTP traces endpoint that keeps every span it is sent.
type otlpReceiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	spans []*tracepb.Span
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	r := &otlpReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var body io.Reader = req.Body
		if req.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(req.Body)
			if err != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		var msg coltracepb.ExportTraceServiceRequest
		if err != nil || req.URL.Path != "/v1/traces" || proto.Unmarshal(b, &msg) != nil {
			t.Errorf("OTLP export: %s %s: %v", req.Method, req.URL.Path, err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rs := range msg.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				r.spans = append(r.spans, ss.GetSpans()...)
			}
		}
		r.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// inTrace is the spans received so far of the trace id (hex).
func (r *otlpReceiver) inTrace(traceID string) []*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*tracepb.Span
	for _, s := range r.spans {
		if hex.EncodeToString(s.GetTraceId()) == traceID {
			out = append(out, s)
		}
	}
	return out
}

// A caller's traceparent is continued: the gateway's server span is a child of the
// caller's span, its Concur client spans (token, list, close) are children of the server
// span, all in the caller's trace, exported over OTLP/HTTP; the access log line carries the
// trace id.
func TestTraceSpansCallerGatewayConcur(t *testing.T) {
	t.Parallel()
	rcv := newOTLPReceiver(t)
	s := startStack(t, nil, map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.srv.URL,
		"OTEL_BSP_SCHEDULE_DELAY":     "100", // milliseconds
		"OTEL_SERVICE_NAME":           "gateway-e2e",
	})
	traceID, callerSpan := hex.EncodeToString(randBytes(t, 16)), hex.EncodeToString(randBytes(t, 8))
	r := do(t, "POST", s.gw.URL+"/batches/"+employeeBatch+"/close", map[string]string{
		"traceparent":  "00-" + traceID + "-" + callerSpan + "-01",
		"X-Request-ID": "e2e-traced-close",
	})
	if r.Status != 200 {
		t.Fatalf("close: %d %s", r.Status, r.Body)
	}

	var server *tracepb.Span
	var clients map[string]*tracepb.Span
	deadline := time.Now().Add(15 * time.Second)
	for {
		server, clients = nil, map[string]*tracepb.Span{}
		spans := rcv.inTrace(traceID)
		for _, sp := range spans {
			if sp.GetKind() == tracepb.Span_SPAN_KIND_SERVER {
				server = sp
			}
		}
		for _, sp := range spans {
			if sp.GetKind() == tracepb.Span_SPAN_KIND_CLIENT && server != nil &&
				bytes.Equal(sp.GetParentSpanId(), server.GetSpanId()) {
				clients[sp.GetName()] = sp
			}
		}
		if server != nil && clients["concur close"] != nil && clients["concur list"] != nil && clients["concur token"] != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 15 s, the trace holds server span %v and client spans %v (all: %v)", server, clients, spans)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if server.GetName() != "POST /batches/{id}/close" || hex.EncodeToString(server.GetParentSpanId()) != callerSpan {
		t.Errorf("server span %q with parent %x, want POST /batches/{id}/close, child of the caller's %s",
			server.GetName(), server.GetParentSpanId(), callerSpan)
	}
	for name, c := range clients {
		if st := c.GetStatus().GetCode(); st == tracepb.Status_STATUS_CODE_ERROR {
			t.Errorf("client span %s has status %v", name, st)
		}
	}

	var logged bool
	for line := range strings.SplitSeq(s.gw.logs.String(), "\n") {
		if strings.Contains(line, `"requestId":"e2e-traced-close"`) && strings.Contains(line, `"message":"request"`) {
			logged = strings.Contains(line, `"traceId":"`+traceID+`"`)
			if !logged {
				t.Errorf("access log line without the trace id: %s", line)
			}
		}
	}
	if !logged {
		t.Errorf("no access log line for the traced close")
	}
}
