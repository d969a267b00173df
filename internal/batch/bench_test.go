package batch_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/store"
)

// BenchmarkLookup maps a BatchID to its stored batch as a close or a download does
// (directory.lookup: the store's GetBatch, on SQLite as the gateway opens it by default)
// with 1k, 10k and 100k batches stored, so the table shows how the lookup grows with the
// store. The IDs are random GUIDs, looked up in a random order: no lookup finds its row's
// pages warmer than an arbitrary request would. Seeding the store is outside the timer.
func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run("n="+strconv.Itoa(n), func(b *testing.B) {
			st, err := store.Open(b.Context(), store.Config{DataDir: b.TempDir(), Key: make([]byte, 32)})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			ids := seedStore(b, st, n)
			order := rand.New(rand.NewPCG(1, 2)).Perm(n)
			lookup := batch.DirectoryLookup(nil, st) // every lookup hits: no Upstream is needed
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				id := ids[order[i%n]]
				i++
				got, err := lookup(b.Context(), id)
				if err != nil || got.ID != id || got.Status != batch.StatusOpen {
					b.Fatalf("lookup(%s) = %+v, %v", id, got, err)
				}
			}
		})
	}
}

// seedStore stores n batches with random GUIDs as their IDs, as a refresh would, and
// returns the IDs.
func seedStore(b *testing.B, st store.Store, n int) []string {
	b.Helper()
	rng := rand.New(rand.NewPCG(3, 4))
	ids := make([]string, n)
	chunk := make([]batch.Batch, 0, batch.ListChunk)
	seen := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	for i := range n {
		ids[i] = fmt.Sprintf("%08X-%04X-4%03X-%04X-%012X", rng.Uint32(), rng.Uint32()&0xFFFF,
			rng.Uint32()&0xFFF, 0x8000|rng.Uint32()&0x3FFF, rng.Uint64()&0xFFFFFFFFFFFF)
		chunk = append(chunk, batch.Batch{
			ID: ids[i], Name: "Expense Pay US " + strconv.Itoa(i), Total: "1289.40", Currency: "USD",
			Count: "7", Type: "Employee", PaymentMethod: "Expense Pay by SAP Concur", Status: batch.StatusOpen,
			URL: "https://us.api.concursolutions.com/api/expense/paymentbatch/v1.1/batch/" +
				strings.Repeat(ids[i][:8], 12) + "$x$y",
		})
		if len(chunk) == cap(chunk) || i == n-1 {
			if err := st.UpsertBatches(b.Context(), chunk, seen); err != nil {
				b.Fatal(err)
			}
			chunk = chunk[:0]
		}
	}
	return ids
}

// BenchmarkRefresh is one refresh of the directory with n batches in the OPEN list (and
// none CLOSED) streamed from a fake Upstream that makes each summary as it hands it over,
// as the Concur client does while it reads, into SQLite: the time of the whole refresh,
// dominated by the store. The second refresh of the same batches (b.Loop's later
// iterations) updates rather than inserts. The peak of the heap during a refresh is
// measured in the bench module (bench/refresh_test.go), with the load suite's tools.
func BenchmarkRefresh(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run("n="+strconv.Itoa(n), func(b *testing.B) {
			st, err := store.Open(b.Context(), store.Config{DataDir: b.TempDir(), Key: make([]byte, 32)})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			up := &genUp{n: n}
			fetch := batch.DirectoryFetch(up, st)
			b.ReportAllocs()
			for b.Loop() {
				if err := fetch(b.Context()); err != nil || up.handed != n {
					b.Fatalf("refresh: %d summaries, %v", up.handed, err)
				}
			}
			if got, err := st.GetBatch(b.Context(), genID(n-1)); err != nil || got.Status != batch.StatusOpen {
				b.Fatalf("last batch: %+v, %v", got, err)
			}
		})
	}
}

// genUp is an Upstream whose OPEN list has n generated batches, made as they are handed.
type genUp struct {
	n      int
	handed int
}

func (u *genUp) ListBatches(_ context.Context, s batch.ListStatus, fn func(batch.Summary) error) error {
	if s != batch.ListOpen {
		return nil
	}
	u.handed = 0
	for i := range u.n {
		id := genID(i)
		if err := fn(batch.Summary{ID: id, Name: "Expense Pay US " + strconv.Itoa(i), Total: "1289.40",
			Currency: "USD", Count: "7", Type: "Employee", PaymentMethod: "Expense Pay by SAP Concur",
			URL: "https://us.api.concursolutions.com/api/expense/paymentbatch/v1.1/batch/" +
				strings.Repeat(id[:8], 12) + "$x$y"}); err != nil {
			return err
		}
		u.handed++
	}
	return nil
}

func (*genUp) CloseBatch(context.Context, string) (batch.CloseResult, error)      { panic("no close") }
func (*genUp) CloseBatchAsync(context.Context, string) (batch.CloseResult, error) { panic("no close") }
func (*genUp) OpenFile(context.Context, string) (*batch.File, error)              { panic("no file") }

// genID is the i-th generated BatchID, GUID-shaped.
func genID(i int) string { return fmt.Sprintf("6F1C2A9E-3B7D-4E58-9A41-%012X", i) }
