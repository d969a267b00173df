package bench

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/finplat/payment-batch-gateway/bench/internal/heappeak"
	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/concur"
)

// BenchmarkListBatches reads Concur's OPEN batch list of n batches through the Concur
// client (concur.New, ListBatches) from a server on loopback that makes the list as it
// writes it (listServer), and reports the time per list and the peak of the heap during
// it (peak-heap-MiB, server and client together, since both run in this process; see
// package heappeak for the method). The target: 10,000 batches in under 300 ms with a
// peak heap under 64 MiB.
func BenchmarkListBatches(b *testing.B) {
	for _, n := range []int{1_000, 10_000} {
		b.Run("n="+strconv.Itoa(n), func(b *testing.B) {
			ls := newListServer(b, n)
			c := ls.client(b)
			var peak uint64
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				hp := heappeak.Start()
				ls.sampler.Store(hp)
				var got int
				var last batch.Summary
				b.StartTimer()

				err := c.ListBatches(b.Context(), batch.ListOpen, func(s batch.Summary) error {
					if got++; got%sampleEvery == 0 {
						hp.Sample()
					}
					last = s
					return nil
				})

				b.StopTimer()
				ls.sampler.Store(nil)
				peak = max(peak, hp.Stop())
				if want := ls.summary(n - 1); err != nil || got != n || last != want {
					b.Fatalf("listed %d of %d batches, last %+v (want %+v), err %v", got, n, last, want, err)
				}
				b.StartTimer()
			}
			b.SetBytes(ls.size.Load())
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
		})
	}
}

// sampleEvery is how many summaries the server writes, and the client reads, between two
// heap samples they take themselves (besides heappeak's ticker).
const sampleEvery = 1000

// listServer is an httptest server whose OPEN list (GET …/v1.1/batchlist/OPEN) has n
// generated batches and whose CLOSED list is empty. It writes the list one summary at a
// time from a small buffer it reuses, as a network body arrives, so no document is held
// in memory: what the heap holds is the client's. The summaries look like Concur's
// (internal/concur/testdata/list/namespaced.xml): GUID BatchIDs and Batch-URLs with a
// 100-character encrypted key.
type listServer struct {
	*httptest.Server
	n       int
	size    atomic.Int64                     // bytes of the last OPEN list written
	sampler atomic.Pointer[heappeak.Sampler] // sampled every sampleEvery summaries; nil: not
}

func newListServer(tb testing.TB, n int) *listServer {
	tb.Helper()
	ls := &listServer{n: n}
	ls.Server = httptest.NewServer(http.HandlerFunc(ls.serve))
	tb.Cleanup(ls.Close)
	return ls
}

// client is a Concur client of the server, with a static token.
func (ls *listServer) client(tb testing.TB) *concur.Client {
	tb.Helper()
	// What internal/config would set for the gateway, with the benchmark's own values.
	c, err := concur.New(concur.Config{BaseURL: ls.URL, AccessToken: "bench-token", AuthScheme: "Bearer",
		Timeout: time.Minute, MaxAttempts: 3, MaxConcurrent: 8, BreakerThreshold: 5, BreakerOpenInterval: 30 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

const (
	listPath   = "/api/expense/paymentbatch/v1.1/batchlist/"
	listHeader = `<?xml version="1.0" encoding="utf-8"?>` + "\n" +
		`<BatchList xmlns="http://www.concursolutions.com/api/expense/paymentbatch/2011/11" ` +
		`xmlns:i="http://www.w3.org/2001/XMLSchema-instance">` + "\n"
	listFooter = "</BatchList>\n"
)

func (ls *listServer) serve(w http.ResponseWriter, r *http.Request) {
	status, ok := strings.CutPrefix(r.URL.Path, listPath)
	if r.Method != http.MethodGet || !ok || (status != "OPEN" && status != "CLOSED") {
		http.NotFound(w, r)
		return
	}
	n := ls.n
	if status == "CLOSED" {
		n = 0
	}
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	written, _ := io.WriteString(w, listHeader)
	buf := make([]byte, 0, 1024)
	for i := range n {
		buf = ls.appendSummary(buf[:0], i)
		k, err := w.Write(buf)
		written += k
		if err != nil {
			return
		}
		if (i+1)%sampleEvery == 0 {
			if hp := ls.sampler.Load(); hp != nil {
				hp.Sample()
			}
		}
	}
	k, _ := io.WriteString(w, listFooter)
	if status == "OPEN" {
		ls.size.Store(int64(written + k))
	}
}

var (
	genNames    = [...]string{"Expense Pay US", "Corporate Card", "ADP run", "Expense Pay EMEA"}
	genCurrency = [...]string{"USD", "EUR", "GBP", "CAD"}
	genType     = [...]string{"Employee", "Card Program"}
	genMethod   = [...]string{"Expense Pay by SAP Concur", "ADP (via EPIP file)",
		"Company Check (via Accounts Payable)"}
)

const (
	batchPath   = "/api/expense/paymentbatch/v1.1/batch/"
	keyAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789$"
	keyLen      = 100
)

// appendSummary appends the i-th <BatchSummary>, indented and on a line of its own as
// Concur writes them.
func (ls *listServer) appendSummary(b []byte, i int) []byte {
	s := ls.summary(i)
	for _, f := range [...]struct{ name, v string }{
		{"BatchName", s.Name}, {"BatchID", s.ID}, {"BatchTotal", s.Total}, {"Currency", s.Currency},
		{"Count", s.Count}, {"Type", s.Type}, {"PaymentMethod", s.PaymentMethod}, {"Batch-URL", s.URL},
	} {
		if f.name == "BatchName" {
			b = append(b, "  <BatchSummary>"...)
		}
		b = append(b, '<')
		b = append(b, f.name...)
		b = append(b, '>')
		b = append(b, f.v...) // no value needs escaping
		b = append(b, "</"...)
		b = append(b, f.name...)
		b = append(b, '>')
	}
	return append(b, "</BatchSummary>\n"...)
}

// summary is the i-th batch of the OPEN list, as the client decodes it.
func (ls *listServer) summary(i int) batch.Summary {
	return batch.Summary{
		ID:            genID(i),
		Name:          genNames[i%len(genNames)] + " " + strconv.Itoa(i),
		Total:         fmt.Sprintf("%d.%02d", i%100_000, i%100),
		Currency:      genCurrency[i%len(genCurrency)],
		Count:         strconv.Itoa(i % 50),
		Type:          genType[i%len(genType)],
		PaymentMethod: genMethod[i%len(genMethod)],
		URL:           ls.URL + batchPath + genKey(i),
	}
}

// genID is the i-th generated BatchID, an upper-case GUID as Concur's look.
func genID(i int) string { return fmt.Sprintf("6F1C2A9E-3B7D-4E58-9A41-%012X", i) }

// genKey is a keyLen-character pseudo-random encrypted key, unique to i.
func genKey(i int) string {
	b := make([]byte, keyLen)
	x := uint64(i)*0x9E3779B97F4A7C15 + 1
	for k := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[k] = keyAlphabet[x%uint64(len(keyAlphabet))]
	}
	return string(b)
}

// The list server's list is what the client reads, to the last batch: a benchmark that
// reads less would measure nothing.
func TestListServer(t *testing.T) {
	t.Parallel()
	ls := newListServer(t, 3)
	c := ls.client(t)
	for status, want := range map[batch.ListStatus][]batch.Summary{
		batch.ListOpen:   {ls.summary(0), ls.summary(1), ls.summary(2)},
		batch.ListClosed: nil,
	} {
		var got []batch.Summary
		if err := c.ListBatches(t.Context(), status, func(s batch.Summary) error {
			got = append(got, s)
			return nil
		}); err != nil {
			t.Fatalf("%s: %v", status, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s list (-want +got):\n%s", status, diff)
		}
	}
	if s := ls.summary(2); !strings.HasPrefix(s.ID, "6F1C2A9E-") || len(s.URL) != len(ls.URL+batchPath)+keyLen {
		t.Errorf("summary %+v", s)
	}
}
