package batch_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/store"
)

// downloadFixture is a store holding one closed batch, and the Downloads on it.
type downloadFixture struct {
	st      store.Store
	closeID int64
	ticks   chan time.Time // drives the throughput check
	d       *batch.Downloads
}

func newDownloads(t *testing.T, o batch.DownloadOptions) *downloadFixture {
	t.Helper()
	st, err := store.Open(t.Context(), store.Config{DataDir: t.TempDir(), Key: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	if err := st.UpsertBatches(t.Context(), []batch.Batch{{ID: "B1", URL: "u"}}, now); err != nil {
		t.Fatal(err)
	}
	_, c, err := st.Apply(t.Context(), batch.Change{BatchID: "B1", Begin: &batch.Close{BatchID: "B1", StartedAt: now, EndedAt: now,
		Outcome: batch.OutcomeClosed, FileURL: "f"}})
	if err != nil {
		t.Fatal(err)
	}
	fx := &downloadFixture{st: st, closeID: c.ID, ticks: make(chan time.Time)}
	o.Ticker = func(time.Duration) (<-chan time.Time, func()) { return fx.ticks, func() {} }
	fx.d = batch.NewDownloads(st, o)
	return fx
}

// body is a Concur body: its content, then err (io.EOF when nil). Close may come from
// another goroutine while a Read waits (block).
type body struct {
	r      io.Reader
	err    error
	block  chan struct{} // when set, a Read after the content waits until Close
	mu     sync.Mutex
	closed bool
}

func newBody(content []byte, err error) *body { return &body{r: bytes.NewReader(content), err: err} }

func (b *body) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 || err == nil {
		return n, nil
	}
	if b.block != nil {
		<-b.block
		return 0, errors.New("read on closed body")
	}
	if b.err != nil {
		return 0, b.err
	}
	return 0, io.EOF
}

func (b *body) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed && b.block != nil {
		close(b.block)
	}
	b.closed = true
	return nil
}

// sink is a caller: it keeps what it got; when stall is set, a Write waits for Abort.
type sink struct {
	mu      sync.Mutex
	got     bytes.Buffer
	stall   bool
	aborted chan struct{}
	once    sync.Once
}

func newSink(stall bool) *sink { return &sink{stall: stall, aborted: make(chan struct{})} }

func (s *sink) Write(p []byte) (int, error) {
	if s.stall {
		<-s.aborted
	}
	select {
	case <-s.aborted:
		return 0, errors.New("connection aborted")
	default:
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got.Write(p)
}

func (s *sink) Abort() { s.once.Do(func() { close(s.aborted) }) }

func (s *sink) bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.got.Bytes())
}

// download streams content as the file of the fixture's close to w.
func (fx *downloadFixture) download(t *testing.T, b *body, length int64, w batch.Sink) (*batch.DownloadStream, batch.StreamResult, error) {
	t.Helper()
	f := &batch.File{CloseID: fx.closeID, Body: b, ContentLength: length}
	defer f.Body.Close()
	s, err := fx.d.Begin(t.Context(), f, batch.FileRequest{ID: "B1", Caller: "ap-portal", RequestID: "r"})
	if err != nil {
		return nil, batch.StreamResult{}, err
	}
	res, err := s.Stream(t.Context(), w)
	return s, res, err
}

func content(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i%251)
	}
	return b
}

func history(t *testing.T, fx *downloadFixture) []batch.Download {
	t.Helper()
	h, err := fx.d.History(t.Context(), "B1", 0)
	if err != nil {
		t.Fatal(err)
	}
	return h[fx.closeID]
}

func TestDownloadFingerprint(t *testing.T) {
	t.Parallel()
	fx := newDownloads(t, batch.DownloadOptions{})
	file := content(100_000, 0) // several chunks
	sum := sha256.Sum256(file)

	// The first complete download records the fingerprint; it carries none.
	w := newSink(false)
	s, res, err := fx.download(t, newBody(file, nil), -1, w)
	if err != nil || res.Outcome != "complete" || s.ReprDigest() != "" || !bytes.Equal(w.bytes(), file) {
		t.Fatalf("first download: %+v, %v, Repr-Digest %q, %d bytes; want complete, no digest, the file",
			res, err, s.ReprDigest(), len(w.bytes()))
	}
	fp, err := fx.st.FileFingerprint(t.Context(), fx.closeID)
	if err != nil || fp.SHA256 != hex.EncodeToString(sum[:]) || fp.Size != int64(len(file)) {
		t.Fatalf("fingerprint = %+v, %v; want the file's SHA-256 and size", fp, err)
	}

	// A later download announces it, and the same file passes.
	w = newSink(false)
	s, res, err = fx.download(t, newBody(file, nil), int64(len(file)), w)
	wantDigest := "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
	if err != nil || res.Outcome != "complete" || s.ReprDigest() != wantDigest || s.Length() != int64(len(file)) {
		t.Fatalf("second download: %+v, %v, Repr-Digest %q, length %d; want complete, %q, %d",
			res, err, s.ReprDigest(), s.Length(), wantDigest, len(file))
	}
	if !bytes.Equal(w.bytes(), file) {
		t.Error("second download: the caller did not get the file")
	}
	if h := history(t, fx); len(h) != 2 || h[0].Outcome != "complete" || h[0].SHA256 != fp.SHA256 || h[0].Caller != "ap-portal" {
		t.Errorf("history = %+v, want two complete downloads by ap-portal, newest first", h)
	}
}

// TestDownloadChangedFile: once a fingerprint is known, a file that differs is cut
// before its last chunk reaches the caller, and recorded as a mismatch.
func TestDownloadChangedFile(t *testing.T) {
	t.Parallel()
	file := content(100_000, 0)
	for name, changed := range map[string][]byte{
		"same size, other bytes at the end":   append(bytes.Clone(file[:len(file)-1]), 'x'),
		"same size, other bytes at the start": append([]byte{'x'}, file[1:]...),
		"longer":                              append(bytes.Clone(file), content(200_000, 7)...),
		"shorter":                             file[:len(file)-10],
		"one byte":                            []byte("x"),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fx := newDownloads(t, batch.DownloadOptions{})
			if _, _, err := fx.download(t, newBody(file, nil), -1, newSink(false)); err != nil {
				t.Fatal(err)
			}
			w := newSink(false)
			_, res, err := fx.download(t, newBody(changed, nil), -1, w)
			if !errors.Is(err, batch.ErrDownloadMismatch) || res.Outcome != "mismatch" || !res.Changed {
				t.Fatalf("changed file: %+v, %v; want mismatch, ErrDownloadMismatch", res, err)
			}
			got := w.bytes()
			if len(got) >= len(changed) || len(got) >= len(file) {
				t.Errorf("the caller got %d of %d bytes: the last chunk must be withheld", len(got), len(changed))
			}
			if !bytes.HasPrefix(changed, got) || res.Bytes != int64(len(got)) {
				t.Errorf("sent %d bytes (%d recorded), not a prefix of the file", len(got), res.Bytes)
			}
			if h := history(t, fx); len(h) != 2 || h[0].Outcome != "mismatch" {
				t.Errorf("history = %+v, want the mismatch first", h)
			}
			if fp, _ := fx.st.FileFingerprint(t.Context(), fx.closeID); fp.Size != int64(len(file)) {
				t.Errorf("fingerprint changed to %+v: the first complete download's stays", fp)
			}
		})
	}
}

// TestDownloadChangedLength: Concur announcing another length is refused before anything
// is sent.
func TestDownloadChangedLength(t *testing.T) {
	t.Parallel()
	fx := newDownloads(t, batch.DownloadOptions{})
	file := content(1000, 0)
	if _, _, err := fx.download(t, newBody(file, nil), 1000, newSink(false)); err != nil {
		t.Fatal(err)
	}
	w := newSink(false)
	_, _, err := fx.download(t, newBody(content(1001, 0), nil), 1001, w)
	wantCode(t, err, batch.CodeFileChanged)
	if len(w.bytes()) != 0 {
		t.Errorf("sent %d bytes, want none", len(w.bytes()))
	}
	if h := history(t, fx); len(h) != 2 || h[0].Outcome != "mismatch" || h[0].Bytes != 0 {
		t.Errorf("history = %+v, want a mismatch of 0 bytes first", h)
	}
}

// TestDownloadIncompleteFirst: a first download that does not complete records no
// fingerprint, and the next complete one does.
func TestDownloadIncompleteFirst(t *testing.T) {
	t.Parallel()
	fx := newDownloads(t, batch.DownloadOptions{})
	file := content(100_000, 0)
	broken := errors.New("connection reset by Concur")
	_, res, err := fx.download(t, newBody(file[:50_000], broken), -1, newSink(false))
	if !errors.Is(err, broken) || res.Outcome != "failed" {
		t.Fatalf("broken download: %+v, %v; want failed with Concur's error", res, err)
	}
	// The caller leaves mid-file.
	w := newSink(false)
	w.Abort()
	if _, res, _ := fx.download(t, newBody(file, nil), -1, w); res.Outcome != "failed" {
		t.Fatalf("caller gone: %+v, want failed", res)
	}
	if _, err := fx.st.FileFingerprint(t.Context(), fx.closeID); !errors.Is(err, batch.ErrNotStored) {
		t.Fatalf("fingerprint after incomplete downloads: %v, want none", err)
	}
	if _, res, err := fx.download(t, newBody(file, nil), -1, newSink(false)); err != nil || res.Outcome != "complete" {
		t.Fatalf("third download: %+v, %v", res, err)
	}
	if fp, err := fx.st.FileFingerprint(t.Context(), fx.closeID); err != nil || fp.Size != int64(len(file)) {
		t.Errorf("fingerprint = %+v, %v; want the complete download's", fp, err)
	}
}

// TestDownloadSlowCallerCut: a caller that does not read within a window is cut: its
// connection aborted, Concur's body closed, the download recorded as cut.
func TestDownloadSlowCallerCut(t *testing.T) {
	t.Parallel()
	fx := newDownloads(t, batch.DownloadOptions{MinRate: 1, RateWindow: time.Second})
	b := newBody(content(100_000, 0), nil)
	w := newSink(true) // never reads
	done := make(chan struct{})
	var (
		res batch.StreamResult
		err error
	)
	go func() {
		defer close(done)
		_, res, err = fx.download(t, b, -1, w)
	}()
	fx.ticks <- time.Now() // a window in which nothing reached the caller
	<-done
	if !errors.Is(err, batch.ErrDownloadSlow) || res.Outcome != "cut" {
		t.Fatalf("stalled caller: %+v, %v; want cut, ErrDownloadSlow", res, err)
	}
	if !b.closed {
		t.Error("Concur's body was not closed")
	}
	if h := history(t, fx); len(h) != 1 || h[0].Outcome != "cut" {
		t.Errorf("history = %+v, want one cut download", h)
	}
}

// TestDownloadSlowConcurCut: a window without progress because Concur stalls is cut
// too: the body is closed, which ends the Read that waits.
func TestDownloadSlowConcurCut(t *testing.T) {
	t.Parallel()
	fx := newDownloads(t, batch.DownloadOptions{MinRate: 1000, RateWindow: time.Second})
	b := newBody(content(10, 0), nil)
	b.block = make(chan struct{}) // Concur sends 10 bytes, then nothing
	done := make(chan error)
	go func() {
		_, _, err := fx.download(t, b, -1, newSink(false))
		done <- err
	}()
	fx.ticks <- time.Now()
	if err := <-done; !errors.Is(err, batch.ErrDownloadSlow) {
		t.Fatalf("stalled Concur: %v, want ErrDownloadSlow", err)
	}
}

// TestDownloadFastEnoughNotCut: windows with enough progress do not cut.
func TestDownloadFastEnoughNotCut(t *testing.T) {
	t.Parallel()
	fx := newDownloads(t, batch.DownloadOptions{MinRate: 1, RateWindow: time.Second})
	file := content(200_000, 0)
	pr, pw := io.Pipe()
	b := &body{r: pr}
	done := make(chan error)
	w := newSink(false)
	go func() {
		_, _, err := fx.download(t, b, -1, w)
		done <- err
	}()
	for i := range 4 { // four windows, each with a chunk written
		if _, err := pw.Write(file[i*50_000 : (i+1)*50_000]); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return len(w.bytes()) > 0 && (i == 0 || len(w.bytes()) >= i*50_000) })
		time.Sleep(200 * time.Millisecond) // the stream counts a write once the sink has returned from it: let it
		fx.ticks <- time.Now()
		time.Sleep(200 * time.Millisecond) // the watcher measures the window after it takes the tick: let it, before more arrives
	}
	pw.Close()
	if err := <-done; err != nil || !bytes.Equal(w.bytes(), file) {
		t.Fatalf("download: %v, %d bytes; want the whole file", err, len(w.bytes()))
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestDownloadAdmit(t *testing.T) {
	t.Parallel()
	d := batch.NewDownloads(nil, batch.DownloadOptions{PerCaller: 2, Max: 3})
	a1, err1 := d.Admit("a")
	a2, err2 := d.Admit("a")
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	_, err := d.Admit("a")
	wantCode(t, err, batch.CodeTooManyDownloads)
	if e, _ := errors.AsType[*batch.Error](err); e.RetryAfter <= 0 {
		t.Error("a refusal carries no Retry-After")
	}
	b1, err := d.Admit("b")
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.Admit("c")
	wantCode(t, err, batch.CodeTooManyDownloads) // 3 in all
	a1()
	a1() // twice frees one slot, not two
	if _, err := d.Admit("c"); err != nil {
		t.Fatalf("after a release: %v", err)
	}
	_, err = d.Admit("a")
	wantCode(t, err, batch.CodeTooManyDownloads)
	a2()
	b1()
	if _, err := d.Admit("a"); err != nil {
		t.Fatalf("after releases: %v", err)
	}
}
