package concur

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// A close's answer carries Concur's concur-correlationid: a success in its CloseResult, a
// failure in its Error, whether Concur answered with an error status (with Upstream) or
// with a 200 that could not be used (without); every answer is noted in the context's
// Correlations, a refused token's included.
func TestCorrelationIDOfEachAnswer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		op       operation
		answer   step       // nil: the simulator's
		revoke   bool       // the first request is refused (401/403) and the token renewed
		code     batch.Code // "" for a success
		upstream bool       // the error has an Upstream
	}{
		{name: "close", op: opClose},
		{name: "close after a renewal", op: opClose, revoke: true},
		{name: "list", op: opList},
		{name: "file", op: opFile},
		{name: "close 500 no reports", op: opClose, answer: serveNoReports, code: batch.CodeBatchNotClosable, upstream: true},
		{name: "close 409", op: opClose, answer: serveStatus(409), code: batch.CodeUpstreamConflict, upstream: true},
		{name: "list 429", op: opList, answer: serveStatus(429), code: batch.CodeUpstreamRateLimited,
			upstream: true},
		{name: "file 404", op: opFile, answer: serveStatus(404), code: batch.CodeFileNotFound, upstream: true},
		{name: "close 200 garbage", op: opClose, answer: serveGarbage, code: batch.CodeUpstreamBadResponse},
		{name: "close 200 html", op: opClose, answer: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, "<html></html>")
		}, code: batch.CodeUpstreamBadResponse},
		{name: "file cut mid-stream", op: opFile, answer: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/csv")
			w.Header().Set("Content-Length", "1000")
			fmt.Fprint(w, "a,b\n")
			w.(http.Flusher).Flush()
			serveReset(w, r)
		}, code: batch.CodeUpstreamUnreachable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			if tt.answer != nil {
				f.serve(http.HandlerFunc(tt.answer))
			}
			c, _ := newClient(t, f, nil)
			if tt.revoke {
				if _, err := listOf(t.Context(), c, batch.ListOpen); err != nil { // holds a token now
					t.Fatal(err)
				}
				f.revokeAccess()
			}
			ctx, noted := batch.WithCorrelations(t.Context())
			var (
				res batch.CloseResult
				err error
			)
			if tt.op == opClose {
				res, err = c.CloseBatch(ctx, batchURL(f.srv.URL))
			} else {
				err = call(ctx, c, f, tt.op)
			}
			sent := f.sentAll() // the token's answer too: the refresh was made for this call
			if tt.revoke {
				sent = sent[2:] // the token and the list before
			}
			last := f.lastAPI(t)
			switch {
			case tt.code == "" && err != nil:
				t.Fatalf("%s: %v", tt.op, err)
			case tt.code == "" && tt.op == opClose && res.CorrelationID != last:
				t.Errorf("CloseResult.CorrelationID = %q, want %q, the answer's", res.CorrelationID, last)
			case tt.code != "":
				e := wantCode(t, err, tt.code)
				if e.CorrelationID != last || (e.Upstream != nil) != tt.upstream {
					t.Errorf("Error: CorrelationID %q, Upstream %+v; want %q, an Upstream: %v", e.CorrelationID, e.Upstream,
						last, tt.upstream)
				}
			}
			if ids, _ := noted.IDs(); !cmp.Equal(ids, sent) || len(ids) != 2+btoi(tt.revoke) {
				t.Errorf("noted %q, want every answer's: %q", ids, sent)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// A list tried again notes each answer; its error carries the id of the last answer, the
// one that decided it.
func TestCorrelationIDOfRetriedList(t *testing.T) {
	t.Parallel()
	s := newScripted(t, serveStatus(503), serveStatus(503))
	c, _ := newResilient(t, s.srv.URL, func(c *Config) {
		c.MaxAttempts, c.RetryBudget, c.RetryBaseDelay = 2, 10*time.Second, time.Millisecond
	})
	ctx, noted := batch.WithCorrelations(t.Context())
	_, err := listOf(ctx, c, batch.ListOpen)
	e := wantCode(t, err, batch.CodeUpstreamUnavailable)
	sent := s.sentAPI()
	if ids, _ := noted.IDs(); len(sent) != 2 || !cmp.Equal(ids, sent) || e.CorrelationID != sent[1] {
		t.Errorf("noted %q, error's %q; sent %q: want both noted and the last on the error", ids, e.CorrelationID, sent)
	}
}

// A concur-correlationid comes from outside: anything but 1-128 visible ASCII characters
// is dropped, not cut or cleaned.
func TestCorrelationIDBounded(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", ""},
		{"8E7D1C2B-3A4F-4E5D-9C8B-7A6F5E4D3C2B", "8E7D1C2B-3A4F-4E5D-9C8B-7A6F5E4D3C2B"},
		{"  padded-id \t", "padded-id"},
		{strings.Repeat("x", 128), strings.Repeat("x", 128)},
		{strings.Repeat("x", 129), ""},
		{"two words", ""},
		{"line\nbreak", ""},
		{"tab\tinside", ""},
		{"nul\x00", ""},
		{"del\x7f", ""},
		{"ümlaut", ""},
		{"\xff\xfe", ""},
		{`"quoted"{json}`, `"quoted"{json}`}, // visible ASCII: the log's encoder escapes it
	}
	for _, tt := range tests {
		h := http.Header{}
		h["Concur-Correlationid"] = []string{tt.in}
		if got := correlationID(h); got != tt.want {
			t.Errorf("correlationID(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	// Through the client: a bad header notes nothing and reaches no error.
	f := newFake(t)
	f.serve(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Concur-Correlationid", strings.Repeat("y", 200))
		writeXMLError(w, http.StatusConflict, "Conflict")
	})
	c, _ := newClient(t, f, nil)
	if _, err := c.tokens.get(t.Context()); err != nil { // the token's answer has a good id
		t.Fatal(err)
	}
	ctx, noted := batch.WithCorrelations(context.Background())
	_, err := c.CloseBatch(ctx, batchURL(f.srv.URL))
	if e := wantCode(t, err, batch.CodeUpstreamConflict); e.CorrelationID != "" {
		t.Errorf("CorrelationID = %q, want none", e.CorrelationID)
	}
	if ids, more := noted.IDs(); len(ids) != 0 || more != 0 {
		t.Errorf("noted %q (+%d), want none", ids, more)
	}
}

func FuzzCorrelationID(f *testing.F) {
	f.Add("8E7D1C2B-3A4F-4E5D-9C8B-7A6F5E4D3C2B")
	f.Add("a\r\nb")
	f.Fuzz(func(t *testing.T, v string) {
		got := correlationID(http.Header{"Concur-Correlationid": {v}})
		if len(got) > batch.MaxCorrelationID || strings.ContainsFunc(got, func(r rune) bool { return r < '!' || r > '~' }) {
			t.Fatalf("correlationID(%q) = %q", v, got)
		}
		if got != "" && got != strings.TrimSpace(v) {
			t.Fatalf("correlationID(%q) = %q: changed, not kept or dropped", v, got)
		}
	})
}
