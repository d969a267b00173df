package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/api/client"
)

const key = "pbg_secret-key-value"

func newClient(t *testing.T, h http.HandlerFunc, timeout time.Duration) *client.Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := client.New(client.Config{BaseURL: srv.URL, Key: key, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func noKey(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("want an error")
	}
	if s := fmt.Sprintf("%v %+v %#v", err, err, err); strings.Contains(s, key) {
		t.Errorf("the key is in the error: %s", s)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]client.Config{
		"no URL":         {Key: key},
		"relative URL":   {BaseURL: "gateway.internal", Key: key},
		"ftp":            {BaseURL: "ftp://gateway.internal", Key: key},
		"user info":      {BaseURL: "https://user:" + key + "@gateway.internal"},
		"query":          {BaseURL: "https://gateway.internal?key=" + key},
		"key with CR LF": {BaseURL: "https://gateway.internal", Key: key + "\r\nX-Injected: 1"},
		"key with space": {BaseURL: "https://gateway.internal", Key: "Bearer " + key},
	} {
		_, err := client.New(cfg)
		if err == nil {
			t.Errorf("%s: New = nil error", name)
			continue
		}
		noKey(t, err)
	}
}

func TestProblemBecomesError(t *testing.T) {
	t.Parallel()
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+key || r.Header.Get("Idempotency-Key") != "k-1" ||
			r.URL.RawQuery != "regenerate=true" || r.URL.Path != "/batches/a%2Fb/close" && r.URL.RawPath != "/batches/a%2Fb/close" {
			t.Errorf("request: %s %s %v", r.Method, r.URL, r.Header)
		}
		w.Header().Set("Content-Type", "application/problem+json")
		w.Header().Set("Retry-After", "5")
		w.Header().Set("X-Request-ID", "req-9")
		w.WriteHeader(http.StatusConflict)
		fmt.Fprint(w, `{"type":"/problems/batch_already_closed","title":"Batch already closed","status":409,`+
			`"detail":"batch a/b is already closed","code":"batch_already_closed","requestId":"req-9",`+
			`"recorded":{"batchId":"a/b","batchStatus":"CLOSED","status":"SUCCESS","fileUrl":"/batches/a%2Fb/file"}}`)
	}, 0)
	_, err := c.Close(context.Background(), "a/b", client.CloseOptions{IdempotencyKey: "k-1", Regenerate: true})
	e, ok := errors.AsType[*client.Error](err)
	if !ok {
		t.Fatalf("Close = %v, want a *client.Error", err)
	}
	if e.Status != 409 || e.Code != "batch_already_closed" || e.RequestID != "req-9" || e.RetryAfter != 5*time.Second ||
		e.Problem == nil || e.Problem.Recorded == nil || e.Problem.Recorded.BatchStatus != "CLOSED" || e.Method != "POST" {
		t.Errorf("error = %+v", e)
	}
	if client.ErrorCode(fmt.Errorf("wrapped: %w", err)) != "batch_already_closed" {
		t.Error("ErrorCode does not see through wrapping")
	}
	noKey(t, err)
}

func TestNonProblemAnswers(t *testing.T) {
	t.Parallel()
	var written atomic.Int64
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/batches/html":
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, "<html>"+key+"</html>") // a proxy echoing headers must not reach the error
		case "/batches/huge":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusInternalServerError)
			chunk := []byte(strings.Repeat(" ", 64<<10))
			for range 160 { // 10 MiB
				n, err := w.Write(chunk)
				written.Add(int64(n))
				if err != nil {
					return
				}
			}
		case "/batches/text":
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprint(w, "ok")
		}
	}, 5*time.Second)
	_, err := c.Get(context.Background(), "html")
	if e, ok := errors.AsType[*client.Error](err); !ok || e.Status != 502 || e.Code != "" {
		t.Errorf("HTML 502: %v", err)
	}
	noKey(t, err)
	_, err = c.Get(context.Background(), "huge")
	if e, ok := errors.AsType[*client.Error](err); !ok || e.Status != 500 || e.Code != "" {
		t.Errorf("huge error body: %v", err)
	}
	if n := written.Load(); n > 8<<20 {
		t.Errorf("the client read %d bytes of an error body", n)
	}
	if _, err := c.Get(context.Background(), "text"); err == nil || client.ErrorCode(err) != "" {
		t.Errorf("a 200 that is not JSON: %v", err)
	}
}

func TestTimeouts(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/batches/slowfile/file" {
			w.Header().Set("Content-Type", "text/csv")
			w.WriteHeader(200)
			for i := range 5 { // the stream outlasts the time-out: only the headers are bounded
				fmt.Fprintf(w, "line %d\n", i)
				w.(http.Flusher).Flush()
				time.Sleep(60 * time.Millisecond)
			}
			return
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}, 100*time.Millisecond)
	start := time.Now()
	_, err := c.Get(context.Background(), "slow")
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Errorf("slow answer: %v after %v", err, time.Since(start))
	}
	noKey(t, err)
	if _, err := c.File(context.Background(), "slow"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("file whose headers never come: %v", err)
	}
	f, err := c.File(context.Background(), "slowfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Body.Close()
	body, err := io.ReadAll(f.Body)
	if err != nil || strings.Count(string(body), "\n") != 5 || f.Name != "batch-slowfile.csv" || f.ContentType != "text/csv" {
		t.Errorf("slow file: %q %q %q, %v", body, f.Name, f.ContentType, err)
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	t.Parallel()
	var leaked atomic.Bool
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked.Store(true)
	}))
	defer elsewhere.Close()
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/batches", http.StatusTemporaryRedirect)
	}, 0)
	_, err := c.ListPage(context.Background(), client.Filter{}, "")
	if e, ok := errors.AsType[*client.Error](err); !ok || e.Status != 307 {
		t.Errorf("redirect: %v", err)
	}
	if leaked.Load() {
		t.Error("the client followed a redirect")
	}
}

func TestUnreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := client.New(client.Config{BaseURL: "http://" + addr, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Closes(context.Background(), "x", 10)
	noKey(t, err)
	if client.ErrorCode(err) != "" {
		t.Errorf("a transport failure has a code: %v", err)
	}
}

func TestListQueryAndPages(t *testing.T) {
	t.Parallel()
	var queries []string
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		queries = append(queries, r.URL.RawQuery)
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Query().Get("cursor") {
		case "":
			fmt.Fprint(w, `{"items":[{"batchId":"a"},{"batchId":"b"}],"nextCursor":"c1","stale":false}`)
		case "c1":
			fmt.Fprint(w, `{"items":[{"batchId":"c"}],"nextCursor":"c2","stale":false}`)
		default:
			fmt.Fprint(w, `{"items":[],"nextCursor":"c2","stale":false}`) // a broken server
		}
	}, 0)
	var ids []string
	var last error
	for b, err := range c.List(context.Background(), client.Filter{Status: "OPEN", Type: "Card Program", Limit: 2}) {
		if err != nil {
			last = err
			break
		}
		ids = append(ids, b.BatchID)
	}
	if strings.Join(ids, ",") != "a,b,c" || last == nil || !strings.Contains(last.Error(), "same cursor") {
		t.Errorf("ids %v, error %v", ids, last)
	}
	if want := "limit=2&status=OPEN&type=Card+Program"; queries[0] != want || queries[1] != "cursor=c1&"+want {
		t.Errorf("queries = %q", queries)
	}
	// Breaking out of the loop stops the requests.
	n := len(queries)
	for range c.List(context.Background(), client.Filter{}) {
		break
	}
	if len(queries) != n+1 {
		t.Errorf("%d requests for one item", len(queries)-n)
	}
}

func TestFileName(t *testing.T) {
	t.Parallel()
	for disposition, want := range map[string]string{
		`attachment; filename="batch-42.zip"`:         "batch-42.zip",
		`attachment; filename="../../etc/passwd"`:     "passwd",
		`attachment; filename="..\\..\\evil.bat"`:     "evil.bat",
		`attachment; filename=".."`:                   "batch-x.csv",
		`attachment`:                                  "batch-x.csv",
		`garbage;;;`:                                  "batch-x.csv",
		`attachment; filename*=UTF-8''r%C3%A9sum.csv`: "résum.csv",
	} {
		c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Disposition", disposition)
			w.Header().Set("Content-Type", "text/csv")
			fmt.Fprint(w, "a,b\n")
		}, 0)
		f, err := c.File(context.Background(), "x")
		if err != nil {
			t.Fatal(err)
		}
		f.Body.Close()
		if f.Name != want {
			t.Errorf("%s: name %q, want %q", disposition, f.Name, want)
		}
	}
}

func TestEmptyIDRefused(t *testing.T) {
	t.Parallel()
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) { t.Errorf("request sent: %s", r.URL) }, 0)
	if _, err := c.Get(context.Background(), ""); err == nil {
		t.Error("Get(\"\") = nil error")
	}
	if _, err := c.Close(context.Background(), "", client.CloseOptions{}); err == nil {
		t.Error("Close(\"\") = nil error")
	}
}

// Async asks for the asynchronous close with Prefer: respond-async, and the 202 answer
// decodes like a 200.
func TestCloseAsyncSendsPrefer(t *testing.T) {
	t.Parallel()
	var prefer string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		prefer = r.Header.Get("Prefer")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"batchId":"b1","batchStatus":"","status":"SUCCESS","jobQueueKey":"$j","accepted":true}`))
	}))
	t.Cleanup(srv.Close)
	c, err := client.New(client.Config{BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Close(t.Context(), "b1", client.CloseOptions{Async: true})
	if err != nil || !res.Accepted || res.JobQueueKey != "$j" || prefer != "respond-async" {
		t.Errorf("Close(Async) = %+v, %v; Prefer %q", res, err, prefer)
	}
}
