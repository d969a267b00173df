package concur

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// New trusts what internal/config validated and defaulted; it refuses only what it cannot
// build: an unset knob that internal/config sets (none has a safe zero), and a BaseURL it
// cannot take the origin of. Its error never echoes a secret.
func TestNewRefuses(t *testing.T) {
	t.Parallel()
	ok := Config{BaseURL: "https://us.api.concursolutions.com", TokenURL: "https://us.api.concursolutions.com/oauth2/v0/token",
		ClientID: "id", ClientSecret: "s3cr3t-value", RefreshToken: "rt-s3cr3t"}.withDefaults(time.Second)
	tests := []struct {
		name   string
		mutate func(*Config)
		fields []string // every field the error must name; none means valid
	}{
		{"valid", func(*Config) {}, nil},
		{"static token needs no refresh settings", func(c *Config) {
			c.AccessToken, c.TokenURL, c.ClientID, c.ClientSecret, c.RefreshToken = "tok-s3cr3t", "", "", "", ""
		}, nil},
		{"unset knobs", func(c *Config) { *c = Config{BaseURL: c.BaseURL, ClientSecret: "s3cr3t-value"} },
			[]string{"Timeout", "BreakerThreshold", "BreakerOpenInterval", "MaxAttempts", "MaxConcurrent", "AuthScheme"}},
		{"rate limit without a burst", func(c *Config) { c.RateLimit, c.RateBurst = 2, 0 }, []string{"RateBurst"}},
		{"no burst without a rate limit", func(c *Config) { c.RateLimit, c.RateBurst = 0, 0 }, nil},
		{"base with userinfo", func(c *Config) { c.BaseURL = "https://u:s3cr3t-value@h" }, []string{"BaseURL"}},
		{"base not http", func(c *Config) { c.BaseURL = "ftp://h" }, []string{"BaseURL"}},
		{"no base", func(c *Config) { c.BaseURL = "" }, []string{"BaseURL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := ok
			tt.mutate(&cfg)
			_, err := New(cfg)
			if len(tt.fields) == 0 {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("New accepted an unusable config")
			}
			for _, f := range tt.fields {
				if !strings.Contains(err.Error(), f) {
					t.Errorf("error %q does not name %s", err, f)
				}
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error %q echoes a secret", err)
			}
		})
	}
}

func TestListBatches(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		status   batch.ListStatus
		fixture  string
		wantPath string
	}{
		{"all namespaced", batch.ListAll, "testdata/list/namespaced.xml", apiPrefix + "v1.1/batchlist/"},
		{"open plain Batch-Url", batch.ListOpen, "testdata/list/plain.xml", apiPrefix + "v1.1/batchlist/OPEN"},
		{"closed empty", batch.ListClosed, "testdata/list/empty.xml", apiPrefix + "v1.1/batchlist/CLOSED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.serve(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != tt.wantPath || r.Method != http.MethodGet {
					t.Errorf("got %s %s, want GET %s", r.Method, r.URL.Path, tt.wantPath)
				}
				if r.Header.Get("Accept") != "application/xml" || r.Header.Get("User-Agent") != "ua-test" {
					t.Errorf("headers: Accept %q, User-Agent %q", r.Header.Get("Accept"), r.Header.Get("User-Agent"))
				}
				serveFixture(t, w, tt.fixture, f.srv.URL)
			})
			c, _ := newClient(t, f, func(c *Config) { c.UserAgent = "ua-test" })
			got, err := listOf(t.Context(), c, tt.status)
			if err != nil {
				t.Fatal(err)
			}
			body := strings.ReplaceAll(string(readFile(t, tt.fixture)), "{{host}}", f.srv.URL)
			want, err := decodeList(strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			assertEqual(t, want, got)
			if tt.fixture == "testdata/list/namespaced.xml" {
				assertEqual(t, wantNamespacedList(f.srv.URL), got)
			}
		})
	}
}

func TestListBatchesUnknownFilter(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t, newFake(t), nil)
	_, err := listOf(t.Context(), c, "OPEN/../x")
	wantCode(t, err, batch.CodeInternal)
}

// Close goes out as POST {Batch-URL}/close with the '$' literal, Content-Length: 0 and no
// chunked encoding, and translates the reference page's example exactly.
func TestCloseBatchWire(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.serve(func(w http.ResponseWriter, r *http.Request) {
		want := "/api/expense/paymentbatch/v1.1/batch/pQ7v$sK2mLx9RtB4$pWcYe0nHa3Jd$xs/close"
		if r.RequestURI != want {
			t.Errorf("RequestURI = %q, want %q", r.RequestURI, want)
		}
		if r.Method != http.MethodPost || r.ContentLength != 0 || len(r.TransferEncoding) != 0 ||
			r.Header.Get("Content-Length") != "0" {
			t.Errorf("%s ContentLength=%d TransferEncoding=%v Content-Length=%q", r.Method,
				r.ContentLength, r.TransferEncoding, r.Header.Get("Content-Length"))
		}
		if r.Header.Get("Accept") != "application/xml" || r.Header.Get("User-Agent") != DefaultUserAgent {
			t.Errorf("Accept %q, User-Agent %q", r.Header.Get("Accept"), r.Header.Get("User-Agent"))
		}
		serveFixture(t, w, "testdata/close/reference.xml", f.srv.URL)
	})
	c, _ := newClient(t, f, nil)
	got, err := c.CloseBatch(t.Context(), "  "+batchURL(f.srv.URL)+"\n")
	if err != nil {
		t.Fatal(err)
	}
	assertEqual(t, batch.CloseResult{BatchStatus: "CLOSED", Status: "SUCCESS", JobQueueKey: "d$wIUEkl72LW299WTjTlskdy",
		FileURL:       "http:// www.concursolutions.com/api/expense/paymentbatch/v1.1/batch/n$s4MtBKgvoJxAYcbggR7eD2jRU$sxYjePU/file",
		CorrelationID: f.lastAPI(t)}, got)
	// The close happened; its File-Url is unusable, and OpenFile says so without sending anything.
	_, err = c.OpenFile(t.Context(), got.FileURL)
	wantCode(t, err, batch.CodeUpstreamBadResponse)
	if n := f.apiCalls(); n != 1 {
		t.Errorf("API calls = %d, want 1", n)
	}
}

// An already-escaped Batch-URL is sent as given, not escaped twice.
func TestCloseBatchNoDoubleEscape(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	const escaped = "/api/expense/paymentbatch/v1.1/batch/pQ7v%24sK2mLx9RtB4%24pWcYe0nHa3Jd%24xs" // the fake's first batch
	f.observe(func(r *http.Request) {
		if want := escaped + "/close"; r.RequestURI != want {
			t.Errorf("RequestURI = %q, want %q", r.RequestURI, want)
		}
	})
	c, _ := newClient(t, f, nil)
	if _, err := c.CloseBatch(t.Context(), f.srv.URL+escaped); err != nil {
		t.Fatal(err)
	}
}

// A File-Url on a foreign host does not fail the close (a retry would regenerate the file).
func TestCloseBatchForeignFileURL(t *testing.T) {
	t.Parallel()
	f, evil := newFake(t), newRecorder(t)
	foreign := evil.srv.URL + "/api/expense/paymentbatch/v1.1/batch/x/file"
	f.serve(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		fmt.Fprintf(w, "<BatchStatus><BatchStatus>CLOSED</BatchStatus><File-Url>%s</File-Url></BatchStatus>", foreign)
	})
	c, _ := newClient(t, f, nil)
	res, err := c.CloseBatch(t.Context(), batchURL(f.srv.URL))
	if err != nil || res.FileURL != foreign {
		t.Fatalf("CloseBatch = %+v, %v", res, err)
	}
	_, err = c.OpenFile(t.Context(), res.FileURL)
	wantCode(t, err, batch.CodeUpstreamHostRefused)
	if evil.calls.Load() != 0 {
		t.Errorf("the foreign host received %d requests", evil.calls.Load())
	}
}

// wantCode asserts err is a *batch.Error with code and returns it.
func wantCode(t *testing.T, err error, code batch.Code) *batch.Error {
	t.Helper()
	e, ok := errors.AsType[*batch.Error](err)
	if !ok {
		t.Fatalf("error = %v (%T), want *batch.Error with code %s", err, err, code)
	}
	if e.Code != code {
		t.Fatalf("code = %s, want %s (error: %v)", e.Code, code, err)
	}
	// Concur: after a time-out, wait 5 minutes before retrying. Every time-out says so.
	if code == batch.CodeUpstreamTimeout && e.RetryAfter != 5*time.Minute {
		t.Errorf("RetryAfter = %v, want 5m0s on a time-out", e.RetryAfter)
	}
	for _, secret := range []string{"at-", "rt-", "client-secret", "static-", "Bearer", "Authorization"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q contains %q", err, secret)
		}
	}
	return e
}

// call runs one operation against f, as the status table needs.
func call(ctx context.Context, c *Client, f *fakeConcur, op operation) error {
	switch op {
	case opList:
		_, err := listOf(ctx, c, batch.ListOpen)
		return err
	case opClose:
		_, err := c.CloseBatch(ctx, batchURL(f.srv.URL))
		return err
	default:
		file, err := c.OpenFile(ctx, f.srv.URL+"/api/expense/paymentbatch/v1.1/batch/J0b$Run/file")
		if err != nil {
			return err
		}
		defer file.Body.Close()
		_, err = io.Copy(io.Discard, file.Body)
		return err
	}
}

// CloseBatchAsync posts to the Batch-URL with its version segment set to v1.2, exactly
// once, and refuses a Batch-URL whose path is not a v1.1 batch.
func TestCloseBatchAsyncUsesV12(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		paths []string
	)
	f := newFake(t)
	f.AddAccessToken("static-token")
	f.observe(func(r *http.Request) {
		mu.Lock()
		paths = append(paths, r.Method+" "+r.URL.EscapedPath())
		mu.Unlock()
	})
	c, err := New(Config{BaseURL: f.srv.URL, AccessToken: "static-token"}.withDefaults(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)

	res, err := c.CloseBatchAsync(t.Context(), batchURL(f.srv.URL))
	if err != nil || res.JobQueueKey == "" || res.Status != "SUCCESS" {
		t.Fatalf("CloseBatchAsync = %+v, %v", res, err)
	}
	for _, bad := range []string{
		strings.Replace(batchURL(f.srv.URL), "/v1.1/", "/v1.2/", 1),
		f.srv.URL + "/api/expense/paymentbatch/v1.1/batchlist/OPEN",
	} {
		if _, err := c.CloseBatchAsync(t.Context(), bad); batch.ErrorCode(err) != batch.CodeUpstreamBadResponse {
			t.Errorf("CloseBatchAsync(%s) = %v, want upstream_bad_response", bad, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(paths) != 1 || paths[0] != "POST /api/expense/paymentbatch/v1.2/batch/pQ7v$sK2mLx9RtB4$pWcYe0nHa3Jd$xs/close" ||
		f.apiCalls() != 1 {
		t.Errorf("Concur received %q (%d API calls)", paths, f.apiCalls())
	}
	if n := f.Stats().AsyncCloses["6f1c2a9e-3b7d-4e58-9a41-0c2d8e7f5b13"]; n != 1 {
		t.Errorf("Concur scheduled %d v1.2 closes, want 1", n)
	}
}

func TestOpenFile(t *testing.T) {
	t.Parallel()
	zip := append([]byte("PK\x03\x04"), bytes.Repeat([]byte{0, 1, 2, 0xff}, 5000)...)
	csv := []byte("employee,amount\nE1,10.00\n")
	tests := []struct {
		name        string
		contentType string // "" sends none
		body        []byte
		length      bool // send Content-Length
		disposition string
		wantType    string
	}{
		{"csv as sent", "text/csv; charset=utf-8", csv, true, `attachment; filename="b.csv"`, "text/csv; charset=utf-8"},
		{"zip as sent", "application/zip", zip, false, "", "application/zip"},
		{"zip sniffed", "application/octet-stream", zip, true, "", "application/zip"},
		{"csv sniffed", "", csv, false, "", "text/csv"},
		{"tiny sniffed", "", []byte("a"), true, "", "text/csv"},
		{"empty sniffed", "", nil, true, "", "text/csv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.serve(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Accept") != "*/*" || r.Method != http.MethodGet {
					t.Errorf("%s Accept %q", r.Method, r.Header.Get("Accept"))
				}
				w.Header()["Content-Type"] = nil // no sniffing by net/http
				if tt.contentType != "" {
					w.Header().Set("Content-Type", tt.contentType)
				}
				if tt.disposition != "" {
					w.Header().Set("Content-Disposition", tt.disposition)
				}
				if tt.length {
					w.Header().Set("Content-Length", strconv.Itoa(len(tt.body)))
				}
				w.(http.Flusher).Flush() // headers first: no Content-Length unless set
				w.Write(tt.body)
			})
			c, _ := newClient(t, f, nil)
			file, err := c.OpenFile(t.Context(), f.srv.URL+"/api/expense/paymentbatch/v1.1/batch/J0b$Run/file")
			if err != nil {
				t.Fatal(err)
			}
			defer file.Body.Close()
			got, err := io.ReadAll(file.Body)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.body) {
				t.Errorf("body differs: got %d bytes, want %d", len(got), len(tt.body))
			}
			wantLen := int64(-1)
			if tt.length {
				wantLen = int64(len(tt.body))
			}
			assertEqual(t, batch.File{ContentType: tt.wantType, ContentLength: wantLen,
				ContentDisposition: tt.disposition}, *file, cmpopts.IgnoreFields(batch.File{}, "Body"))
		})
	}
}

// Each Read must make progress within Timeout: a slow but steady file passes, a stalled one fails.
func TestOpenFileIdleTimeout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		gaps  []time.Duration // pause before each chunk
		code  batch.Code      // "" for success
		total int
	}{
		{"steady, longer than the time-out in total", []time.Duration{0, 100, 100, 100, 100, 100}, "", 6},
		{"stalls", []time.Duration{0, 50, 3000}, batch.CodeUpstreamTimeout, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.serve(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/csv")
				for _, gap := range tt.gaps {
					select {
					case <-time.After(gap * time.Millisecond):
					case <-r.Context().Done():
						return
					}
					w.Write([]byte("x,y\n"))
					w.(http.Flusher).Flush()
				}
			})
			c, _ := newClient(t, f, func(c *Config) { c.Timeout = 300 * time.Millisecond })
			file, err := c.OpenFile(t.Context(), f.srv.URL+"/api/expense/paymentbatch/v1.1/batch/J0b$Run/file")
			if err != nil {
				t.Fatal(err)
			}
			defer file.Body.Close()
			got, err := io.ReadAll(file.Body)
			if tt.code == "" {
				if err != nil {
					t.Fatal(err)
				}
			} else {
				wantCode(t, err, tt.code)
			}
			if len(got) != 4*tt.total {
				t.Errorf("read %d bytes, want %d", len(got), 4*tt.total)
			}
		})
	}
}

// A slow consumer is not a stalled Concur: the idle timer runs only inside Read.
func TestOpenFileSlowConsumer(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	c, _ := newClient(t, f, func(c *Config) { c.Timeout = 200 * time.Millisecond })
	c.tokens.timeout = 5 * time.Second // the test is about the file, not a slow refresh under load
	fileURL := f.srv.URL + "/api/expense/paymentbatch/v1.1/batch/J0b$Run/file"
	file, err := c.OpenFile(t.Context(), fileURL)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Body.Close()
	time.Sleep(600 * time.Millisecond) // three time-outs without a Read
	got, err := io.ReadAll(file.Body)
	if err != nil {
		t.Fatalf("ReadAll = %q, %v", got, err)
	}
	again, err := c.OpenFile(t.Context(), fileURL) // read at once: the same file, whole
	if err != nil {
		t.Fatal(err)
	}
	defer again.Body.Close()
	if want, err := io.ReadAll(again.Body); err != nil || len(want) == 0 || !bytes.Equal(got, want) {
		t.Fatalf("ReadAll after a pause = %q, at once = %q, %v", got, want, err)
	}
}

// listOf collects the summaries of a batch list.
func listOf(ctx context.Context, c *Client, status batch.ListStatus) ([]batch.Summary, error) {
	out := []batch.Summary{}
	err := c.ListBatches(ctx, status, func(s batch.Summary) error { out = append(out, s); return nil })
	return out, err
}

// Through the client: the consumer's error is returned as is, not retried, and does not
// count toward the breaker.
func TestListBatchesConsumerError(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	serveList(f, 50)
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
	if got := f.apiCalls(); got != 3 {
		t.Errorf("%d list requests for 3 lists, want 3 (no retries)", got)
	}
	wantBreaker(t, c, BreakerAPI, BreakerClosed) // consumer errors are not Concur's
}

// Ready asks Concur for nothing while the token is fresh, renews a stale one, and reports
// a renewal that fails.
func TestReady(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	c, clock := newClient(t, f, nil)
	t.Cleanup(c.CloseIdleConnections)
	ctx := context.Background()
	for i := range 3 {
		if err := c.Ready(ctx); err != nil {
			t.Fatalf("Ready #%d: %v", i, err)
		}
	}
	if n := f.tokenCalls(); n != 1 {
		t.Errorf("token requests = %d, want 1: a fresh token needs none", n)
	}
	f.failTokens("status", http.StatusBadGateway, "")
	if err := c.Ready(ctx); err != nil {
		t.Errorf("Ready with a fresh token while the token endpoint is down: %v", err)
	}
	clock.advance(2 * time.Hour)
	if err := c.Ready(ctx); err == nil {
		t.Error("Ready with an expired token and the token endpoint down: nil, want an error")
	}
	if n := f.tokenCalls(); n != 2 {
		t.Errorf("token requests = %d, want 2", n)
	}

	static, _ := newResilient(t, closedURL(t), nil)
	if err := static.Ready(ctx); err != nil {
		t.Errorf("Ready with a static token: %v", err)
	}
}
