package concursim

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// admin sends a request to a /_sim/ endpoint.
func (f *fixture) admin(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAdminFault(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		body     string
		wantCode int
		want     *Fault // installed fault, when accepted
	}{
		{"full", `{"op":"list","mode":"status","status":503,"message":"m","retryAfter":"120","delay":"1.5s","count":3}`, 200,
			&Fault{Op: "list", Mode: "status", Status: 503, Message: "m", RetryAfter: "120", Delay: Duration(1500 * time.Millisecond), Count: 3}},
		{"minimal", `{"mode":"reset"}`, 200, &Fault{Mode: "reset"}},
		{"delay in nanoseconds", `{"mode":"slow","delay":2000000000}`, 200, &Fault{Mode: "slow", Delay: Duration(2 * time.Second)}},
		{"unknown mode", `{"mode":"explode"}`, 400, nil},
		{"unknown op", `{"op":"download","mode":"status"}`, 400, nil},
		{"bad status", `{"mode":"status","status":999}`, 400, nil},
		{"negative count", `{"mode":"status","count":-1}`, 400, nil},
		{"bad delay", `{"mode":"slow","delay":"soon"}`, 400, nil},
		{"unknown field", `{"mode":"status","code":1}`, 400, nil},
		{"not json", `mode=status`, 400, nil},
		{"too large", `{"mode":"status","message":"` + strings.Repeat("x", 20<<10) + `"}`, 400, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, nil)
			code, body := f.admin(t, http.MethodPut, "/_sim/fault", tt.body)
			if code != tt.wantCode {
				t.Fatalf("PUT: %d %s, want %d", code, body, tt.wantCode)
			}
			_, body = f.admin(t, http.MethodGet, "/_sim/fault", "")
			var got *Fault
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("GET fault %q: %v", body, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("installed fault (-want +got):\n%s", diff)
			}
			if code, _ := f.admin(t, http.MethodDelete, "/_sim/fault", ""); code != http.StatusNoContent {
				t.Errorf("DELETE: %d", code)
			}
			if _, body := f.admin(t, http.MethodGet, "/_sim/fault", ""); strings.TrimSpace(body) != "null" {
				t.Errorf("after DELETE: %s", body)
			}
		})
	}
}

func TestAdminFaultApplies(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	if code, body := f.admin(t, http.MethodPut, "/_sim/fault", `{"op":"token","mode":"status","status":503,"count":1}`); code != 200 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	resp, err := http.PostForm(f.srv.URL+"/oauth2/v0/token", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Errorf("token under fault: %d, want 503", resp.StatusCode)
	}
}

func TestAdminExpireTokensAndHealth(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	auth := "Bearer " + f.accessToken(t)
	if code, _ := f.admin(t, http.MethodPost, "/_sim/expire-tokens", ""); code != http.StatusNoContent {
		t.Errorf("expire-tokens: %d", code)
	}
	resp, body := f.do(t, http.MethodGet, listPath, auth)
	wantError(t, resp, body, http.StatusForbidden, "")
	if code, body := f.admin(t, http.MethodGet, "/_sim/healthz", ""); code != 200 || body != "ok" {
		t.Errorf("healthz: %d %q", code, body)
	}
}

func TestAdminStats(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *Options) { o.AsyncCloseDelay = -1 })
	auth := "Bearer " + f.accessToken(t)
	f.refresh(t, testRefresh) // spent: invalid grant
	f.do(t, http.MethodGet, listPath, "")
	f.closeOK(t, auth, f.batchURL(t, auth, SeedOpenCard), "v1.2")
	u := f.closedFile(t, auth, SeedOpenCard)
	f.do(t, http.MethodGet, u, auth)

	code, body := f.admin(t, http.MethodGet, "/_sim/stats", "")
	if code != 200 {
		t.Fatalf("stats: %d", code)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"tokenRequests": 2.0, "tokenRefreshes": 1.0, "invalidGrants": 1.0, "listCalls": 2.0,
		"unauthorized": 1.0, "chunkedRejected": 0.0, "filesServed": 1.0,
		"passwordGrants": 0.0, "passwordRefusals": 0.0, "tokenErrors": 0.0,
		"wrongHostRefreshes": 0.0, "wrongHostCalls": 0.0,
		"refreshTokenExpiry": float64(f.clock.now().Add(180 * 24 * time.Hour).Unix()),
		"requests":           map[string]any{"token": 2.0, "list": 3.0, "close": 2.0, "file": 1.0},
		"presentedTokens":    []any{testRefresh, testRefresh}, "redeemedTokens": []any{testRefresh},
		"closes":        map[string]any{SeedOpenCard: 1.0},
		"regenerations": map[string]any{SeedOpenCard: 1.0}, // the v1.2 close completed at once
		"asyncCloses":   map[string]any{SeedOpenCard: 1.0},
		"chaos": map[string]any{"requests": 0.0, "resets": 0.0, "status5xx": 0.0, "slow": 0.0,
			"lostCloses": 0.0, "byOp": nil}, // chaos never drew
	}
	delete(got, "issuedTokens")   // random; TestStatsListIssuedTokens covers it
	delete(got, "correlationIds") // random; TestCorrelationIDs covers it
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stats JSON (-want +got):\n%s", diff)
	}
	// Stats returns a copy.
	st := f.sim.Stats()
	st.Closes[SeedOpenCard] = 99
	if f.sim.Stats().Closes[SeedOpenCard] != 1 {
		t.Error("Stats shares its maps with the simulator")
	}
}

// ignoreIssued leaves the issued tokens and correlation ids (random) and the refresh
// token expiry out of counter comparisons.
var ignoreIssued = cmpopts.IgnoreFields(Stats{}, "IssuedTokens", "CorrelationIDs", "RefreshTokenExpiry")

func TestStatsListIssuedTokens(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	_, first := f.refresh(t, testRefresh)
	_, second := f.refresh(t, first.RefreshToken)
	want := []string{first.AccessToken, first.RefreshToken, second.AccessToken, second.RefreshToken}
	if diff := cmp.Diff(want, f.sim.Stats().IssuedTokens); diff != "" {
		t.Errorf("issued tokens (-want +got):\n%s", diff)
	}
}

// TestAdminRuntimeMetrics: the runtime counters a load test reads (allocations, CPU) are
// there and grow as the simulator works.
func TestAdminRuntimeMetrics(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	read := func() (allocs, cpu float64) {
		t.Helper()
		code, body := f.admin(t, http.MethodGet, "/_sim/metrics", "")
		if code != 200 {
			t.Fatalf("metrics: %d", code)
		}
		for line := range strings.Lines(body) {
			name, value, _ := strings.Cut(strings.TrimSpace(line), " ")
			v, _ := strconv.ParseFloat(value, 64)
			switch name {
			case "go_memstats_alloc_bytes_total":
				allocs = v
			case "process_cpu_seconds_total":
				cpu = v
			}
		}
		if allocs == 0 {
			t.Fatalf("no go_memstats_alloc_bytes_total in:\n%s", body)
		}
		return allocs, cpu
	}
	before, _ := read()
	auth := "Bearer " + f.accessToken(t)
	for range 20 {
		f.do(t, http.MethodGet, listPath, auth)
	}
	if after, _ := read(); after <= before {
		t.Errorf("allocated bytes did not grow: %v then %v", before, after)
	}
}
