package concur

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestDecodeCloseGolden(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/close/*.xml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, in := range files {
		t.Run(filepath.Base(in), func(t *testing.T) {
			t.Parallel()
			res, err := decodeClose(bytes.NewReader(readFile(t, in)))
			if err != nil {
				t.Fatalf("decodeClose: %v", err)
			}
			got, err := json.MarshalIndent(res, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := strings.TrimSuffix(in, ".xml") + ".golden.json"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if want := readFile(t, golden); !bytes.Equal(got, want) {
				t.Errorf("%s mismatch (-want +got):\n-%s\n+%s", golden, want, got)
			}
		})
	}
}

// The reference page's example must translate exactly, stray space included.
func TestDecodeCloseReference(t *testing.T) {
	t.Parallel()
	got, err := decodeClose(bytes.NewReader(readFile(t, "testdata/close/reference.xml")))
	if err != nil {
		t.Fatal(err)
	}
	want := batch.CloseResult{
		BatchStatus: "CLOSED",
		Status:      "SUCCESS",
		JobQueueKey: "d$wIUEkl72LW299WTjTlskdy",
		FileURL:     "http:// www.concursolutions.com/api/expense/paymentbatch/v1.1/batch/n$s4MtBKgvoJxAYcbggR7eD2jRU$sxYjePU/file",
	}
	assertEqual(t, want, got)
}

func TestDecodeBatchList(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		file string
		want []batch.Summary
	}{
		{"namespaced Batch-URL", "testdata/list/namespaced.xml", wantNamespacedList("H")},
		{"plain Batch-Url odd case", "testdata/list/plain.xml", []batch.Summary{{
			ID: "a1b2", Name: "ADP run", Total: "10.00", Currency: "GBP", Count: "1", Type: "Employee",
			PaymentMethod: "ADP (via EPIP file)", URL: "H/api/expense/paymentbatch/v1.1/batch/Xy$9",
		}}},
		{"empty", "testdata/list/empty.xml", []batch.Summary{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := strings.ReplaceAll(string(readFile(t, tt.file)), "{{host}}", "H")
			got, err := decodeList(strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			assertEqual(t, tt.want, got)
		})
	}
}

func TestDecodeErrorBody(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		file    string
		want    errorBody
		wantErr bool
	}{
		{"plain", "testdata/error/plain.xml", errorBody{Message: "Batch ID 12345 is invalid.",
			ServerTime: "2024-03-05T14:02:11", ID: "8A7C3F0E-5B21-4D9A-A1E2-7F6B5C4D3E21"}, false},
		{"namespaced", "testdata/error/namespaced.xml", errorBody{Message: notClosableMsg,
			ServerTime: "2024-03-05T14:02:11", ID: "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0"}, false},
		{"message with markup", "testdata/error/markup_message.xml",
			errorBody{Message: "Request limit exceeded", ID: "AB"}, false},
		{"html", "testdata/error/html.html", errorBody{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := decodeErrorBody(bytes.NewReader(readFile(t, tt.file)))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			assertEqual(t, tt.want, got)
		})
	}
}

func TestDecodeHostile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
	}{
		{"billion laughs", billionLaughs("BatchStatus")},
		{"deep nesting", deepNesting("BatchStatus", 100_000)},
		{"deep nesting in a field", "<BatchStatus><Status>" + deepNesting("a", 100_000) + "</Status></BatchStatus>"},
		{"undeclared entity", "<BatchStatus><Status>&lol;</Status></BatchStatus>"},
		{"external entity", `<!DOCTYPE BatchStatus [<!ENTITY x SYSTEM "file:///etc/passwd">]><BatchStatus><Status>&x;</Status></BatchStatus>`},
		{"wrong root", "<Error><Message>x</Message></Error>"},
		{"truncated", "<BatchStatus><Status>SUCC"},
		{"empty", ""},
		{"garbage", "\x00\x01garbage{}"},
		{"unsupported charset", `<?xml version="1.0" encoding="ebcdic"?><BatchStatus/>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := decodeClose(strings.NewReader(tt.body)); err == nil {
				t.Error("decodeClose accepted it")
			}
			list := strings.ReplaceAll(tt.body, "BatchStatus", "BatchList")
			if _, err := decodeList(strings.NewReader(list)); err == nil {
				t.Error("decodeBatchList accepted it")
			}
		})
	}
}

func billionLaughs(root string) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0"?><!DOCTYPE ` + root + ` [<!ENTITY lol "lol">`)
	prev := "lol"
	for i := 1; i <= 9; i++ {
		cur := fmt.Sprintf("lol%d", i)
		fmt.Fprintf(&b, `<!ENTITY %s "%s">`, cur, strings.Repeat("&"+prev+";", 10))
		prev = cur
	}
	b.WriteString(`]><` + root + `><Status>&lol9;</Status></` + root + `>`)
	return b.String()
}

func deepNesting(root string, depth int) string {
	return "<" + root + ">" + strings.Repeat("<a>", depth) + strings.Repeat("</a>", depth) + "</" + root + ">"
}

func FuzzDecodeClose(f *testing.F) {
	addSeeds(f, "testdata/close/*.xml")
	f.Add([]byte(billionLaughs("BatchStatus")))
	f.Add([]byte(deepNesting("BatchStatus", 100)))
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = decodeClose(bytes.NewReader(b)) })
}

func FuzzDecodeBatchList(f *testing.F) {
	addSeeds(f, "testdata/list/*.xml")
	f.Add([]byte(deepNesting("BatchList", 100)))
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = decodeList(bytes.NewReader(b)) })
}

func FuzzDecodeError(f *testing.F) {
	addSeeds(f, "testdata/error/*")
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = decodeErrorBody(bytes.NewReader(b)) })
}

func addSeeds(f *testing.F, pattern string) {
	f.Helper()
	files, _ := filepath.Glob(pattern)
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
}

// batchListXML builds a namespaced batch list of n summaries.
func batchListXML(n int, host string) []byte {
	var b bytes.Buffer
	b.WriteString(`<BatchList xmlns="http://www.concursolutions.com/api/expense/paymentbatch/2011/11" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">`)
	for i := range n {
		fmt.Fprintf(&b, `<BatchSummary><BatchName>Batch %d</BatchName><BatchID>6f1c2a9e-3b7d-4e58-9a41-%012d</BatchID>`+
			`<BatchTotal>%d.40</BatchTotal><Currency>USD</Currency><Count>%d</Count><Type>Employee</Type>`+
			`<PaymentMethod>Expense Pay by SAP Concur</PaymentMethod>`+
			`<Batch-URL>%s/api/expense/paymentbatch/v1.1/batch/pQ7v$sK2m$%d</Batch-URL></BatchSummary>`, i, i, i, i%50, host, i)
	}
	b.WriteString(`</BatchList>`)
	return b.Bytes()
}

const notClosableMsg = "The batch you attempted to close does not contain any reports. If you recently approved reports for payment, wait 30 minutes and try again."

func wantNamespacedList(host string) []batch.Summary {
	return []batch.Summary{
		{ID: "6f1c2a9e-3b7d-4e58-9a41-0c2d8e7f5b13", Name: "Expense Pay US", Total: "1289.40", Currency: "USD",
			Count: "7", Type: "Employee", PaymentMethod: "Expense Pay by Concur",
			URL: host + "/api/expense/paymentbatch/v1.1/batch/pQ7v$sK2mLx9RtB4$pWcYe0nHa3Jd$xs"},
		{ID: "12345678901234567890", Name: "Corporate Card", Total: "0.00", Currency: "EUR", Count: "0",
			Type: "Card Program", PaymentMethod: "Company Check (via Accounts Payable)",
			URL: host + "/api/expense/paymentbatch/v1.1/batch/aB3$cD4eF5"},
	}
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// assertEqual compares with cmp.Diff and reports the difference.
func assertEqual[T any](t *testing.T, want, got T, opts ...cmp.Option) {
	t.Helper()
	if diff := cmp.Diff(want, got, opts...); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
}
