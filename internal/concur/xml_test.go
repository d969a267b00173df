package concur

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/google/go-cmp/cmp"
)

// decodeList collects what decodeBatchList yields.
func decodeList(r io.Reader) ([]batch.Summary, error) {
	out := []batch.Summary{}
	err := decodeBatchList(r, func(s batch.Summary) error { out = append(out, s); return nil })
	return out, err
}

// listCases are batch lists at the edges of XML: testdata/list/cases.golden.json holds
// what each decodes to (run with -update to rewrite it).
func TestDecodeBatchListCases(t *testing.T) {
	t.Parallel()
	const (
		open  = `<BatchList xmlns="urn:x" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">` + "\n  "
		sum   = `<BatchSummary><BatchID>id-1</BatchID><Batch-URL>https://h/u/1</Batch-URL></BatchSummary>`
		close = "\n</BatchList>"
	)
	tests := []struct{ name, doc string }{
		{"typical", open + sum + sum + close},
		{"self-closing root", `<BatchList/>`},
		{"empty root", `<BatchList></BatchList>`},
		{"no spaces", `<BatchList>` + sum + sum + `</BatchList>`},
		{"CRLF and tabs", strings.ReplaceAll(open+sum+"\t"+sum+close, "\n", "\r\n")},
		{"CR in a field", open + "<BatchSummary><BatchName>a\r\nb\rc\n\r</BatchName></BatchSummary>" + close},
		{"entities", open + `<BatchSummary><BatchName> AT&amp;T &lt;&gt;&apos;&quot; </BatchName></BatchSummary>` + close},
		{"]]&gt; is fine", open + `<BatchSummary><BatchName>]]&gt;]]</BatchName></BatchSummary>` + close},
		{"]]> is not", open + `<BatchSummary><BatchName>a]]>b</BatchName></BatchSummary>` + close},
		{"]] then entity then >", open + `<BatchSummary><BatchName>]]&amp;></BatchName></BatchSummary>` + close},
		{"numeric reference", open + `<BatchSummary><BatchName>&#233;&#x41;</BatchName></BatchSummary>` + close},
		{"unknown entity", open + `<BatchSummary><BatchName>&nbsp;</BatchName></BatchSummary>` + close},
		{"entity without semicolon", open + `<BatchSummary><BatchName>&amp</BatchName></BatchSummary>` + close},
		{"non-ASCII text", open + "<BatchSummary><BatchName>Zahlungslauf M\u00fcnchen \u20ac \U0001F4B6</BatchName></BatchSummary>" + close},
		{"non-ASCII space trimmed", open + "<BatchSummary><BatchName>\u00a0x\u3000</BatchName></BatchSummary>" + close},
		{"invalid UTF-8", open + "<BatchSummary><BatchName>\xff</BatchName></BatchSummary>" + close},
		{"U+FFFE", open + "<BatchSummary><BatchName>\uFFFE</BatchName></BatchSummary>" + close},
		{"control character", open + "<BatchSummary><BatchName>\x01</BatchName></BatchSummary>" + close},
		{"non-ASCII name", open + "<BatchSummary><Bätch>x</Bätch><BatchID>1</BatchID></BatchSummary>" + close},
		{"nil field", open + `<BatchSummary><BatchName i:nil="true"/><BatchName>second</BatchName></BatchSummary>` + close},
		{"nil field with text", open + `<BatchSummary><BatchName i:nil=" true ">x</BatchName></BatchSummary>` + close},
		{"nil false", open + `<BatchSummary><BatchName i:nil='false'>x</BatchName></BatchSummary>` + close},
		{"nil summary", open + `<BatchSummary i:nil="true"><BatchID>x</BatchID></BatchSummary>` + sum + close},
		{"NIL any case, unprefixed", open + `<BatchSummary><BatchID NIL = "true" >x</BatchID></BatchSummary>` + close},
		{"empty field kept first", open + `<BatchSummary><BatchID></BatchID><BatchID>x</BatchID></BatchSummary>` + close},
		{"self-closing summary", open + `<BatchSummary/>` + close},
		{"self-closing summary with space", open + `<BatchSummary />` + close},
		{"field any case", open + `<batchsummary><BATCHID>x</BATCHID><batch-url>u</batch-url><Batch-Url>v</Batch-Url></batchsummary>` + close},
		{"prefixed names", open + `<p:BatchSummary xmlns:p="urn:p"><p:BatchID>x</p:BatchID></p:BatchSummary>` + close},
		{"prefix mismatch", open + `<p:BatchSummary xmlns:p="urn:p"><p:BatchID>x</q:BatchID></p:BatchSummary>` + close},
		{"two colons", open + `<BatchSummary><a:b:BatchID>x</a:b:BatchID></BatchSummary>` + close},
		{"leading colon", open + `<BatchSummary><:BatchID>x</:BatchID></BatchSummary>` + close},
		{"trailing colon", open + `<BatchSummary><BatchID:>x</BatchID:></BatchSummary>` + close},
		{"markup in a field", open + `<BatchSummary><BatchName>a<b>b</b> c<d/>d</BatchName></BatchSummary>` + close},
		{"text between fields", open + `<BatchSummary>junk<BatchID>x</BatchID>more</BatchSummary>` + close},
		{"text between summaries", open + sum + "junk" + sum + close},
		{"other children", open + `<Other><BatchID>x</BatchID></Other><Other/>` + sum + close},
		{"comment in a summary", open + `<BatchSummary><!-- c --><BatchID>x<!-- c -->y</BatchID></BatchSummary>` + close},
		{"comment between summaries", open + sum + `<!-- c -->` + sum + close},
		{"CDATA", open + `<BatchSummary><BatchName><![CDATA[a<b]]></BatchName></BatchSummary>` + close},
		{"processing instruction", open + sum + `<?pi x?>` + sum + close},
		{"xml declaration inside", open + sum + `<?xml version="1.0" encoding="latin1"?>` + sum + close},
		{"doctype inside", open + sum + `<!DOCTYPE x>` + sum + close},
		{"mismatched end", open + `<BatchSummary><BatchID>x</BatchName></BatchSummary>` + close},
		{"end tag with spaces", open + `<BatchSummary ><BatchID >x</BatchID  ></BatchSummary` + "\n>" + close},
		{"attribute without value", open + `<BatchSummary a><BatchID>x</BatchID></BatchSummary>` + close},
		{"unquoted attribute", open + `<BatchSummary a=b><BatchID>x</BatchID></BatchSummary>` + close},
		{"attribute with <", open + `<BatchSummary a="<"><BatchID>x</BatchID></BatchSummary>` + close},
		{"attribute with entity", open + `<BatchSummary><BatchID i:nil="&#116;rue">x</BatchID></BatchSummary>` + close},
		{"attributes without space", open + `<BatchSummary a="1"b='2'><BatchID>x</BatchID></BatchSummary>` + close},
		{"bad slash", open + `<BatchSummary/ ><BatchID>x</BatchID></BatchSummary>` + close},
		{"space after <", open + `< BatchSummary/>` + close},
		{"digit name", open + `<1BatchSummary/>` + close},
		{"deep nesting", open + `<BatchSummary><BatchName>` + strings.Repeat("<a>", 40) + "x" + strings.Repeat("</a>", 40) + `</BatchName></BatchSummary>` + close},
		{"nesting of 7", open + `<BatchSummary><BatchName>` + strings.Repeat("<a>", 7) + "x" + strings.Repeat("</a>", 7) + `</BatchName></BatchSummary>` + close},
		{"unclosed", open + sum + `<BatchSummary><BatchID>x`},
		{"truncated entity", open + `<BatchSummary><BatchName>&am`},
		{"truncated rune", open + "<BatchSummary><BatchName>\xc3"},
		{"stray end at depth 1", open + sum + `</Other>` + close},
		{"garbage after the root", open + sum + close + `<<<garbage`},
		{"huge field", open + `<BatchSummary><BatchName>` + strings.Repeat("x", 3*64<<10) + `</BatchName><BatchID>1</BatchID></BatchSummary>` + sum + close},
		{"utf-16 declared", `<?xml version="1.0" encoding="utf-16"?>` + open + sum + close},
		{"BOM", "\ufeff" + open + sum + close},
	}
	type outcome struct {
		Summaries []batch.Summary `json:"summaries"`
		Err       bool            `json:"err,omitempty"`
	}
	got := map[string]outcome{}
	for _, tt := range tests {
		s, err := decodeList(strings.NewReader(tt.doc))
		o := outcome{s, err != nil}
		for name, r := range map[string]io.Reader{
			"one byte": iotest.OneByteReader(strings.NewReader(tt.doc)),
			"halves":   iotest.HalfReader(strings.NewReader(tt.doc)),
			"data+EOF": iotest.DataErrReader(strings.NewReader(tt.doc)),
		} {
			s, err := decodeList(r)
			if (err != nil) != o.Err {
				t.Errorf("%s, %s: err = %v", tt.name, name, err)
			}
			assertEqual(t, o.Summaries, s)
		}
		got[tt.name] = o
	}
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	const golden = "testdata/list/cases.golden.json"
	if *update {
		if err := os.WriteFile(golden, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if want := readFile(t, golden); !bytes.Equal(b, want) {
		t.Errorf("%s differs: run go test -update and review the diff", golden)
	}
}

// A generated list of 3000 summaries, through a reader that cuts it anywhere.
func TestDecodeBatchListGenerated(t *testing.T) {
	t.Parallel()
	doc, err := io.ReadAll(newListGen(3000))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []io.Reader{bytes.NewReader(doc), iotest.HalfReader(bytes.NewReader(doc))} {
		got, err := decodeList(r)
		if err != nil || len(got) != 3000 || got[2999] != newListGen(0).summary(2999) {
			t.Fatalf("%d summaries, %v", len(got), err)
		}
	}
}

// An error of the consumer stops the list and comes back as it is.
func TestListConsumerError(t *testing.T) {
	t.Parallel()
	stop := errors.New("store down")
	n := 0
	err := decodeBatchList(newListGen(1000), func(batch.Summary) error {
		if n++; n == 700 {
			return stop
		}
		return nil
	})
	if err != stop || n != 700 {
		t.Fatalf("err = %v after %d summaries, want %v after 700", err, n, stop)
	}
}

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
