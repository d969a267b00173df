package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/finplat/payment-batch-gateway/internal/concursim"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestRunServesAndShutsDown(t *testing.T) {
	t.Parallel()
	const secret, refresh = "s3cret-value", "refresh-value"
	getenv := env(map[string]string{
		"CONCURSIM_ADDR":             "127.0.0.1:0",
		"CONCURSIM_CLIENT_ID":        "gateway",
		"CONCURSIM_CLIENT_SECRET":    secret,
		"CONCURSIM_REFRESH_TOKEN":    refresh,
		"CONCURSIM_EXPIRES_IN":       "number",
		"CONCURSIM_LARGE_FILE_BYTES": "1000",
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, getenv, pw, io.Discard); _ = pw.Close() }()

	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var logs []string
	defer func() {
		for _, l := range logs {
			t.Log(l)
		}
	}()

	var addr string
	for addr == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("run ended before listening: %v", <-done)
			}
			logs = append(logs, l)
			var entry struct{ Level, Addr, Message string }
			if err := json.Unmarshal([]byte(l), &entry); err != nil {
				t.Fatalf("log line %q is not JSON: %v", l, err)
			}
			if entry.Message == "listening" {
				if entry.Level != "info" || !strings.HasPrefix(entry.Addr, "127.0.0.1:") {
					t.Fatalf("listening line = %q", l)
				}
				addr = entry.Addr
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no listening line")
		}
	}
	base := "http://" + addr

	resp, err := http.PostForm(base+"/oauth2/v0/token", url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {refresh},
		"client_id": {"gateway"}, "client_secret": {secret},
	})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   any    `json:"expires_in"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || tok.AccessToken == "" || tok.ExpiresIn != 3600.0 {
		t.Fatalf("token: %d %+v %v", resp.StatusCode, tok, err)
	}

	req, _ := http.NewRequest(http.MethodGet, base+"/api/expense/paymentbatch/v1.1/batchlist/OPEN", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "<BatchID>"+concursim.SeedOpenUSD+"</BatchID>") ||
		!strings.Contains(string(body), "<BatchID>large-file-batch</BatchID>") {
		t.Fatalf("list: %d %s", resp.StatusCode, body)
	}

	hcEnv := env(map[string]string{"CONCURSIM_ADDR": addr})
	if err := run(t.Context(), []string{"healthcheck"}, hcEnv, io.Discard, io.Discard); err != nil {
		t.Errorf("healthcheck of a running simulator: %v", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v after cancel", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	for l := range lines {
		logs = append(logs, l)
	}
	var requests int
	for _, l := range logs {
		if strings.Contains(l, secret) || strings.Contains(l, refresh) || strings.Contains(l, tok.AccessToken) {
			t.Errorf("log line leaks a secret: %s", l)
		}
		if strings.Contains(l, `"message":"request"`) {
			requests++
		}
	}
	if requests != 3 {
		t.Errorf("%d access-log lines, want 3", requests)
	}
	if err := run(t.Context(), []string{"healthcheck"}, env(map[string]string{"CONCURSIM_ADDR": addr}), io.Discard, io.Discard); err == nil {
		t.Error("healthcheck of a stopped simulator succeeded")
	}
}

func TestRunReportsAllConfigProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		env   map[string]string
		wants []string
	}{
		{"credentials missing", map[string]string{"CONCURSIM_ADDR": "127.0.0.1:0"},
			[]string{"CONCURSIM_CLIENT_ID", "CONCURSIM_CLIENT_SECRET", "CONCURSIM_REFRESH_TOKEN"}},
		{"bad values", map[string]string{
			"CONCURSIM_CLIENT_ID": "a", "CONCURSIM_CLIENT_SECRET": "b", "CONCURSIM_REFRESH_TOKEN": "c",
			"CONCURSIM_TOKEN_TTL": "forever", "CONCURSIM_EXPIRES_IN": "both", "CONCURSIM_ROTATE": "maybe",
			"CONCURSIM_URL_ELEMENT": "BatchUrl", "CONCURSIM_GEOLOCATION": "us2.api.concursolutions.com",
			"CONCURSIM_ASYNC_CLOSE_DELAY": "-1s", "CONCURSIM_LARGE_FILE_BYTES": "lots",
			"CONCURSIM_CHAOS": `{"reset":0.5,"status5xx":0.6}`, "CONCURSIM_LOAD_BATCHES": "-3",
		}, []string{"CONCURSIM_TOKEN_TTL", "CONCURSIM_EXPIRES_IN", "CONCURSIM_ROTATE", "CONCURSIM_URL_ELEMENT",
			"CONCURSIM_GEOLOCATION", "CONCURSIM_ASYNC_CLOSE_DELAY", "CONCURSIM_LARGE_FILE_BYTES", "CONCURSIM_CHAOS",
			"CONCURSIM_LOAD_BATCHES"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout strings.Builder
			err := run(t.Context(), nil, env(tt.env), &stdout, io.Discard)
			if err == nil {
				t.Fatal("run succeeded, want a configuration error")
			}
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %s:\n%v", w, err)
				}
			}
			if stdout.Len() != 0 {
				t.Errorf("run logged before validating: %s", stdout.String())
			}
		})
	}
}

func TestRunRejectsArguments(t *testing.T) {
	t.Parallel()
	if err := run(t.Context(), []string{"serve"}, env(nil), io.Discard, io.Discard); err == nil {
		t.Error("run accepted an argument")
	}
	var out strings.Builder
	if err := run(t.Context(), []string{"-h"}, env(nil), &out, io.Discard); err != nil || !strings.Contains(out.String(), "CONCURSIM_ADDR") {
		t.Errorf("-h: %v %q", err, out.String())
	}
}

func TestChaosFromEnvironment(t *testing.T) {
	t.Parallel()
	base := map[string]string{"CONCURSIM_CLIENT_ID": "a", "CONCURSIM_CLIENT_SECRET": "b", "CONCURSIM_REFRESH_TOKEN": "c"}
	c, err := loadConfig(env(base))
	if err != nil || c.Chaos != nil || c.options("").Chaos != nil {
		t.Fatalf("without CONCURSIM_CHAOS: %v, chaos %+v", err, c.Chaos)
	}
	base["CONCURSIM_CHAOS"] = ` {"reset":0.1,"status5xx":0.1,"slow":0.1,"slowFor":"3s","seed":42} `
	c, err = loadConfig(env(base))
	if err != nil {
		t.Fatal(err)
	}
	want := concursim.Chaos{Reset: 0.1, Status5xx: 0.1, Slow: 0.1, SlowFor: concursim.Duration(3 * time.Second), Seed: 42,
		Ops: []string{"close", "file", "list", "token"}}
	if diff := cmp.Diff(&want, c.options("").Chaos); diff != "" {
		t.Errorf("chaos (-want +got):\n%s", diff)
	}
	sim, err := concursim.New(c.options(""))
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	if diff := cmp.Diff(want, sim.Chaos()); diff != "" {
		t.Errorf("installed chaos (-want +got):\n%s", diff)
	}
	for _, bad := range []string{`{"reset":0.1,"unknown":1}`, `reset=0.1`, `{"ops":["admin"]}`} {
		base["CONCURSIM_CHAOS"] = bad
		if _, err := loadConfig(env(base)); err == nil || !strings.Contains(err.Error(), "CONCURSIM_CHAOS") {
			t.Errorf("CONCURSIM_CHAOS=%s: %v", bad, err)
		}
	}
}

func TestLoadBatches(t *testing.T) {
	t.Parallel()
	c, err := loadConfig(env(map[string]string{"CONCURSIM_CLIENT_ID": "a", "CONCURSIM_CLIENT_SECRET": "b",
		"CONCURSIM_REFRESH_TOKEN": "c", "CONCURSIM_LOAD_BATCHES": "3"}))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, b := range c.options("").Batches[len(concursim.Seed()):] {
		ids = append(ids, b.ID)
		if b.Closed || b.Count == 0 {
			t.Errorf("load batch %+v is not open and closable", b)
		}
	}
	if diff := cmp.Diff([]string{"load-0001", "load-0002", "load-0003"}, ids); diff != "" {
		t.Errorf("load batches (-want +got):\n%s", diff)
	}
	if _, err := concursim.New(c.options("")); err != nil {
		t.Errorf("the simulator refuses the load batches: %v", err)
	}
}
