package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// BenchmarkRenderProblem renders a typical error, batch_not_found from a close, as the
// auth and rate-limit middleware and every handler do (renderError -> writeProblem):
// problem+json with its headers, to a new httptest.ResponseRecorder each time. The
// recorder's own cost (itself, its header map, its body buffer) is measured alone by
// the recorder sub-benchmark, so the renderer's share reads as a difference.
func BenchmarkRenderProblem(b *testing.B) {
	const id = "6F1C2A9E-3B7D-4E58-9A41-0C2D8E7F5B13"
	req := httptest.NewRequest(http.MethodPost, "/batches/"+id+"/close", nil)
	req = req.WithContext(context.WithValue(req.Context(), requestIDKey{}, "d4jb7ksa3fmq2elr0h5pcgvtn8"))
	err := batch.Errorf(batch.CodeBatchNotFound, "batch %s is not in Concur's batch list", id)
	want := `{"type":"/problems/batch_not_found","title":"Batch not found","status":404,` +
		`"detail":"batch ` + id + ` is not in Concur's batch list","instance":"/batches/` + id + `/close",` +
		`"code":"batch_not_found","requestId":"d4jb7ksa3fmq2elr0h5pcgvtn8"}` + "\n"

	b.Run("problem", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			rec := httptest.NewRecorder()
			renderError(rec, req, err)
			if rec.Code != http.StatusNotFound || rec.Body.String() != want ||
				rec.Header().Get("Content-Type") != "application/problem+json" {
				b.Fatalf("rendered %d %v %s", rec.Code, rec.Header(), rec.Body)
			}
		}
	})
	b.Run("recorder", func(b *testing.B) {
		body := []byte(want)
		b.ReportAllocs()
		for b.Loop() {
			rec := httptest.NewRecorder()
			rec.Header().Set("Content-Type", "application/problem+json")
			rec.WriteHeader(http.StatusNotFound)
			_, _ = rec.Write(body)
			if rec.Code != http.StatusNotFound || rec.Body.Len() != len(want) {
				b.Fatalf("recorded %d %s", rec.Code, rec.Body)
			}
		}
	})
}
