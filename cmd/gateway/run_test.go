package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
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
	// The health check reads the service's environment as the service does: trimmed, the
	// admin address first.
	port := g.base[strings.LastIndex(g.base, ":"):]
	running := []map[string]string{
		{"GATEWAY_ADDR": " " + port + "\t"},
		{"GATEWAY_ADDR": "127.0.0.1:1", "GATEWAY_ADMIN_ADDR": "127.0.0.1" + port},
	}
	for _, env := range running {
		if err := healthcheckWith(env); err != nil {
			t.Errorf("healthcheck %v against the running gateway: %v", env, err)
		}
	}

	if err := g.stop(); err != nil {
		t.Errorf("run after cancel: %v", err)
	}
	if err := healthcheckWith(running[0]); err == nil {
		t.Error("healthcheck succeeded against a stopped gateway")
	}
}

// healthcheckWith runs `gateway healthcheck` with env as its environment.
func healthcheckWith(env map[string]string) error {
	return run(context.Background(), []string{"healthcheck"}, func(k string) string { return env[k] }, nil, io.Discard, io.Discard)
}

// The health check refuses a listen address the service would refuse, naming it, and
// fails on no other setting.
func TestHealthcheckConfig(t *testing.T) {
	t.Parallel()
	err := healthcheckWith(map[string]string{"GATEWAY_ADDR": "8080"})
	if err == nil || !strings.Contains(err.Error(), "GATEWAY_ADDR must be host:port") {
		t.Errorf("healthcheck with GATEWAY_ADDR=8080: %v", err)
	}
	err = healthcheckWith(map[string]string{"GATEWAY_ADDR": "127.0.0.1:1", "CONCUR_TIMEOUT": "soon"})
	if err == nil || strings.Contains(err.Error(), "CONCUR_TIMEOUT") {
		t.Errorf("healthcheck against nothing listening, with a bad CONCUR_TIMEOUT: %v", err)
	}
}

// TestRunWarnsOfOldNames: a variable under its old name works, and the start-up log says
// what it is called now.
func TestRunWarnsOfOldNames(t *testing.T) {
	t.Parallel()
	g := startGateway(t, map[string]string{"GATEWAY_RATE_LIMIT": "0"})
	if !g.logged(`"level":"warn"`, "GATEWAY_RATE_LIMIT is deprecated: it is now GATEWAY_RATE_LIMIT_PER_MINUTE") {
		t.Error("no warning that GATEWAY_RATE_LIMIT is now GATEWAY_RATE_LIMIT_PER_MINUTE")
	}
}

// gateway is a gateway started by run on 127.0.0.1:0, against a simulated Concur.
type gateway struct {
	base string // http://127.0.0.1:port
	key  string // an API key with batches:close
	stop func() error

	mu    sync.Mutex
	lines []string // what it logged so far
}

// logged reports whether one line of the log so far contains every part.
func (g *gateway) logged(parts ...string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, line := range g.lines {
		if !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(line, p) }) {
			return true
		}
	}
	return false
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
	if err := run(context.Background(), []string{"mint-key", "run-test", "batches:close"}, nil, nil, &minted, io.Discard); err != nil {
		t.Fatal(err)
	}
	key, entry, _ := strings.Cut(strings.TrimSpace(minted.String()), "\n")
	env["GATEWAY_API_KEYS"] = entry
	maps.Copy(env, extra)
	ctx, cancel := context.WithCancel(context.Background())
	stdoutR, stdoutW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, func(k string) string { return env[k] }, nil, stdoutW, io.Discard)
		stdoutW.Close()
	}()

	g := &gateway{key: key}
	addr := make(chan string, 1)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stdoutR)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			t.Log(sc.Text())
			g.mu.Lock()
			g.lines = append(g.lines, sc.Text())
			g.mu.Unlock()
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
	g.stop = func() error {
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
	}
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
	if err := run(context.Background(), []string{"serve"}, noEnv, nil, io.Discard, io.Discard); err == nil {
		t.Error("unexpected argument accepted")
	}
	err := run(context.Background(), nil, noEnv, nil, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "CONCUR_BASE_URL is required") ||
		!strings.Contains(err.Error(), "no callers are configured") {
		t.Errorf("empty environment: %v", err)
	}
	for _, args := range [][]string{{"mint-key"}, {"mint-key", "x"}, {"mint-key", "x", "batches:everything"}, {"mint-key", "bad name", "batches:read"}} {
		if err := run(context.Background(), args, noEnv, nil, io.Discard, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
