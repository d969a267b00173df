package httpapi

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/finplat/payment-batch-gateway/api"
	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/store"
)

// files is a BatchService serving, as the file of close closeID, whatever next makes:
// counting the calls (each is a call to Concur) and the bodies closed.
type files struct {
	panicky
	closeID int64
	next    func(call int) (io.Reader, int64) // the body and its Content-Length (-1: none)
	panicOn int32                             // File panics on this call (1-based); 0: never
	calls   atomic.Int32
	closed  chan struct{} // one send per body closed
	closes  []batch.Close
}

func newFiles(next func(int) (io.Reader, int64)) *files {
	return &files{closeID: 1, next: next, closed: make(chan struct{}, 100)}
}

func (f *files) File(context.Context, batch.FileRequest) (*batch.File, error) {
	n := f.calls.Add(1)
	if n == f.panicOn {
		panic("boom")
	}
	r, length := f.next(int(n))
	return &batch.File{CloseID: f.closeID, Body: &notedBody{Reader: r, closed: f.closed},
		ContentType: "text/csv", ContentLength: length}, nil
}

func (f *files) Closes(context.Context, string, int) ([]batch.Close, error) { return f.closes, nil }

type notedBody struct {
	io.Reader
	closed chan struct{}
}

func (b *notedBody) Close() error {
	if c, ok := b.Reader.(io.Closer); ok {
		_ = c.Close()
	}
	b.closed <- struct{}{}
	return nil
}

// endless is a Concur body that never ends (until closed).
type endless struct {
	once sync.Once
	done chan struct{}
}

func newEndless() *endless { return &endless{done: make(chan struct{})} }

func (e *endless) Read(p []byte) (int, error) {
	select {
	case <-e.done:
		return 0, errors.New("read on closed body")
	default:
	}
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

func (e *endless) Close() error { e.once.Do(func() { close(e.done) }); return nil }

func downloadServer(t *testing.T, svc BatchService, dl Downloads) (*httptest.Server, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	srv := httptest.NewServer(NewHandler(Deps{Log: zerolog.New(logs), Batches: svc, Downloads: dl}))
	t.Cleanup(srv.Close)
	return srv, logs
}

func get(t *testing.T, ctx context.Context, url string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// eventually retries fn until it reports true, for 10 s.
func eventually(t *testing.T, what string, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestDownloadCaps: a download over a cap is refused with 429 too_many_downloads and a
// Retry-After, before Concur is called; the slot is free again when the download ends.
func TestDownloadCaps(t *testing.T) {
	t.Parallel()
	for name, o := range map[string]batch.DownloadOptions{
		"per caller": {PerCaller: 1},
		"in all":     {Max: 1},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pr, pw := io.Pipe()
			svc := newFiles(func(call int) (io.Reader, int64) {
				if call == 1 {
					return pr, -1
				}
				return strings.NewReader("a,b\n"), 4
			})
			srv, _ := downloadServer(t, svc, batch.NewDownloads(nil, o))
			first := get(t, t.Context(), srv.URL+"/batches/B1/file")
			defer first.Body.Close()
			if _, err := pw.Write([]byte("streaming")); err != nil { // the first download runs
				t.Fatal(err)
			}

			resp := get(t, t.Context(), srv.URL+"/batches/B1/file")
			var p api.Problem
			_ = json.NewDecoder(resp.Body).Decode(&p)
			resp.Body.Close()
			if resp.StatusCode != http.StatusTooManyRequests || p.Code != "too_many_downloads" ||
				resp.Header.Get("Content-Type") != "application/problem+json" || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("second download: %d %s, %+v, Retry-After %q; want 429 too_many_downloads problem with Retry-After",
					resp.StatusCode, resp.Header.Get("Content-Type"), p, resp.Header.Get("Retry-After"))
			}
			if n := svc.calls.Load(); n != 1 {
				t.Errorf("Concur was called %d times, want once: a refused download must not call it", n)
			}

			pw.Close()
			if _, err := io.ReadAll(first.Body); err != nil {
				t.Fatal(err)
			}
			eventually(t, "a download admitted once the first ended", func() bool {
				resp := get(t, t.Context(), srv.URL+"/batches/B1/file")
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return resp.StatusCode == http.StatusOK
			})
		})
	}
}

// TestDownloadSlotFreedOnPanic: a panic while the download holds its slot frees it.
func TestDownloadSlotFreedOnPanic(t *testing.T) {
	t.Parallel()
	svc := newFiles(func(int) (io.Reader, int64) { return strings.NewReader("a,b\n"), 4 })
	svc.panicOn = 1
	srv, _ := downloadServer(t, svc, batch.NewDownloads(nil, batch.DownloadOptions{Max: 1}))
	resp := get(t, t.Context(), srv.URL+"/batches/B1/file")
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("panicking download: %d, want 500", resp.StatusCode)
	}
	resp = get(t, t.Context(), srv.URL+"/batches/B1/file")
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after a panic: %d, want 200 (the slot freed)", resp.StatusCode)
	}
}

// TestDownloadSlotFreedOnHangUp: a caller hanging up mid-file frees its slot, and the
// Concur body is closed.
func TestDownloadSlotFreedOnHangUp(t *testing.T) {
	t.Parallel()
	svc := newFiles(func(call int) (io.Reader, int64) {
		if call == 1 {
			return newEndless(), -1
		}
		return strings.NewReader("a,b\n"), 4
	})
	srv, _ := downloadServer(t, svc, batch.NewDownloads(nil, batch.DownloadOptions{Max: 1}))
	ctx, cancel := context.WithCancel(t.Context())
	resp := get(t, ctx, srv.URL+"/batches/B1/file")
	if _, err := io.ReadFull(resp.Body, make([]byte, 100<<10)); err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	select {
	case <-svc.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the Concur body was not closed after the caller hung up")
	}
	eventually(t, "a download admitted after the hang-up", func() bool {
		resp := get(t, t.Context(), srv.URL+"/batches/B1/file")
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// TestSlowCallerIsCut: a caller that stops reading is cut once a window passes below the
// minimum throughput: the Concur body closed, the connection ended, the cut logged. The
// window is tiny; the wait for the cut is generous.
func TestSlowCallerIsCut(t *testing.T) {
	t.Parallel()
	svc := newFiles(func(int) (io.Reader, int64) { return newEndless(), -1 })
	srv, logs := downloadServer(t, svc, batch.NewDownloads(nil, batch.DownloadOptions{
		MinRate: 1 << 20, RateWindow: 50 * time.Millisecond}))
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /batches/B1/file HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	status, err := br.ReadString('\n')
	if err != nil || !strings.Contains(status, "200") {
		t.Fatalf("status line %q, %v", status, err)
	}
	// Read no more: the socket buffers fill, and the gateway's writes stall.
	select {
	case <-svc.closed:
	case <-time.After(20 * time.Second):
		t.Fatal("a caller that does not read was not cut within 20s")
	}
	eventually(t, "the cut logged", func() bool { return strings.Contains(logs.String(), "slower than the minimum throughput") })
	// The connection is ended: reading on finds its end, not an endless file.
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.Copy(io.Discard, br); err != nil && errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the connection to the caller was not ended: %v", err)
	}
}

// TestDownloadFingerprintOverHTTP: the first complete download records the digest; a
// later one carries Repr-Digest; a changed file is cut short and recorded as a mismatch;
// GET /batches/{id}/closes shows them, newest first.
func TestDownloadFingerprintOverHTTP(t *testing.T) {
	t.Parallel()
	st, err := store.Open(t.Context(), store.Config{DataDir: t.TempDir(), Key: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Now()
	if err := st.UpsertBatches(t.Context(), []batch.Batch{{ID: "B1", URL: "u"}}, now); err != nil {
		t.Fatal(err)
	}
	_, c, err := st.Apply(t.Context(), batch.Change{BatchID: "B1", Begin: &batch.Close{BatchID: "B1", StartedAt: now, EndedAt: now,
		Outcome: batch.OutcomeClosed, FileURL: "f"}})
	if err != nil {
		t.Fatal(err)
	}
	file := strings.Repeat("employee,amount\n", 10_000)
	changed := strings.Replace(file, "amount", "AMOUNT", 1)
	svc := newFiles(func(call int) (io.Reader, int64) {
		if call == 3 {
			return strings.NewReader(changed), -1
		}
		return strings.NewReader(file), int64(len(file))
	})
	svc.closeID = c.ID
	svc.closes = []batch.Close{{ID: c.ID, BatchID: "B1", Outcome: batch.OutcomeClosed, StartedAt: now, EndedAt: now}}
	srv, logs := downloadServer(t, svc, batch.NewDownloads(st, batch.DownloadOptions{}))

	download := func() (*http.Response, string, error) {
		resp := get(t, t.Context(), srv.URL+"/batches/B1/file")
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, string(b), err
	}
	resp, got, err := download()
	if err != nil || got != file || resp.Header.Get("Repr-Digest") != "" {
		t.Fatalf("first download: %v, %d bytes, Repr-Digest %q; want the file, no digest",
			err, len(got), resp.Header.Get("Repr-Digest"))
	}
	sum := sha256.Sum256([]byte(file))
	want := "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
	eventually(t, "the second download carries Repr-Digest", func() bool {
		resp, got, err := download()
		return err == nil && got == file && resp.Header.Get("Repr-Digest") == want
	})

	resp, got, err = download()
	if err == nil || len(got) >= len(changed) || resp.Header.Get("Repr-Digest") != want {
		t.Fatalf("changed file: %v, %d of %d bytes, Repr-Digest %q; want a truncated answer",
			err, len(got), len(changed), resp.Header.Get("Repr-Digest"))
	}
	eventually(t, "the mismatch logged", func() bool { return strings.Contains(logs.String(), "differs from its fingerprint") })

	var list api.CloseAttemptList
	eventually(t, "three downloads listed", func() bool {
		resp := get(t, t.Context(), srv.URL+"/batches/B1/closes")
		defer resp.Body.Close()
		list = api.CloseAttemptList{}
		return json.NewDecoder(resp.Body).Decode(&list) == nil && len(list.Items) == 1 && len(list.Items[0].Downloads) == 3
	})
	var outcomes []string
	for _, d := range list.Items[0].Downloads {
		outcomes = append(outcomes, d.Outcome)
		if d.Caller != "anonymous" || d.At == "" {
			t.Errorf("download %+v: want caller anonymous and a time", d)
		}
	}
	if strings.Join(outcomes, ",") != "mismatch,complete,complete" {
		t.Errorf("downloads' outcomes %v, want mismatch, complete, complete (newest first)", outcomes)
	}
	if d := list.Items[0].Downloads[1]; d.SHA256 != strings.TrimSpace(hexSum(file)) || d.Bytes != int64(len(file)) {
		t.Errorf("complete download %+v: want the file's sha256 and size", d)
	}
}

func hexSum(s string) string {
	sum := sha256.Sum256([]byte(s))
	const digits = "0123456789abcdef"
	b := make([]byte, 0, 64)
	for _, c := range sum {
		b = append(b, digits[c>>4], digits[c&15])
	}
	return string(b)
}
