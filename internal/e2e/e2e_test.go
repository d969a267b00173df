package e2e

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/api"
	"github.com/finplat/payment-batch-gateway/internal/concursim"
)

// Seeded simulator batches (internal/concursim.Seed).
const (
	employeeBatch = concursim.SeedOpenUSD
	cardBatch     = concursim.SeedOpenCard
	emptyBatch    = concursim.SeedOpenEmpty
)

func TestCloseThenDownload(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil, nil)

	r := do(t, "POST", s.gw.URL+"/batches/"+employeeBatch+"/close", map[string]string{"X-Request-ID": "e2e-close-1"})
	if r.Status != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("close: %d %s %s", r.Status, r.Header.Get("Content-Type"), r.Body)
	}
	got := decode[api.CloseResponse](t, r)
	if got.BatchID != employeeBatch || got.BatchStatus != "CLOSED" || got.Status != "SUCCESS" || got.JobQueueKey == "" ||
		got.FileURL != "/batches/"+employeeBatch+"/file" {
		t.Errorf("close answer = %+v", got)
	}
	if r.Header.Get("X-Request-ID") != "e2e-close-1" {
		t.Errorf("X-Request-ID not echoed: %q", r.Header.Get("X-Request-ID"))
	}

	f := do(t, "GET", s.gw.URL+got.FileURL, nil)
	if f.Status != 200 || !strings.HasPrefix(f.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("file: %d %s %.200s", f.Status, f.Header.Get("Content-Type"), f.Body)
	}
	if n, _ := strconv.Atoi(f.Header.Get("Content-Length")); n != len(f.Body) || n == 0 {
		t.Errorf("Content-Length %q for %d bytes", f.Header.Get("Content-Length"), len(f.Body))
	}
	if !strings.Contains(f.Header.Get("Content-Disposition"), "attachment") {
		t.Errorf("Content-Disposition = %q", f.Header.Get("Content-Disposition"))
	}

	st := s.stats(t)
	if st.Closes[employeeBatch] != 1 || st.FilesServed != 1 {
		t.Errorf("Concur saw closes=%v files=%d, want exactly one of each", st.Closes, st.FilesServed)
	}
	if !strings.Contains(s.gw.logs.String(), `"requestId":"e2e-close-1"`) {
		t.Errorf("access log lacks the request id")
	}
}

func TestCardProgramFileIsZip(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil, nil)
	if r := do(t, "POST", s.gw.URL+"/batches/"+cardBatch+"/close", nil); r.Status != 200 {
		t.Fatalf("close: %d %s", r.Status, r.Body)
	}
	f := do(t, "GET", s.gw.URL+"/batches/"+cardBatch+"/file", nil)
	if f.Status != 200 || f.Header.Get("Content-Type") != "application/zip" {
		t.Fatalf("file: %d %q", f.Status, f.Header.Get("Content-Type"))
	}
	zr, err := zip.NewReader(bytes.NewReader(f.Body), int64(len(f.Body)))
	if err != nil {
		t.Fatalf("not a zip: %v", err)
	}
	if len(zr.File) != 2 {
		t.Errorf("zip holds %d files, want 2", len(zr.File))
	}
}

func TestErrorsThroughRealBinaries(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil, nil)
	tests := []struct {
		name, method, path string
		status             int
		code               string
	}{
		{"no reports", "POST", "/batches/" + emptyBatch + "/close", 409, "batch_not_closable"},
		{"unknown batch", "POST", "/batches/not-a-batch/close", 404, "batch_not_found"},
		{"invalid id", "POST", "/batches/a$b/close", 400, "invalid_batch_id"},
		{"file before close", "GET", "/batches/" + cardBatch + "/file", 404, "file_not_found"},
		{"wrong method", "PUT", "/batches/" + employeeBatch + "/close", 405, "method_not_allowed"},
		{"no route", "GET", "/admin", 404, "route_not_found"},
	}
	for _, tt := range tests {
		r := do(t, tt.method, s.gw.URL+tt.path, nil)
		p := decode[api.Problem](t, r)
		if r.Status != tt.status || p.Code != tt.code || r.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %s (%s), want %d %s", tt.name, r.Status, p.Code, r.Header.Get("Content-Type"), tt.status, tt.code)
		}
		if tt.code == "batch_not_closable" && (p.Upstream == nil || p.Upstream.Status != 500 || !strings.Contains(p.Detail, "does not contain any reports")) {
			t.Errorf("%s: upstream details missing: %s", tt.name, r.Body)
		}
	}
	if st := s.stats(t); st.Closes[emptyBatch] != 0 {
		t.Errorf("a refused close was counted as a close: %v", st.Closes)
	}
}

// Concur rotates the refresh token on every refresh and rejects a reused one: the gateway
// must always redeem the newest, under concurrency too.
func TestRefreshTokenRotation(t *testing.T) {
	t.Parallel()
	// Tokens live 1s, so every round needs a fresh one; unknown ids make every request
	// read the batch list from Concur.
	s := startStack(t, map[string]string{"CONCURSIM_TOKEN_TTL": "1s"},
		map[string]string{"GATEWAY_BATCH_LIST_MIN_INTERVAL": "0s"})
	var wg sync.WaitGroup
	for round := range 3 {
		for i := range 8 {
			wg.Go(func() {
				r := do(t, "POST", fmt.Sprintf("%s/batches/unknown-%d-%d/close", s.gw.URL, round, i), nil)
				if p := decode[api.Problem](t, r); r.Status != 404 || p.Code != "batch_not_found" {
					t.Errorf("round %d: %d %s", round, r.Status, r.Body)
				}
			})
		}
		wg.Wait()
		time.Sleep(1100 * time.Millisecond)
	}
	st := s.stats(t)
	if st.InvalidGrants != 0 {
		t.Errorf("Concur saw %d reused refresh tokens", st.InvalidGrants)
	}
	if st.TokenRefreshes < 3 {
		t.Errorf("only %d refreshes across expiring tokens", st.TokenRefreshes)
	}
}

func TestSecretsNeverLogged(t *testing.T) {
	t.Parallel()
	s := startStack(t, map[string]string{"CONCURSIM_TOKEN_TTL": "1s"}, nil)
	do(t, "POST", s.gw.URL+"/batches/"+employeeBatch+"/close", nil)
	time.Sleep(1100 * time.Millisecond)
	do(t, "POST", s.gw.URL+"/batches/"+employeeBatch+"/close", nil)
	do(t, "GET", s.gw.URL+"/batches/"+employeeBatch+"/file", nil)
	s.fault(t, `{"op":"close","mode":"status","status":403,"message":"token revoked"}`)
	do(t, "POST", s.gw.URL+"/batches/"+employeeBatch+"/close", nil)
	if err := s.gw.stop(t); err != nil {
		t.Errorf("gateway exit: %v", err)
	}
	logs := s.gw.logs.String()
	issued := s.stats(t).IssuedTokens
	if len(issued) < 4 {
		t.Fatalf("want several issued tokens to look for, got %d", len(issued))
	}
	for _, secret := range append(s.secrets, issued...) {
		if strings.Contains(logs, secret) {
			t.Errorf("a credential appears in the gateway log")
		}
	}
	for _, word := range []string{"Bearer ", "access_token", "refresh_token="} {
		if strings.Contains(logs, word) {
			t.Errorf("%q appears in the gateway log", word)
		}
	}
}

// A payment file larger than 50 MB streams through the gateway; its peak resident memory
// stays far below the file's size.
func TestLargeFileStreams(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("reads peak RSS from /proc")
	}
	const size = 64 << 20 // twice the growth allowed: a buffering gateway fails; small enough for a loaded -race run
	s := startStack(t, map[string]string{"CONCURSIM_LARGE_FILE_BYTES": strconv.Itoa(size)}, nil)
	if r := do(t, "POST", s.gw.URL+"/batches/large-file-batch/close", nil); r.Status != 200 {
		t.Fatalf("close: %d %s", r.Status, r.Body)
	}
	before := peakRSS(t, s.gw.cmd.Process.Pid)
	// Its own request, counting the bytes: a loaded -race run streams at 1-3 MB/s, longer
	// than the harness client's time-out.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", s.gw.URL+"/batches/large-file-batch/file", nil)
	if err != nil {
		t.Fatal(err)
	}
	authorize(req, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 || err != nil || n != size {
		t.Fatalf("file: %d, %d bytes (%v), want %d", resp.StatusCode, n, err, size)
	}
	peak := peakRSS(t, s.gw.cmd.Process.Pid)
	t.Logf("gateway peak RSS %d MiB before and %d MiB after streaming %d MiB", before>>20, peak>>20, size>>20)
	if grew := peak - before; grew > 32<<20 {
		t.Errorf("gateway peak RSS grew by %d MiB while streaming a %d MiB file: it is buffering", grew>>20, size>>20)
	}
}

func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

// SIGTERM lets an in-flight close finish and answer before the gateway exits.
func TestGracefulShutdownFinishesClose(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil, nil)
	// Warm the token and the batch list so the slow part is the close itself.
	if r := do(t, "POST", s.gw.URL+"/batches/not-there/close", nil); r.Status != 404 {
		t.Fatalf("warm-up: %d %s", r.Status, r.Body)
	}
	s.fault(t, `{"op":"close","mode":"slow","delay":"1500ms","count":1}`)
	res := make(chan response, 1)
	go func() { res <- do(t, "POST", s.gw.URL+"/batches/"+employeeBatch+"/close", nil) }()
	// The one-shot fault is consumed when the close reaches Concur: then SIGTERM lands
	// while the close is in flight, however loaded the machine is.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if r := do(t, "GET", s.sim.URL+"/_sim/fault", nil); strings.TrimSpace(string(r.Body)) == "null" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the close never reached the simulator")
		}
	}
	if err := s.gw.stop(t); err != nil {
		t.Errorf("gateway exit after SIGTERM: %v", err)
	}
	r := <-res
	if r.Status != 200 {
		t.Fatalf("in-flight close got %d %s", r.Status, r.Body)
	}
	if st := s.stats(t); st.Closes[employeeBatch] != 1 {
		t.Errorf("Concur closes = %v", st.Closes)
	}
}

func TestSwaggerUIServed(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil, nil)
	ui := do(t, "GET", s.gw.URL+"/swagger/index.html", nil)
	spec := do(t, "GET", s.gw.URL+"/swagger/doc.json", nil)
	if ui.Status != 200 || !bytes.Contains(ui.Body, []byte("swagger-ui")) {
		t.Errorf("Swagger UI: %d", ui.Status)
	}
	if spec.Status != 200 || !bytes.Contains(spec.Body, []byte(`"/batches/{id}/close"`)) {
		t.Errorf("spec: %d %.200s", spec.Status, spec.Body)
	}
	if !strings.Contains(s.gw.logs.String(), s.gw.URL+"/swagger/index.html") {
		t.Errorf("the gateway does not say where Swagger UI is")
	}
}

func TestBadConfigFailsAtStart(t *testing.T) {
	t.Parallel()
	cmd := execGateway(map[string]string{"CONCUR_TIMEOUT": "soon"})
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("gateway started with bad config:\n%s", out)
	}
	for _, want := range []string{"CONCUR_BASE_URL is required", "CONCUR_CLIENT_ID is required", "CONCUR_TIMEOUT"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("start error does not mention %q:\n%s", want, out)
		}
	}
}
