package telemetry

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/finplat/payment-batch-gateway/internal/concur"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// The encrypted key of a Batch-URL never reaches the tracing backend.
func TestConcurSpansHideTheBatchURLKey(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	t.Cleanup(srv.Close)
	mem := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(redactingExporter{mem}))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	const key = "pQ7v$sK2mLx9RtB4$pWcYe0nHa3Jd$xs"
	c := &http.Client{Transport: ConcurTransport(tp, http.DefaultTransport)}
	resp, err := c.Post(srv.URL+"/api/expense/paymentbatch/v1.1/batch/"+key+"/close", "", http.NoBody)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	c.CloseIdleConnections()

	spans := mem.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	var sawURL bool
	for _, kv := range spans[0].Snapshot().Attributes() {
		v := kv.Value.String()
		if strings.Contains(v, key) || strings.Contains(v, "pQ7v") {
			t.Errorf("attribute %s holds the Batch-URL's key: %s", kv.Key, v)
		}
		if kv.Key == "url.full" {
			sawURL = strings.HasSuffix(v, "/api/expense/paymentbatch/v1.1/batch/{key}/close")
		}
	}
	if !sawURL {
		t.Errorf("no redacted url.full among %v", spans[0].Snapshot().Attributes())
	}
	if got := concur.RedactURL("https://h/api/expense/paymentbatch/v1.1/batchlist/OPEN"); !strings.HasSuffix(got, "/batchlist/OPEN") {
		t.Errorf("a list URL was changed: %s", got)
	}
}
