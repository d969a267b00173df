package bench

import (
	"strconv"
	"testing"

	"github.com/finplat/payment-batch-gateway/bench/internal/heappeak"
	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/store"
)

// BenchmarkRefresh is one refresh of the batches the gateway knows, as the first List of
// a Service makes it: Concur's OPEN list of n batches (and an empty CLOSED list) read from
// listServer through the Concur client and streamed into SQLite, as the gateway opens it
// by default. It reports the time of the refresh and the peak of the heap during it
// (peak-heap-MiB; see package heappeak), which must not grow with the list. Each
// iteration is a new Service on the same store, so the later ones update rather than
// insert. internal/batch's BenchmarkRefresh times the refresh alone, without HTTP or XML.
// -short leaves out 100k.
func BenchmarkRefresh(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run("n="+strconv.Itoa(n), func(b *testing.B) {
			if testing.Short() && n > 10_000 {
				b.Skip("-short")
			}
			ls := newListServer(b, n)
			c := ls.client(b)
			st, err := store.Open(b.Context(), store.Config{DataDir: b.TempDir(), Key: make([]byte, 32)})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			var peak uint64
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				svc := batch.NewService(c, st, batch.Options{})
				hp := heappeak.Start()
				ls.sampler.Store(hp)
				b.StartTimer()

				page, err := svc.List(b.Context(), batch.ListRequest{Limit: 1})

				b.StopTimer()
				ls.sampler.Store(nil)
				peak = max(peak, hp.Stop())
				if err != nil || page.Stale != nil || len(page.Items) != 1 {
					b.Fatalf("List = %+v, %v", page, err)
				}
				b.StartTimer()
			}
			last, err := st.GetBatch(b.Context(), genID(n-1))
			if err != nil || last.Status != batch.StatusOpen || last.URL != ls.summary(n-1).URL {
				b.Fatalf("last batch: %+v, %v", last, err)
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
		})
	}
}
