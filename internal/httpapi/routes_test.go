package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/rs/zerolog"

	"github.com/finplat/payment-batch-gateway/api"
	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// panicky is a BatchService that fails in the way under test.
type panicky struct{}

func (panicky) Close(context.Context, batch.CloseRequest) (batch.CloseResult, error) { panic("boom") }
func (panicky) Closes(context.Context, string, int) ([]batch.Close, error)           { panic("boom") }
func (panicky) File(context.Context, batch.FileRequest) (*batch.File, error)         { panic("boom") }
func (panicky) List(context.Context, batch.ListRequest) (batch.Page, error)          { panic("boom") }
func (panicky) Get(context.Context, string) (batch.Detail, error)                    { panic("boom") }

// syncBuffer is a log sink safe for parallel requests.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newTestHandler(t *testing.T, svc BatchService) (http.Handler, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return NewHandler(Deps{Log: zerolog.New(logs), Batches: svc}), logs
}

func TestRoutingProblems(t *testing.T) {
	t.Parallel()
	h, _ := newTestHandler(t, panicky{})
	tests := []struct {
		name, method, path string
		status             int
		code, allow        string
	}{
		{"unknown route", "GET", "/nope", 404, "route_not_found", ""},
		{"wrong method on close", "GET", "/batches/abc/close", 405, "method_not_allowed", "POST"},
		{"wrong method on file", "DELETE", "/batches/abc/file", 405, "method_not_allowed", "GET"},
		{"wrong method on list", "POST", "/batches", 405, "method_not_allowed", "GET"},
		{"wrong method on batch", "DELETE", "/batches/abc", 405, "method_not_allowed", "GET"},
		{"invalid id on get", "GET", "/batches/a.b", 400, "invalid_batch_id", ""},
		{"invalid id", "POST", "/batches/a.b/close", 400, "invalid_batch_id", ""},
		{"encoded slash", "POST", "/batches/a%2Fb/close", 400, "invalid_batch_id", ""},
		{"dot dot", "POST", "/batches/../close", 400, "invalid_batch_id", ""},
		{"too long id", "POST", "/batches/" + strings.Repeat("a", 65) + "/close", 400, "invalid_batch_id", ""},
		{"unicode id", "POST", "/batches/b%C3%A4tch/close", 400, "invalid_batch_id", ""},
		{"unknown swagger file", "GET", "/swagger/../../etc/passwd", 404, "route_not_found", ""},
		{"unknown swagger asset", "GET", "/swagger/nope.js", 404, "route_not_found", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(tt.method, "/", nil)
			req.URL.Path, req.URL.RawPath = mustUnescape(t, tt.path), tt.path
			h.ServeHTTP(rec, req)
			var p api.Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || rec.Header().Get("Content-Type") != "application/problem+json" {
				t.Fatalf("not a problem (%v): %s %q", err, rec.Header().Get("Content-Type"), rec.Body)
			}
			if rec.Code != tt.status || p.Code != tt.code {
				t.Errorf("got %d %s, want %d %s", rec.Code, p.Code, tt.status, tt.code)
			}
			if got := rec.Header().Get("Allow"); got != tt.allow {
				t.Errorf("Allow = %q, want %q", got, tt.allow)
			}
		})
	}
}

func mustUnescape(t *testing.T, p string) string {
	t.Helper()
	req, err := http.NewRequest("GET", "http://x"+p, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req.URL.Path
}

// brokenFile serves a file whose stream fails after the answer has started.
type brokenFile struct{ panicky }

func (brokenFile) File(context.Context, batch.FileRequest) (*batch.File, error) {
	body := io.MultiReader(strings.NewReader(strings.Repeat("x", 100<<10)), iotest.ErrReader(errors.New("concur stream cut")))
	return &batch.File{Body: io.NopCloser(body), ContentType: "text/csv", ContentLength: 1 << 20}, nil
}

// A download that breaks mid-stream is cut off (never passed off as a whole file), and
// still gets its one access-log line carrying the error.
func TestBrokenDownloadIsAbortedAndLogged(t *testing.T) {
	t.Parallel()
	h, logs := newTestHandler(t, brokenFile{})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	req, _ := http.NewRequest("GET", srv.URL+"/batches/abc/file", nil)
	req.Header.Set("X-Request-ID", "cut-download-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Fatal("a cut download read as complete")
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), `"requestId":"cut-download-1"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no access-log line for the cut download:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "concur stream cut") {
		t.Errorf("the cause is not logged:\n%s", logs)
	}
}
