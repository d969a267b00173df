package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Day one against a Concur company, through the real binaries: the simulator plays GLZ
// (its first listener) and the company's data centre (CONCURSIM_GEO_ADDR), names the data
// centre as the geolocation, with a path, and accepts the company request token.

const (
	companyUUID = "3f0c9b7e-4d2a-4a8e-9c1b-2e7d5f6a8b90"
	sunsetDate  = "Sun, 31 Oct 2027 23:59:59 GMT"
)

// dayOne is a simulator of two hosts and the gateway environment wired to it (not started).
type dayOne struct {
	sim          *proc
	geoURL       string // the data centre's origin
	requestToken string
	env          map[string]string // the gateway's, without CONCUR_REFRESH_TOKEN
	key          string
}

func startDayOne(t *testing.T, simEnv map[string]string) *dayOne {
	t.Helper()
	id, secret := "gateway-e2e", randomHex(t)
	d := &dayOne{requestToken: "rq-" + randomHex(t)}
	audit.add(secret, d.requestToken)
	senv := map[string]string{
		"CONCURSIM_ADDR": "127.0.0.1:0", "CONCURSIM_GEO_ADDR": "127.0.0.1:0", "CONCURSIM_GEOLOCATION_PATH": "true",
		"CONCURSIM_CLIENT_ID": id, "CONCURSIM_CLIENT_SECRET": secret,
		"CONCURSIM_COMPANY_UUID": companyUUID, "CONCURSIM_REQUEST_TOKEN": d.requestToken,
	}
	for k, v := range simEnv {
		senv[k] = v
	}
	d.sim = start(t, "concursim", senv)
	t.Cleanup(func() { audit.add(decode[simStats](t, do(t, "GET", d.sim.URL+"/_sim/stats", nil)).IssuedTokens...) })
	d.geoURL = "http://" + listenedAt(t, d.sim, "geo_addr")
	key, keys := mintKey(t, "e2e-caller", "batches:read", "batches:close", "batches:regenerate")
	d.key = key
	d.env = map[string]string{
		"GATEWAY_API_KEYS": keys, "GATEWAY_ADDR": "127.0.0.1:0",
		"CONCUR_BASE_URL":  d.sim.URL, // GLZ: every call goes to the geolocation once there is a grant
		"CONCUR_CLIENT_ID": id, "CONCUR_CLIENT_SECRET": secret, "CONCUR_COMPANY_UUID": companyUUID,
		"CONCUR_TIMEOUT": "5s", "GATEWAY_BATCH_LIST_MIN_INTERVAL": "1s",
		"GATEWAY_DATA_DIR": t.TempDir(), "LOG_LEVEL": "debug",
	}
	return d
}

// listenedAt reads field (an address) from the "listening" line p logged.
func listenedAt(t *testing.T, p *proc, field string) string {
	t.Helper()
	for _, line := range strings.Split(p.logs.String(), "\n") {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) == nil && l["message"] == "listening" {
			if a, ok := l[field].(string); ok {
				return a
			}
		}
	}
	t.Fatalf("no %s on the listening line:\n%s", field, p.logs)
	return ""
}

// authorizeRun runs `gateway authorize args...` with env plus extra, and returns its
// standard output and standard error (both audited for leaks) and its exit error.
func authorizeRun(t *testing.T, env, extra map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	all := map[string]string{}
	for k, v := range env {
		all[k] = v
	}
	for k, v := range extra {
		all[k] = v
	}
	cmd := execGateway(all)
	cmd.Args = append(cmd.Args, append([]string{"authorize"}, args...)...)
	out, errOut := &lockedBuffer{}, &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, errOut
	audit.watch(out, all)
	audit.watch(errOut, all)
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

func (d *dayOne) startGateway(t *testing.T) *proc {
	t.Helper()
	gw := start(t, "gateway", d.env)
	gatewayKeys.Store(gw.URL, d.key)
	return gw
}

type dayOneStats struct {
	simStats
	PasswordGrants     int   `json:"passwordGrants"`
	WrongHostRefreshes int   `json:"wrongHostRefreshes"`
	WrongHostCalls     int   `json:"wrongHostCalls"`
	RefreshTokenExpiry int64 `json:"refreshTokenExpiry"`
}

func (d *dayOne) stats(t *testing.T) dayOneStats {
	t.Helper()
	return decode[dayOneStats](t, do(t, "GET", d.sim.URL+"/_sim/stats", nil))
}

// The operator's first day: `gateway authorize` exchanges the company request token at
// GLZ and stores the grant; a second run refuses to replace it unless told; the gateway
// starts with no refresh token configured, calls the geolocation's host (named with a
// path), and says what Concur signals: the refresh token's expiry as a metric, the sunset
// and x-api-warn headers in its log (once) and in /readyz.
func TestDayOneAuthorizeThenServe(t *testing.T) {
	t.Parallel()
	d := startDayOne(t, map[string]string{"CONCURSIM_SUNSET": sunsetDate, "CONCURSIM_API_WARN": "Payment Batch v1.1 is deprecated"})

	tokenFile := filepath.Join(t.TempDir(), "request-token")
	if err := os.WriteFile(tokenFile, []byte(d.requestToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := authorizeRun(t, d.env, map[string]string{"CONCUR_REQUEST_TOKEN_FILE": tokenFile})
	if err != nil {
		t.Fatalf("gateway authorize: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	for _, want := range []string{"Authorized", d.geoURL + "/oauth2/v0/token", "PAYBAT", "Refresh token expires: 20"} {
		if !strings.Contains(out, want) {
			t.Errorf("authorize's output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "WARNING") {
		t.Errorf("authorize warned with PAYBAT granted:\n%s", out)
	}
	st := d.stats(t)
	if st.PasswordGrants != 1 {
		t.Errorf("password grants = %d, want 1", st.PasswordGrants)
	}
	for _, tok := range st.IssuedTokens {
		if strings.Contains(out+errOut, tok) {
			t.Errorf("authorize printed a token")
		}
	}

	// Run again: refused, nothing asked of Concur; with --replace, replaced.
	out, errOut, err = authorizeRun(t, d.env, map[string]string{"CONCUR_REQUEST_TOKEN": d.requestToken})
	if err == nil || !strings.Contains(errOut, "--replace") {
		t.Errorf("a second authorize = %v:\n%s%s", err, out, errOut)
	}
	if n := d.stats(t).PasswordGrants; n != 1 {
		t.Errorf("password grants after the refused run = %d, want 1", n)
	}
	out, errOut, err = authorizeRun(t, d.env, map[string]string{"CONCUR_REQUEST_TOKEN": d.requestToken}, "--replace")
	if err != nil || !strings.Contains(out, "replacing") {
		t.Fatalf("authorize --replace = %v:\n%s%s", err, out, errOut)
	}

	gw := d.startGateway(t)
	if r := do(t, "POST", gw.URL+"/batches/"+employeeBatch+"/close", nil); r.Status != 200 {
		t.Fatalf("close: %d %s", r.Status, r.Body)
	}
	for range 2 {
		if r := do(t, "GET", gw.URL+"/batches", nil); r.Status != 200 {
			t.Fatalf("list: %d %s", r.Status, r.Body)
		}
	}
	st = d.stats(t)
	if st.WrongHostCalls != 0 || st.TokenRefreshes != 0 {
		t.Errorf("calls at GLZ %d, refreshes %d: want the stored grant used, at its geolocation", st.WrongHostCalls, st.TokenRefreshes)
	}

	m := scrape(t, gw.URL)
	if got := m.get("gateway_concur_refresh_token_expiry_timestamp_seconds"); int64(got) != st.RefreshTokenExpiry {
		t.Errorf("refresh token expiry metric = %v, want the simulator's %d", got, st.RefreshTokenExpiry)
	}
	sunset, _ := time.Parse(time.RFC1123, sunsetDate)
	if got := m.get("gateway_concur_api_sunset_timestamp_seconds", "operation", "close"); int64(got) != sunset.Unix() {
		if got := m.get("gateway_concur_api_sunset_timestamp_seconds", "operation", "list"); int64(got) != sunset.Unix() {
			t.Errorf("sunset metric = %v, want %d", got, sunset.Unix())
		}
	}
	if n := strings.Count(gw.logs.String(), "Sunset header"); n != 1 {
		t.Errorf("the sunset was logged %d times, want once:\n%s", n, gw.logs)
	}
	if n := strings.Count(gw.logs.String(), "x-api-warn header"); n != 1 {
		t.Errorf("the api warning was logged %d times, want once", n)
	}
	ready := decode[struct {
		Status   string
		Warnings []struct{ Code, Detail string }
	}](t, do(t, "GET", gw.URL+"/readyz", nil))
	var codes []string
	for _, w := range ready.Warnings {
		codes = append(codes, w.Code)
	}
	if ready.Status != "ready" || !strings.Contains(strings.Join(codes, ","), "concur_api_sunset,concur_api_warning") {
		t.Errorf("readyz = %+v", ready)
	}
}

// A grant seeded by hand that names no geolocation yet is refreshed at the configured
// token endpoint (GLZ); Concur answers code 16 with the geolocation, and the refresh is
// made there, once.
func TestRefreshFollowsCode16ToTheGeolocation(t *testing.T) {
	t.Parallel()
	refresh := randomHex(t)
	d := startDayOne(t, map[string]string{"CONCURSIM_REFRESH_TOKEN": refresh})
	d.env["CONCUR_REFRESH_TOKEN"] = refresh
	gw := d.startGateway(t)
	if r := do(t, "GET", gw.URL+"/batches/"+employeeBatch, nil); r.Status != 200 {
		t.Fatalf("get: %d %s", r.Status, r.Body)
	}
	st := d.stats(t)
	if st.WrongHostRefreshes != 1 || st.TokenRefreshes != 1 || st.InvalidGrants != 0 {
		t.Errorf("refreshes at GLZ %d, refreshes %d, invalid grants %d: want 1, 1, 0",
			st.WrongHostRefreshes, st.TokenRefreshes, st.InvalidGrants)
	}
}

// An idle gateway keeps its grant: the keep-alive renews it before the refresh token
// expires (here every few seconds: the simulator's refresh tokens live 12 s, the margin is
// 10 s, so a renewal is due 2 s after the last and has 10 s to happen), so it still works
// long after the first refresh token died; and a grant Concur will not extend beyond the
// margin is reported, in the log once and in /readyz.
func TestKeepAliveKeepsAnIdleGatewaysGrant(t *testing.T) {
	t.Parallel()
	d := startDayOne(t, map[string]string{"CONCURSIM_REFRESH_TOKEN_TTL": "12s"})
	if out, errOut, err := authorizeRun(t, d.env, map[string]string{"CONCUR_REQUEST_TOKEN": d.requestToken}); err != nil {
		t.Fatalf("authorize: %v\n%s%s", err, out, errOut)
	}
	d.env["CONCUR_REFRESH_KEEPALIVE"] = "10s"
	gw := d.startGateway(t)
	first := d.stats(t).RefreshTokenExpiry
	waitFor(t, "two keep-alive renewals", func() bool { return d.stats(t).TokenRefreshes >= 2 })
	time.Sleep(13 * time.Second) // the authorized refresh token, and the first renewal's, are dead by now
	if r := do(t, "GET", gw.URL+"/batches", nil); r.Status != 200 {
		t.Fatalf("list after the first refresh tokens expired: %d %s", r.Status, r.Body)
	}
	st := d.stats(t)
	if st.InvalidGrants != 0 || st.RefreshTokenExpiry <= first {
		t.Errorf("invalid grants %d, expiry %d (first %d): want the grant kept alive", st.InvalidGrants, st.RefreshTokenExpiry, first)
	}
	if m := scrape(t, gw.URL); int64(m.get("gateway_concur_refresh_token_expiry_timestamp_seconds")) <= first {
		t.Errorf("the expiry metric did not move past %d", first)
	}

	// A margin longer than Concur's refresh tokens live: every renewal still ends within
	// it, which only a person can fix.
	long := startDayOne(t, map[string]string{"CONCURSIM_REFRESH_TOKEN_TTL": "1h"})
	if out, errOut, err := authorizeRun(t, long.env, map[string]string{"CONCUR_REQUEST_TOKEN": long.requestToken}); err != nil {
		t.Fatalf("authorize: %v\n%s%s", err, out, errOut)
	}
	long.env["CONCUR_REFRESH_KEEPALIVE"] = "2h"
	gw2 := long.startGateway(t)
	waitFor(t, "the expiring warning", func() bool {
		return bytes.Contains(do(t, "GET", gw2.URL+"/readyz", nil).Body, []byte("concur_refresh_token_expiring"))
	})
	time.Sleep(2 * time.Second) // readiness probes meanwhile (the keep-alive's first tick is 30 s away)
	if n := strings.Count(gw2.logs.String(), "expires within CONCUR_REFRESH_KEEPALIVE"); n != 1 {
		t.Errorf("the expiring refresh token was logged %d times, want once", n)
	}
	if n := long.stats(t).TokenRefreshes; n != 0 {
		t.Errorf("refreshes = %d, want 0: the authorized access token serves, and a grant Concur does not extend "+
			"past the margin must not be renewed at every tick", n)
	}
}

// Concur's refusals reach the operator as sentences to act on, through the real binaries:
// the code as a number or a string.
func TestAuthorizeRefusalsSayWhatToDo(t *testing.T) {
	t.Parallel()
	d := startDayOne(t, nil)
	out, errOut, err := authorizeRun(t, d.env, map[string]string{"CONCUR_REQUEST_TOKEN": "rq-wrong-" + randomHex(t)})
	if err == nil || !strings.Contains(errOut, "CONCUR_COMPANY_UUID") || !strings.Contains(errOut, "code 5") ||
		!strings.Contains(errOut, "correlation id, for SAP Concur support: ") {
		t.Errorf("a wrong request token = %v:\n%s%s", err, out, errOut)
	}
	for _, tc := range []struct {
		fault, want string
	}{
		{`{"code":20,"count":1}`, "egress addresses"},
		{`{"code":53,"codeAsString":true,"count":1}`, "not enabled for this app"},
		{`{"code":136,"codeAsString":true,"count":1}`, "not issued for this app"},
		{`{"code":59,"count":1}`, "client id is disabled"},
		{`{"code":123,"count":1}`, "disabled"},
	} {
		putSim(t, d.sim.URL, "/_sim/token-error", tc.fault)
		out, errOut, err := authorizeRun(t, d.env, map[string]string{"CONCUR_REQUEST_TOKEN": d.requestToken})
		if err == nil || !strings.Contains(errOut, tc.want) {
			t.Errorf("token error %s: %v:\n%s%s", tc.fault, err, out, errOut)
		}
	}
	// No request token and no terminal: refused before anything is asked.
	before := d.stats(t).PasswordGrants
	_, errOut, err = authorizeRun(t, d.env, nil)
	if err == nil || !strings.Contains(errOut, "CONCUR_REQUEST_TOKEN or CONCUR_REQUEST_TOKEN_FILE is required") {
		t.Errorf("no request token: %v %s", err, errOut)
	}
	if d.stats(t).PasswordGrants != before {
		t.Error("asked Concur without a request token")
	}

	// A gateway with neither a grant nor a refresh token says to run gateway authorize.
	gw := d.startGateway(t)
	r := do(t, "GET", gw.URL+"/batches/"+employeeBatch, nil)
	if r.Status != 502 || !regexp.MustCompile("gateway authorize").Match(r.Body) {
		t.Errorf("without a grant: %d %s", r.Status, r.Body)
	}
}

// putSim sends PUT path body to the simulator at base and fails unless it is taken.
func putSim(t *testing.T, base, path, body string) {
	t.Helper()
	s := &stack{sim: &proc{URL: base}}
	s.simAdmin(t, "PUT", path, body)
}
