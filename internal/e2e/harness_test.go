// Package e2e holds end-to-end tests: they build the real gateway and simulator binaries,
// start them on 127.0.0.1:0 and talk HTTP to them, as a caller and an operator would.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
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

	"github.com/finplat/payment-batch-gateway/internal/auth"
)

var binDir string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "gateway-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	for _, cmd := range []string{"gateway", "concursim"} {
		build := exec.Command("go", "build", "-race", "-o", filepath.Join(dir, cmd), "../../cmd/"+cmd)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n", cmd, err)
			return 1
		}
	}
	binDir = dir
	code := m.Run()
	scanned, leaks := audit.summary()
	fmt.Fprintln(os.Stderr, scanned)
	for _, l := range leaks {
		fmt.Fprintln(os.Stderr, "LEAK:", l)
		code = 1
	}
	checked, violations := specSummary()
	fmt.Fprintln(os.Stderr, checked)
	for _, v := range violations {
		fmt.Fprintln(os.Stderr, "SPEC:", v)
		code = 1
	}
	return code
}

// proc is a started binary: its base URL and everything it logged.
type proc struct {
	URL  string
	cmd  *exec.Cmd
	logs *lockedBuffer
	done chan error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start runs a binary with env (and nothing of the test process's environment but PATH),
// waits for its "listening" line and stops it when the test ends.
func start(t *testing.T, name string, env map[string]string) *proc {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, name))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, logs: &lockedBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = p.logs
	if name == "gateway" {
		audit.watch(p.logs, env)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			_, _ = p.logs.Write(append(append([]byte{}, line...), '\n'))
			var l struct{ Message, Addr string }
			if json.Unmarshal(line, &l) == nil && l.Addr != "" && strings.HasPrefix(l.Message, "listening") {
				select {
				case addr <- l.Addr:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("%s log:\n%s", name, p.logs)
		}
	})
	select {
	case a := <-addr:
		p.URL = "http://" + a
	case err := <-p.done:
		p.done <- err
		t.Fatalf("%s exited before listening: %v\n%s", name, err, p.logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not listen within 30s:\n%s", name, p.logs)
	}
	return p
}

// stop sends SIGTERM and waits for the process to end.
func (p *proc) stop(t *testing.T) error {
	t.Helper()
	if p.cmd.ProcessState != nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(90 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Errorf("process did not stop within 90s of SIGTERM")
		return <-p.done
	}
}

// stack is a simulator and a gateway wired to it.
type stack struct {
	sim, gw *proc
	gwEnv   map[string]string // the gateway's environment, to start more like it
	key     string            // an API key with every scope, sent by do() unless told otherwise
	secrets []string          // every credential in play, for leak checks
}

// gatewayKeys maps a started gateway's URL to the API key do() sends it by default.
var gatewayKeys sync.Map

// mintKey returns a new API key and the GATEWAY_API_KEYS value admitting it with scopes.
func mintKey(t *testing.T, name string, scopes ...string) (key, config string) {
	t.Helper()
	key, hash, err := auth.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	audit.add(key)
	b, err := json.Marshal([]map[string]any{{"name": name, "sha256": hash, "scopes": scopes}})
	if err != nil {
		t.Fatal(err)
	}
	return key, string(b)
}

func randomHex(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("%x", randBytes(t, 16))
}

func randBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// startStack starts both binaries. simEnv and gwEnv add to or override the defaults.
func startStack(t *testing.T, simEnv, gwEnv map[string]string) *stack {
	t.Helper()
	id, secret, refresh := "gateway-e2e", randomHex(t), randomHex(t)
	senv := map[string]string{
		"CONCURSIM_ADDR":          "127.0.0.1:0",
		"CONCURSIM_CLIENT_ID":     id,
		"CONCURSIM_CLIENT_SECRET": secret,
		"CONCURSIM_REFRESH_TOKEN": refresh,
	}
	for k, v := range simEnv {
		senv[k] = v
	}
	sim := start(t, "concursim", senv)
	// Runs after the gateways stopped, before the simulator does: every token it issued.
	t.Cleanup(func() { audit.add(decode[simStats](t, do(t, "GET", sim.URL+"/_sim/stats", nil)).IssuedTokens...) })
	key, keys := mintKey(t, "e2e-caller", "batches:read", "batches:close", "batches:regenerate")
	genv := map[string]string{
		"GATEWAY_API_KEYS":                keys,
		"GATEWAY_ADDR":                    "127.0.0.1:0",
		"CONCUR_BASE_URL":                 sim.URL,
		"CONCUR_CLIENT_ID":                id,
		"CONCUR_CLIENT_SECRET":            secret,
		"CONCUR_REFRESH_TOKEN":            refresh,
		"CONCUR_TIMEOUT":                  "5s",
		"GATEWAY_BATCH_LIST_MIN_INTERVAL": "1s",
		"GATEWAY_DATA_DIR":                t.TempDir(),
		"LOG_LEVEL":                       "debug",
	}
	for k, v := range gwEnv {
		genv[k] = v
	}
	gw := start(t, "gateway", genv)
	gatewayKeys.Store(gw.URL, key)
	return &stack{sim: sim, gw: gw, gwEnv: genv, key: key, secrets: []string{secret, refresh, key}}
}

// startGateway starts another gateway with the stack's environment (the same data
// directory or database), plus extra.
func (s *stack) startGateway(t *testing.T, extra map[string]string) *proc {
	t.Helper()
	env := map[string]string{}
	for k, v := range s.gwEnv {
		env[k] = v
	}
	for k, v := range extra {
		env[k] = v
	}
	gw := start(t, "gateway", env)
	gatewayKeys.Store(gw.URL, s.key)
	return gw
}

// kill ends the process with SIGKILL: no shutdown, no last words.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	err := <-p.done
	p.done <- err
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

var client = &http.Client{Timeout: 60 * time.Second, Transport: &specChecked{base: http.DefaultTransport}}

func do(t *testing.T, method, url string, header map[string]string) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	authorize(req, header)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: body}
}

func decode[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.Body, &v); err != nil {
		t.Fatalf("answer is not the JSON expected (%v): %d %s", err, r.Status, r.Body)
	}
	return v
}

// simStats reads the simulator's counters.
type simStats struct {
	TokenRefreshes int            `json:"tokenRefreshes"`
	InvalidGrants  int            `json:"invalidGrants"`
	ListCalls      int            `json:"listCalls"`
	Closes         map[string]int `json:"closes"`
	Regenerations  map[string]int `json:"regenerations"`
	FilesServed    int            `json:"filesServed"`
	IssuedTokens   []string       `json:"issuedTokens"`
}

func (s *stack) stats(t *testing.T) simStats {
	t.Helper()
	return decode[simStats](t, do(t, "GET", s.sim.URL+"/_sim/stats", nil))
}

func (s *stack) fault(t *testing.T, f string) { s.simAdmin(t, http.MethodPut, "/_sim/fault", f) }

// simAdmin sends one of the simulator's admin requests (/_sim/...) with body, and fails
// the test unless it answers 2xx.
func (s *stack) simAdmin(t *testing.T, method, path, body string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.sim.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s %s: %s", method, path, body, resp.Status)
	}
}

func execGateway(env map[string]string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(binDir, "gateway"))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd
}

// authorize sets header on req, and the API key of the gateway req goes to unless header
// has its own Authorization ("" sends none).
func authorize(req *http.Request, header map[string]string) {
	for k, v := range header {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	if _, own := header["Authorization"]; own {
		return
	}
	if key, ok := gatewayKeys.Load(req.URL.Scheme + "://" + req.URL.Host); ok {
		req.Header.Set("Authorization", "Bearer "+key.(string))
	}
}
