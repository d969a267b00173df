package concur

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/api"
	"github.com/finplat/payment-batch-gateway/internal/batch"
)

func BenchmarkDecodeClose(b *testing.B) {
	body, err := os.ReadFile("testdata/close/reference.xml")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		res, err := decodeClose(bytes.NewReader(body))
		if err != nil || res.BatchStatus != "CLOSED" || res.JobQueueKey == "" {
			b.Fatalf("decodeClose = %+v, %v", res, err)
		}
	}
}

// BenchmarkCloseTranslation is the whole XML -> JSON translation of a close answer:
// Concur's reference example decoded, mapped to the gateway's wire type as
// internal/httpapi's closeResponse does, and marshalled as writeJSON does (the HTTP
// response writer aside: see internal/httpapi's benchmarks for the full request).
func BenchmarkCloseTranslation(b *testing.B) {
	body, err := os.ReadFile("testdata/close/reference.xml")
	if err != nil {
		b.Fatal(err)
	}
	const id = "6F1C2A9E-3B7D-4E58-9A41-0C2D8E7F5B13"
	closedAt := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	translate := func() ([]byte, error) {
		res, err := decodeClose(bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		out := api.CloseResponse{BatchID: id, BatchStatus: res.BatchStatus, Status: res.Status,
			JobQueueKey: res.JobQueueKey, ClosedAt: closedAt.Format(time.RFC3339Nano)}
		if res.FileURL != "" {
			out.FileURL = "/batches/" + id + "/file"
		}
		j, err := json.Marshal(out)
		return append(j, '\n'), err
	}
	want := `{"batchId":"` + id + `","batchStatus":"CLOSED","status":"SUCCESS","jobQueueKey":"d$wIUEkl72LW299WTjTlskdy",` +
		`"fileUrl":"/batches/` + id + `/file","closedAt":"2026-11-24T10:00:00Z"}` + "\n"
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		got, err := translate()
		if err != nil || string(got) != want {
			b.Fatalf("translation = %s, %v; want %s", got, err, want)
		}
	}
}

// BenchmarkDecodeBatchList parses a batch list of n summaries streamed from a generating
// reader (listGen: the XML is made on the fly, as a network body arrives, so no document is
// held in memory): the time and allocations of a parse. The peak of the heap is measured
// in the bench module (bench/list_test.go).
func BenchmarkDecodeBatchList(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run("n="+strconv.Itoa(n), func(b *testing.B) {
			var size int64
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				gen := newListGen(n)
				b.StartTimer()

				got, last, err := parseList(gen)

				b.StopTimer()
				if err != nil || got != n || last != gen.summary(n-1) {
					b.Fatalf("parsed %d of %d summaries, last %+v, err %v", got, n, last, err)
				}
				size = gen.written
				b.StartTimer()
			}
			b.SetBytes(size)
		})
	}
}

// parseList decodes the list and returns how many summaries it held and the last one.
func parseList(r io.Reader) (n int, last batch.Summary, err error) {
	err = decodeBatchList(r, func(s batch.Summary) error {
		n, last = n+1, s
		return nil
	})
	return n, last, err
}

// listGen is an io.Reader that writes a namespaced batch list of n summaries as it is
// read, one summary at a time into a small buffer it reuses, as concursim writes them
// (indented, one per line) with realistic values: GUID BatchIDs and Batch-URLs with a
// 100-character encrypted key. Its own cost is a few percent of the parse.
type listGen struct {
	n, next int    // summaries to write; the next one to write (-1: the header)
	buf     []byte // what is written and not yet read
	off     int
	written int64
	every   int    // call hook after every so many summaries; 0: never
	hook    func() // e.g. a heap sample, from the reading goroutine
}

func newListGen(n int) *listGen { return &listGen{n: n, next: -1, buf: make([]byte, 0, 1024)} }

const listHeader = `<?xml version="1.0" encoding="utf-8"?>` + "\n" +
	`<BatchList xmlns="http://www.concursolutions.com/api/expense/paymentbatch/2011/11" ` +
	`xmlns:i="http://www.w3.org/2001/XMLSchema-instance">` + "\n"

func (g *listGen) Read(p []byte) (int, error) {
	total := 0
	for len(p) > 0 {
		if g.off == len(g.buf) && !g.fill() {
			break
		}
		c := copy(p, g.buf[g.off:])
		g.off += c
		p = p[c:]
		total += c
	}
	g.written += int64(total)
	if total == 0 {
		return 0, io.EOF
	}
	return total, nil
}

// fill writes the next piece into buf; false once everything was written.
func (g *listGen) fill() bool {
	g.buf, g.off = g.buf[:0], 0
	switch {
	case g.next < 0:
		g.buf = append(g.buf, listHeader...)
	case g.next < g.n:
		g.buf = g.appendSummary(g.buf, g.next)
		if g.every > 0 && (g.next+1)%g.every == 0 && g.hook != nil {
			g.hook()
		}
	case g.next == g.n:
		g.buf = append(g.buf, "</BatchList>\n"...)
	default:
		return false
	}
	g.next++
	return true
}

var (
	benchNames    = [...]string{"Expense Pay US", "Corporate Card", "ADP run", "Expense Pay EMEA"}
	benchCurrency = [...]string{"USD", "EUR", "GBP", "CAD"}
	benchType     = [...]string{"Employee", "Card Program"}
	benchMethod   = [...]string{"Expense Pay by SAP Concur", "ADP (via EPIP file)",
		"Company Check (via Accounts Payable)"}
)

const (
	benchOrigin = "https://us.api.concursolutions.com"
	keyAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789$"
	keyLen      = 100
)

// appendSummary appends the i-th <BatchSummary>.
func (g *listGen) appendSummary(b []byte, i int) []byte {
	b = append(b, "  <BatchSummary><BatchName>"...)
	b = append(b, benchNames[i%len(benchNames)]...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, "</BatchName><BatchID>"...)
	b = appendGUID(b, i)
	b = append(b, "</BatchID><BatchTotal>"...)
	b = strconv.AppendInt(b, int64(i%100_000), 10)
	b = append(b, '.', byte('0'+i%10), byte('0'+i/10%10))
	b = append(b, "</BatchTotal><Currency>"...)
	b = append(b, benchCurrency[i%len(benchCurrency)]...)
	b = append(b, "</Currency><Count>"...)
	b = strconv.AppendInt(b, int64(i%50), 10)
	b = append(b, "</Count><Type>"...)
	b = append(b, benchType[i%len(benchType)]...)
	b = append(b, "</Type><PaymentMethod>"...)
	b = append(b, benchMethod[i%len(benchMethod)]...)
	b = append(b, "</PaymentMethod><Batch-URL>"+benchOrigin+"/api/expense/paymentbatch/v1.1/batch/"...)
	b = appendKey(b, i)
	b = append(b, "</Batch-URL></BatchSummary>\n"...)
	return b
}

// appendGUID appends an upper-case GUID that encodes i, as Concur's BatchIDs look.
func appendGUID(b []byte, i int) []byte {
	b = append(b, "6F1C2A9E-3B7D-4E58-9A41-"...)
	const hex = "0123456789ABCDEF"
	for shift := 44; shift >= 0; shift -= 4 {
		b = append(b, hex[(i>>shift)&0xF])
	}
	return b
}

// appendKey appends a keyLen-character pseudo-random encrypted key, unique to i.
func appendKey(b []byte, i int) []byte {
	x := uint64(i)*0x9E3779B97F4A7C15 + 1
	for range keyLen {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b = append(b, keyAlphabet[x%uint64(len(keyAlphabet))])
	}
	return b
}

// summary is what the i-th summary decodes to.
func (g *listGen) summary(i int) batch.Summary {
	name := benchNames[i%len(benchNames)] + " " + strconv.Itoa(i)
	return batch.Summary{
		ID:            string(appendGUID(nil, i)),
		Name:          name,
		Total:         fmt.Sprintf("%d.%d%d", i%100_000, i%10, i/10%10),
		Currency:      benchCurrency[i%len(benchCurrency)],
		Count:         strconv.Itoa(i % 50),
		Type:          benchType[i%len(benchType)],
		PaymentMethod: benchMethod[i%len(benchMethod)],
		URL:           benchOrigin + "/api/expense/paymentbatch/v1.1/batch/" + string(appendKey(nil, i)),
	}
}
