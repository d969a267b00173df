package concur

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// CloseBatchAsync posts to the Batch-URL with its version segment set to v1.2, exactly
// once, and refuses a Batch-URL whose path is not a v1.1 batch.
func TestCloseBatchAsyncUsesV12(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		paths []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.Method+" "+r.URL.EscapedPath())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/xml")
		_, _ = w.Write([]byte(`<BatchStatus><Status>SUCCESS</Status><JobQueueKey>$jq1</JobQueueKey></BatchStatus>`))
	}))
	t.Cleanup(srv.Close)
	c, err := New(Config{BaseURL: srv.URL, AccessToken: "static-token"}.withDefaults(DefaultTimeout))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)

	res, err := c.CloseBatchAsync(t.Context(), srv.URL+"/api/expense/paymentbatch/v1.1/batch/ab$C1")
	if err != nil || res.JobQueueKey != "$jq1" || res.Status != "SUCCESS" {
		t.Fatalf("CloseBatchAsync = %+v, %v", res, err)
	}
	for _, bad := range []string{
		srv.URL + "/api/expense/paymentbatch/v1.2/batch/ab$C1",
		srv.URL + "/api/expense/paymentbatch/v1.1/batchlist/OPEN",
	} {
		if _, err := c.CloseBatchAsync(t.Context(), bad); batch.ErrorCode(err) != batch.CodeUpstreamBadResponse {
			t.Errorf("CloseBatchAsync(%s) = %v, want upstream_bad_response", bad, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(paths) != 1 || paths[0] != "POST /api/expense/paymentbatch/v1.2/batch/ab$C1/close" {
		t.Errorf("Concur received %q", paths)
	}
}
