package concur

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// listOf collects the summaries of a batch list.
func listOf(ctx context.Context, c *Client, status batch.ListStatus) ([]batch.Summary, error) {
	out := []batch.Summary{}
	err := c.ListBatches(ctx, status, func(s batch.Summary) error { out = append(out, s); return nil })
	return out, err
}

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

// Through the client: the consumer's error is returned as is, not retried, and does not
// count toward the breaker.
func TestListBatchesConsumerError(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	body := batchListXML(50, f.srv.URL)
	f.set(func(f *fakeConcur) {
		f.api = func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/xml")
			w.Write(body)
		}
	})
	c, _ := newClient(t, f, func(c *Config) { c.BreakerThreshold = 1 })
	stop := &batch.Error{Code: batch.CodeStoreUnavailable, Detail: "store down"}
	for range 3 {
		n := 0
		err := c.ListBatches(t.Context(), batch.ListOpen, func(batch.Summary) error {
			if n++; n == 10 {
				return stop
			}
			return nil
		})
		if err != stop {
			t.Fatalf("err = %v, want the consumer's %v", err, stop)
		}
	}
	if got := f.apiCalls.Load(); got != 3 {
		t.Errorf("%d list requests for 3 lists, want 3 (no retries)", got)
	}
	if got := c.BreakerState(BreakerAPI); got != BreakerClosed {
		t.Errorf("breaker %s after consumer errors, want closed", got)
	}
}

// The consumer's time (the store writing what the list holds) is not Concur's: a consumer
// slower than the whole time-out neither times the call out, nor has the list read again,
// nor counts against Concur in the breaker.
func TestListSlowConsumerNotChargedToConcur(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	body := batchListXML(600, f.srv.URL) // over 64 KiB: the body is still being read when the consumer stalls
	f.set(func(f *fakeConcur) {
		f.api = func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/xml")
			_, _ = w.Write(body)
		}
	})
	c, _ := newClient(t, f, func(c *Config) {
		c.Timeout = time.Second
		c.MaxAttempts = 3
		c.BreakerThreshold = 1
		c.RetryBudget = 10 * time.Second
		c.RetryBaseDelay = time.Millisecond
	})
	n := 0
	err := c.ListBatches(t.Context(), batch.ListOpen, func(batch.Summary) error {
		if n++; n == 200 || n == 400 {
			time.Sleep(1200 * time.Millisecond) // one chunk's upsert on a busy store
		}
		return nil
	})
	if err != nil || n != 600 || f.apiCalls.Load() != 1 || c.BreakerState(BreakerAPI) != "closed" {
		t.Errorf("err=%v, %d summaries, %d list calls, breaker %s; want nil, 600, 1, closed",
			err, n, f.apiCalls.Load(), c.BreakerState(BreakerAPI))
	}
}
