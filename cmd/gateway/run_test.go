package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/concursim"
)

func TestRunServesUntilCancelled(t *testing.T) {
	t.Parallel()
	g := startGateway(t, nil)
	closeURL := g.base + "/batches/6f1c2a9e-3b7d-4e58-9a41-0c2d8e7f5b13/close"
	resp, err := http.Post(closeURL, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("close without a key: %s", resp.Status)
	}
	req, _ := http.NewRequest(http.MethodPost, closeURL, nil)
	req.Header.Set("Authorization", "Bearer "+g.key)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("close with the minted key: %s", resp.Status)
	}
	port := g.base[strings.LastIndex(g.base, ":"):]
	if err := healthcheck(context.Background(), port); err != nil {
		t.Errorf("healthcheck against the running gateway: %v", err)
	}

	if err := g.stop(); err != nil {
		t.Errorf("run after cancel: %v", err)
	}
	if err := healthcheck(context.Background(), port); err == nil {
		t.Error("healthcheck succeeded against a stopped gateway")
	}
}

// TestRunHeaderLimit: the request line and headers, up to the blank line that ends them,
// may be 64 KiB at most, as the README says; one byte more is refused with 431.
func TestRunHeaderLimit(t *testing.T) {
	t.Parallel()
	g := startGateway(t, nil)
	addr := strings.TrimPrefix(g.base, "http://")
	for _, tc := range []struct {
		name string
		size int // bytes of the request line and the header block
		want int
	}{
		{"well under", 8 << 10, http.StatusOK},
		{"exactly 64 KiB", 64 << 10, http.StatusOK},
		{"one byte over", 64<<10 + 1, http.StatusRequestHeaderFieldsTooLarge},
		{"the old limit with its slop", 68 << 10, http.StatusRequestHeaderFieldsTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := statusOfHeaderBlock(t, addr, tc.size); got != tc.want {
				t.Errorf("a request whose header block is %d bytes: %d, want %d", tc.size, got, tc.want)
			}
		})
	}
}

// statusOfHeaderBlock sends GET /healthz whose request line and headers, blank line
// included, are exactly size bytes, and returns the status of the answer.
func statusOfHeaderBlock(t *testing.T, addr string, size int) int {
	t.Helper()
	const head, tail = "GET /healthz HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\nX-Padding: ", "\r\n\r\n"
	raw := head + strings.Repeat("x", size-len(head)-len(tail)) + tail
	if len(raw) != size {
		t.Fatalf("built %d bytes, want %d", len(raw), size)
	}
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// gateway is a gateway started by run on 127.0.0.1:0, against a simulated Concur.
type gateway struct {
	base string // http://127.0.0.1:port
	key  string // an API key with batches:close
	stop func() error
}

// startGateway runs the gateway with the given variables on top of a working
// environment, waits until it listens, and stops it when the test ends.
func startGateway(t *testing.T, extra map[string]string) *gateway {
	t.Helper()
	sim, err := concursim.New(concursim.Options{ClientID: "id", ClientSecret: "secret", RefreshToken: "refresh"})
	if err != nil {
		t.Fatal(err)
	}
	simSrv := httptest.NewServer(sim)
	t.Cleanup(simSrv.Close)
	t.Cleanup(sim.Close)

	env := map[string]string{
		"GATEWAY_ADDR":         "127.0.0.1:0",
		"CONCUR_BASE_URL":      simSrv.URL,
		"CONCUR_CLIENT_ID":     "id",
		"CONCUR_CLIENT_SECRET": "secret",
		"CONCUR_REFRESH_TOKEN": "refresh",
		"GATEWAY_DATA_DIR":     t.TempDir(),
	}
	var minted strings.Builder
	if err := run(context.Background(), []string{"mint-key", "run-test", "batches:close"}, nil, &minted, io.Discard); err != nil {
		t.Fatal(err)
	}
	key, entry, _ := strings.Cut(strings.TrimSpace(minted.String()), "\n")
	env["GATEWAY_API_KEYS"] = entry
	maps.Copy(env, extra)
	ctx, cancel := context.WithCancel(context.Background())
	stdoutR, stdoutW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, func(k string) string { return env[k] }, stdoutW, io.Discard)
		stdoutW.Close()
	}()

	addr := make(chan string, 1)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stdoutR)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			t.Log(sc.Text())
			var line struct{ Message, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Addr != "" && strings.HasPrefix(line.Message, "listening") {
				select {
				case addr <- line.Addr:
				default:
				}
			}
		}
	}()
	var stopErr error
	stopped := false
	g := &gateway{key: key, stop: func() error {
		if stopped {
			return stopErr
		}
		stopped = true
		cancel()
		select {
		case stopErr = <-done:
		case <-time.After(30 * time.Second):
			stopErr = errors.New("run did not return after cancel")
		}
		<-scanned // no t.Log after the test ends
		return stopErr
	}}
	t.Cleanup(func() {
		if err := g.stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	select {
	case a := <-addr:
		g.base = "http://" + a
	case err := <-done:
		stopped, stopErr = true, err
		<-scanned
		t.Fatalf("run returned before listening: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no listening line")
	}
	return g
}

func TestRunRejectsBadInput(t *testing.T) {
	t.Parallel()
	noEnv := func(string) string { return "" }
	if err := run(context.Background(), []string{"serve"}, noEnv, io.Discard, io.Discard); err == nil {
		t.Error("unexpected argument accepted")
	}
	err := run(context.Background(), nil, noEnv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "CONCUR_BASE_URL is required") ||
		!strings.Contains(err.Error(), "no callers are configured") {
		t.Errorf("empty environment: %v", err)
	}
	for _, args := range [][]string{{"mint-key"}, {"mint-key", "x"}, {"mint-key", "x", "batches:everything"}, {"mint-key", "bad name", "batches:read"}} {
		if err := run(context.Background(), args, noEnv, io.Discard, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
