package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/finplat/payment-batch-gateway/api"
)

// Who may do what: 401 without valid credentials, 403 without the scope, and the
// caller's name in the audit trail and the access log.
func TestCallersAndScopes(t *testing.T) {
	t.Parallel()
	readKey, readEntry := mintKey(t, "reporting", "batches:read")
	closeKey, closeEntry := mintKey(t, "ap-portal", "batches:read", "batches:close")
	keys := "[" + strings.Trim(readEntry, "[]") + "," + strings.Trim(closeEntry, "[]") + "]"
	s := startStack(t, nil, map[string]string{"GATEWAY_API_KEYS": keys})
	s.secrets = append(s.secrets, readKey, closeKey)
	closeURL := s.gw.URL + "/batches/" + employeeBatch + "/close"
	bearer := func(k string) map[string]string { return map[string]string{"Authorization": "Bearer " + k} }

	for _, tt := range []struct {
		name, method, url string
		header            map[string]string
		status            int
		code, challenge   string
	}{
		{"no credentials", "POST", closeURL, map[string]string{"Authorization": ""}, 401, "unauthorized", `Bearer realm="payment-batch-gateway"`},
		{"unknown key", "POST", closeURL, bearer("pbg_" + strings.Repeat("A", 43)), 401, "unauthorized", `error="invalid_token"`},
		{"the stack's key is not configured here", "POST", closeURL, bearer(s.key), 401, "unauthorized", `error="invalid_token"`},
		{"basic scheme", "POST", closeURL, map[string]string{"Authorization": "Basic " + closeKey}, 401, "unauthorized", `realm=`},
		{"key in the query string", "POST", closeURL + "?api_key=" + closeKey, map[string]string{"Authorization": ""}, 401, "unauthorized", `error="invalid_request"`},
		{"read-only key closes", "POST", closeURL, bearer(readKey), 403, "forbidden", `scope="batches:close"`},
		{"close key regenerates", "POST", closeURL + "?regenerate=true", bearer(closeKey), 403, "forbidden", `scope="batches:regenerate"`},
	} {
		r := do(t, tt.method, tt.url, tt.header)
		p := decode[api.Problem](t, r)
		if r.Status != tt.status || p.Code != tt.code || !strings.Contains(r.Header.Get("WWW-Authenticate"), tt.challenge) {
			t.Errorf("%s: %d %s, WWW-Authenticate %q", tt.name, r.Status, r.Body, r.Header.Get("WWW-Authenticate"))
		}
	}
	if st := s.stats(t); len(st.Closes) != 0 || st.TokenRefreshes != 0 {
		t.Errorf("refused callers reached Concur: %+v", st)
	}

	if r := do(t, "POST", closeURL, bearer(closeKey)); r.Status != 200 {
		t.Fatalf("close with the close key: %d %s", r.Status, r.Body)
	}
	trail := decode[api.CloseAttemptList](t, do(t, "GET", s.gw.URL+"/batches/"+employeeBatch+"/closes", bearer(readKey)))
	if len(trail.Items) != 1 || trail.Items[0].Caller != "ap-portal" {
		t.Errorf("audit trail = %+v", trail.Items)
	}
	if !strings.Contains(s.gw.logs.String(), `"callerName":"ap-portal"`) {
		t.Errorf("the access log does not name the caller")
	}
	logs := s.gw.logs.String()
	for _, k := range []string{readKey, closeKey} {
		if strings.Contains(logs, k) || strings.Contains(logs, k[4:20]) {
			t.Errorf("an API key appears in the log")
		}
	}
}

// GATEWAY_API_KEYS_FILE is reloaded on SIGHUP (or by the 5 s file watch): a new key works without a restart, a
// removed one stops working, and a broken file keeps the keys that were there.
func TestKeyFileReloadsOnSIGHUP(t *testing.T) {
	t.Parallel()
	oldKey, oldEntry := mintKey(t, "old-caller", "batches:read")
	newKey, newEntry := mintKey(t, "new-caller", "batches:read")
	file := filepath.Join(t.TempDir(), "keys.json")
	write := func(content string) {
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(oldEntry)
	s := startStack(t, nil, map[string]string{"GATEWAY_API_KEYS": "", "GATEWAY_API_KEYS_FILE": file})
	// The batch is unknown to this gateway: 404 means the key was accepted.
	url := s.gw.URL + "/batches/" + employeeBatch + "/closes"
	status := func(key string) int {
		return do(t, "GET", url, map[string]string{"Authorization": "Bearer " + key}).Status
	}
	if status(oldKey) != 404 || status(newKey) != 401 {
		t.Fatalf("before reload: old %d, new %d", status(oldKey), status(newKey))
	}
	write(newEntry)
	if err := s.gw.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new key", func() bool { return status(newKey) == 404 })
	if status(oldKey) != 401 {
		t.Errorf("the removed key still works")
	}
	write(`[{"name":"broken"`)
	if err := s.gw.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the refused reload to be logged", func() bool {
		return strings.Contains(s.gw.logs.String(), "api keys not reloaded")
	})
	if status(newKey) != 404 {
		t.Errorf("a broken key file dropped the working keys")
	}
}

func TestRateLimitPerCaller(t *testing.T) {
	t.Parallel()
	otherKey, otherEntry := mintKey(t, "other", "batches:read")
	s := startStack(t, nil, nil)
	keys := s.gwEnv["GATEWAY_API_KEYS"]
	gw := s.startGateway(t, map[string]string{
		"GATEWAY_RATE_LIMIT_PER_MINUTE": "3",
		"GATEWAY_API_KEYS":              "[" + strings.Trim(keys, "[]") + "," + strings.Trim(otherEntry, "[]") + "]",
	})
	url := gw.URL + "/batches/" + employeeBatch + "/closes" // unknown here: 404 once admitted
	for i := range 3 {
		if r := do(t, "GET", url, nil); r.Status != 404 {
			t.Fatalf("request %d: %d %s", i, r.Status, r.Body)
		}
	}
	r := do(t, "GET", url, nil)
	if p := decode[api.Problem](t, r); r.Status != 429 || p.Code != "rate_limited" || r.Header.Get("Retry-After") == "" {
		t.Errorf("over the limit: %d %s (Retry-After %q)", r.Status, r.Body, r.Header.Get("Retry-After"))
	}
	if r := do(t, "GET", url, map[string]string{"Authorization": "Bearer " + otherKey}); r.Status != 404 {
		t.Errorf("another caller is limited too: %d", r.Status)
	}
}

func TestCORSAllowlist(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil, map[string]string{"GATEWAY_CORS_ORIGINS": "https://portal.example.com"})
	preflight := func(origin string) response {
		return do(t, "OPTIONS", s.gw.URL+"/batches/"+employeeBatch+"/close", map[string]string{
			"Authorization": "", "Origin": origin, "Access-Control-Request-Method": "POST",
			"Access-Control-Request-Headers": "authorization,idempotency-key",
		})
	}
	if r := preflight("https://portal.example.com"); r.Header.Get("Access-Control-Allow-Origin") != "https://portal.example.com" {
		t.Errorf("allowed origin: %d, headers %v", r.Status, r.Header)
	}
	if r := preflight("https://evil.example.com"); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("foreign origin allowed: %v", r.Header)
	}
	r := do(t, "GET", s.gw.URL+"/batches/"+employeeBatch+"/closes", map[string]string{"Origin": "https://portal.example.com"})
	if r.Header.Get("Access-Control-Allow-Origin") != "https://portal.example.com" ||
		!strings.Contains(r.Header.Get("Access-Control-Expose-Headers"), "X-Request-Id") {
		t.Errorf("simple request: %d, headers %v", r.Status, r.Header)
	}
}

// Secure by default: no callers configured, no start.
func TestNoCallersNoStart(t *testing.T) {
	t.Parallel()
	cmd := execGateway(map[string]string{
		"CONCUR_BASE_URL": "http://127.0.0.1:1", "CONCUR_ACCESS_TOKEN": "t", "GATEWAY_DATA_DIR": t.TempDir(),
	})
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no callers are configured") {
		t.Errorf("gateway without callers: %v\n%s", err, out)
	}
}
