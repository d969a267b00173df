package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/concursim"
)

func TestRunServesUntilCancelled(t *testing.T) {
	t.Parallel()
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
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdoutR, stdoutW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, func(k string) string { return env[k] }, stdoutW, io.Discard)
		stdoutW.Close()
	}()

	addr := make(chan string, 1)
	scanned := make(chan struct{})
	t.Cleanup(func() { <-scanned }) // no t.Log after the test ends
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stdoutR)
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
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case err := <-done:
		t.Fatalf("run returned before listening: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no listening line")
	}

	closeURL := base + "/batches/6f1c2a9e-3b7d-4e58-9a41-0c2d8e7f5b13/close"
	resp, err := http.Post(closeURL, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("close without a key: %s", resp.Status)
	}
	req, _ := http.NewRequest(http.MethodPost, closeURL, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("close with the minted key: %s", resp.Status)
	}
	port := base[strings.LastIndex(base, ":"):]
	if err := healthcheck(ctx, port); err != nil {
		t.Errorf("healthcheck against the running gateway: %v", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run after cancel: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	if err := healthcheck(context.Background(), port); err == nil {
		t.Error("healthcheck succeeded against a stopped gateway")
	}
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
