package deploy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// repoRoot is the service's repository, whose binaries and files are checked.
const repoRoot = ".."

// seedBatch is a batch the simulator serves OPEN on start (see the Makefile's SEED_BATCH).
const seedBatch = "6f1c2a9e-3b7d-4e58-9a41-0c2d8e7f5b13"

// gateway is the real gateway, built from the repository and wired to the real simulator,
// started once for the tests that need what it serves.
var gateway struct {
	once sync.Once
	err  error
	api  string // base URL of GATEWAY_ADDR
	adm  string // base URL of GATEWAY_ADMIN_ADDR
	key  string // an API key with every scope
	stop func()
	logs *syncBuffer
}

func TestMain(m *testing.M) {
	code := m.Run()
	if gateway.stop != nil {
		gateway.stop()
	}
	os.Exit(code)
}

// realGateway builds and starts the simulator and the gateway (once), or fails t.
func realGateway(t *testing.T) {
	t.Helper()
	gateway.once.Do(func() { gateway.err = startGateway() })
	if gateway.err != nil {
		t.Fatalf("starting the real gateway: %v", gateway.err)
	}
}

func startGateway() error {
	dir, err := os.MkdirTemp("", "deploy-check-")
	if err != nil {
		return err
	}
	var procs []*exec.Cmd
	gateway.stop = func() {
		for _, p := range procs {
			_ = p.Process.Signal(syscall.SIGTERM)
			_ = p.Wait()
		}
		_ = os.RemoveAll(dir)
	}
	for _, name := range []string{"gateway", "concursim"} {
		// Built in the service's module, with its go.mod, as `make build` builds it.
		build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, name), "./cmd/"+name)
		build.Dir = repoRoot
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/%s: %v\n%s", name, err, out)
		}
	}
	secret, refresh := randomText(), randomText()
	gateway.logs = &syncBuffer{}
	sim, simAddrs, err := launch(filepath.Join(dir, "concursim"), map[string]string{
		"CONCURSIM_ADDR": "127.0.0.1:0", "CONCURSIM_CLIENT_ID": "deploy-check",
		"CONCURSIM_CLIENT_SECRET": secret, "CONCURSIM_REFRESH_TOKEN": refresh,
		// A deprecation notice, so that the rules on it are checked against a real series.
		"CONCURSIM_SUNSET": "Sun, 31 Oct 2027 23:59:59 GMT", "CONCURSIM_API_WARN": "deploy-check: deprecated",
	}, gateway.logs, "addr")
	if err != nil {
		return fmt.Errorf("concursim: %w", err)
	}
	procs = append(procs, sim)
	key := "pbg_" + base64.RawURLEncoding.EncodeToString([]byte(randomText()))
	sum := sha256.Sum256([]byte(key))
	keys, _ := json.Marshal([]map[string]any{{"name": "deploy-check", "sha256": hex.EncodeToString(sum[:]),
		"scopes": []string{"batches:read", "batches:close", "batches:regenerate"}}})
	gw, gwAddrs, err := launch(filepath.Join(dir, "gateway"), map[string]string{
		"GATEWAY_ADDR": "127.0.0.1:0", "GATEWAY_ADMIN_ADDR": "127.0.0.1:0",
		"GATEWAY_DATA_DIR": filepath.Join(dir, "data"), "GATEWAY_API_KEYS": string(keys),
		"CONCUR_BASE_URL": "http://" + simAddrs["addr"], "CONCUR_CLIENT_ID": "deploy-check",
		"CONCUR_CLIENT_SECRET": secret, "CONCUR_REFRESH_TOKEN": refresh,
	}, gateway.logs, "addr", "adminAddr")
	if err != nil {
		return fmt.Errorf("gateway: %w\n%s", err, gateway.logs)
	}
	procs = append(procs, gw)
	gateway.api, gateway.adm, gateway.key = "http://"+gwAddrs["addr"], "http://"+gwAddrs["adminAddr"], key
	return exercise()
}

// exercise makes the gateway do what it does in production, so the metrics that only
// exist once something happened (a route answered, Concur called) are on /metrics: a
// close, its file, a list, the audit trail, a batch that does not exist, a regeneration
// refused by the guard.
func exercise() error {
	steps := []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/batches?limit=5", 200},
		{http.MethodPost, "/batches/" + seedBatch + "/close", 200},
		{http.MethodGet, "/batches/" + seedBatch + "/file", 200},
		{http.MethodGet, "/batches/" + seedBatch, 200},
		{http.MethodGet, "/batches/" + seedBatch + "/closes", 200},
		{http.MethodPost, "/batches/" + seedBatch + "/close", 409},
		{http.MethodGet, "/batches/no-such-batch", 404},
	}
	for _, s := range steps {
		status, _, err := get(gateway.api, s.method, s.path, gateway.key)
		if err != nil {
			return err
		}
		if status != s.want {
			return fmt.Errorf("%s %s answered %d, want %d", s.method, s.path, status, s.want)
		}
	}
	return nil
}

// get sends one request and returns the status and the body.
func get(base, method, path, key string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, base+path, nil)
	if err != nil {
		return 0, nil, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// launch starts a binary with env alone and waits until it has logged every field in
// fields (listen addresses), returning their values.
func launch(bin string, env map[string]string, logs io.Writer, fields ...string) (*exec.Cmd, map[string]string, error) {
	cmd := exec.Command(bin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	found := make(chan map[string]string, 1)
	go func() {
		got := map[string]string{}
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintln(logs, sc.Text())
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				continue
			}
			for _, f := range fields {
				if v, ok := line[f].(string); ok && got[f] == "" {
					got[f] = v
				}
			}
			if len(got) == len(fields) {
				found <- got
				break
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case got := <-found:
		return cmd, got, nil
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, nil, errors.New("did not log its listen addresses within 30s")
	}
}

func randomText() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

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
	return strings.TrimSpace(s.b.String())
}
