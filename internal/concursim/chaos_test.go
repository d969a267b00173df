package concursim

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// answer is one request's fate under chaos: err for a dropped connection (or a client
// that gave up), else the status and body.
type answer struct {
	status int
	ctype  string
	body   []byte
	err    error
}

// try sends a request like do, but reports a transport failure instead of failing the
// test. form, when set, is POSTed form-encoded.
func (f *fixture) try(ctx context.Context, method, path, auth string, form url.Values) answer {
	u := path
	if !strings.HasPrefix(path, "http") {
		u = f.srv.URL + path
	}
	var body io.Reader = http.NoBody
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return answer{err: err}
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	// A fresh connection each time: the transport would replay a GET whose kept-alive
	// connection was reset, and the test counts requests.
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), body: b, err: err}
}

func refreshForm(rt string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt},
		"client_id": {testClientID}, "client_secret": {testClientSecret}}
}

func (f *fixture) setChaos(t *testing.T, c Chaos) Chaos {
	t.Helper()
	got, err := f.sim.SetChaos(c)
	if err != nil {
		t.Fatalf("SetChaos: %v", err)
	}
	return got
}

func TestParseChaos(t *testing.T) {
	t.Parallel()
	got, err := ParseChaos([]byte(`{"reset":0.1,"status5xx":0.1,"slow":0.1,"slowFor":"3s","seed":42}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Chaos{Reset: 0.1, Status5xx: 0.1, Slow: 0.1, SlowFor: Duration(3 * time.Second), Seed: 42,
		Ops: []string{"close", "file", "list", "token"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parsed (-want +got):\n%s", diff)
	}
	got, err = ParseChaos([]byte(`{"reset":1,"ops":["list","close","list"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got.Seed == 0 || got.SlowFor != Duration(defaultSlowFor) || !slices.Equal(got.Ops, []string{"close", "list"}) {
		t.Errorf("defaults: %+v, want a random seed, SlowFor %v, ops [close list]", got, defaultSlowFor)
	}
	for name, in := range map[string]string{
		"not JSON":          `reset=0.1`,
		"unknown field":     `{"resets":0.1}`,
		"over one":          `{"reset":1.5}`,
		"negative":          `{"status5xx":-0.1}`,
		"sum over one":      `{"reset":0.5,"status5xx":0.4,"slow":0.2}`,
		"negative slowFor":  `{"slow":0.1,"slowFor":"-1s"}`,
		"absurd slowFor":    `{"slow":0.1,"slowFor":"24h"}`,
		"bad slowFor":       `{"slow":0.1,"slowFor":"soon"}`,
		"unknown op":        `{"reset":0.1,"ops":["admin"]}`,
		"two values":        `{"reset":0.1} {"reset":0.2}`,
		"probability text":  `{"reset":"10%"}`,
		"seed not a number": `{"seed":"x"}`,
	} {
		if _, err := ParseChaos([]byte(in)); err == nil {
			t.Errorf("%s: ParseChaos(%s) accepted it", name, in)
		}
	}
	if _, err := New(Options{ClientID: "a", ClientSecret: "b", RefreshToken: "c", Chaos: &Chaos{Reset: 2}}); err == nil ||
		!strings.Contains(err.Error(), "Chaos") {
		t.Errorf("New with invalid chaos: %v", err)
	}
}

func TestChaosAdmin(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *Options) { o.Chaos = &Chaos{Status5xx: 1, Seed: 7, Ops: []string{"list"}} })
	code, body := f.admin(t, http.MethodGet, "/_sim/chaos", "")
	if code != 200 || !strings.Contains(body, `"seed":7`) || !strings.Contains(body, `"status5xx":1`) {
		t.Errorf("GET chaos from Options: %d %s", code, body)
	}
	code, body = f.admin(t, http.MethodPut, "/_sim/chaos", `{"reset":1,"slowFor":"2s","ops":["close"]}`)
	var echoed Chaos
	if err := json.Unmarshal([]byte(body), &echoed); code != 200 || err != nil {
		t.Fatalf("PUT chaos: %d %s", code, body)
	}
	if echoed.Reset != 1 || echoed.Seed == 0 || echoed.SlowFor != Duration(2*time.Second) || !slices.Equal(echoed.Ops, []string{"close"}) {
		t.Errorf("PUT echoed %+v", echoed)
	}
	if code, body := f.admin(t, http.MethodGet, "/_sim/chaos", ""); code != 200 || strings.TrimSpace(body) == "null" {
		t.Errorf("GET chaos: %d %s", code, body)
	}
	if code, body := f.admin(t, http.MethodPut, "/_sim/chaos", `{"reset":2}`); code != 400 || !strings.Contains(body, "reset") {
		t.Errorf("PUT invalid chaos: %d %s", code, body)
	}
	// Administration is never touched by chaos.
	f.setChaos(t, Chaos{Reset: 1})
	if code, body := f.admin(t, http.MethodGet, "/_sim/healthz", ""); code != 200 || body != "ok" {
		t.Errorf("healthz under chaos: %d %q", code, body)
	}
	if code, _ := f.admin(t, http.MethodDelete, "/_sim/chaos", ""); code != http.StatusNoContent {
		t.Errorf("DELETE chaos: %d", code)
	}
	if code, body := f.admin(t, http.MethodGet, "/_sim/chaos", ""); code != 200 || strings.TrimSpace(body) != "null" {
		t.Errorf("GET chaos after DELETE: %d %s", code, body)
	}
	if a := f.try(t.Context(), http.MethodPost, "/oauth2/v0/token", "", refreshForm(testRefresh)); a.err != nil || a.status != 200 {
		t.Errorf("token after DELETE: %+v", a)
	}
}

// A reset drops the connection. On the token endpoint it comes before the refresh: the
// refresh token is still good. On the list nothing is counted.
func TestChaosResetTokenAndList(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	auth := "Bearer " + f.accessToken(t)
	f.setChaos(t, Chaos{Reset: 1, Seed: 1})
	st := f.sim.Stats()
	rt := f.sim.RefreshTokens()[0]
	for range 3 {
		if a := f.try(t.Context(), http.MethodPost, "/oauth2/v0/token", "", refreshForm(rt)); a.err == nil {
			t.Fatalf("token answered %d under reset 1, want a dropped connection", a.status)
		}
		if a := f.try(t.Context(), http.MethodGet, listPath, auth, nil); a.err == nil {
			t.Fatalf("list answered %d under reset 1", a.status)
		}
	}
	after := f.sim.Stats()
	if after.TokenRefreshes != st.TokenRefreshes || after.ListCalls != st.ListCalls {
		t.Errorf("reset requests were processed: refreshes %d -> %d, lists %d -> %d",
			st.TokenRefreshes, after.TokenRefreshes, st.ListCalls, after.ListCalls)
	}
	want := ChaosCounts{Requests: 6, Resets: 6}
	if after.Chaos.ChaosCounts != want || after.Chaos.ByOp["token"] != (ChaosCounts{Requests: 3, Resets: 3}) {
		t.Errorf("chaos stats = %+v, want %+v and 3 token resets", after.Chaos, want)
	}
	f.sim.ClearChaos()
	if code, tr := f.refresh(t, rt); code != 200 {
		t.Errorf("the refresh token died in a reset: %d %+v", code, tr)
	}
}

// A reset of a close drops the request before the close or the answer after it, at random;
// the closes made are counted as lost.
func TestChaosResetClose(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	auth := "Bearer " + f.accessToken(t)
	u := f.batchURL(t, auth, SeedOpenUSD)
	f.setChaos(t, Chaos{Reset: 1, Seed: 42, Ops: []string{"close"}})
	const n = 20
	for range n {
		if a := f.try(t.Context(), http.MethodPost, u+"/close", auth, nil); a.err == nil {
			t.Fatalf("close answered %d under reset 1", a.status)
		}
	}
	st := f.sim.Stats()
	closes := st.Closes[SeedOpenUSD]
	if closes == 0 || closes == n {
		t.Errorf("%d of %d reset closes happened, want some before and some after the close", closes, n)
	}
	if st.Chaos.LostCloses != closes || st.Chaos.Resets != n {
		t.Errorf("LostCloses %d, resets %d; want %d and %d", st.Chaos.LostCloses, st.Chaos.Resets, closes, n)
	}
	if ids := f.listIDs(t, auth, "CLOSED"); !slices.Contains(ids, SeedOpenUSD) {
		t.Errorf("CLOSED list %v lacks the batch closed before a reset", ids)
	}
}

// Outages are 5xx answers that are never acted upon and never look like the close's
// no-reports business answer (500 with an XML message).
func TestChaosOutages(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	auth := "Bearer " + f.accessToken(t)
	u := f.batchURL(t, auth, SeedOpenUSD)
	f.setChaos(t, Chaos{Status5xx: 1, Seed: 3})
	rt := f.sim.RefreshTokens()[0]
	seen := map[int]bool{}
	for range 12 {
		for _, a := range []answer{
			f.try(t.Context(), http.MethodGet, listPath, auth, nil),
			f.try(t.Context(), http.MethodPost, u+"/close", auth, nil),
		} {
			if a.err != nil || a.status < 500 {
				t.Fatalf("API answer %+v, want a 5xx", a)
			}
			seen[a.status] = true
			if a.status == 500 && len(a.body) != 0 {
				t.Errorf("500 with a body %q: a close would read it as a business answer", a.body)
			}
			if a.status == 503 {
				wantError(t, &http.Response{StatusCode: a.status, Header: http.Header{"Content-Type": {a.ctype}}}, a.body, 503, "")
			}
		}
		a := f.try(t.Context(), http.MethodPost, "/oauth2/v0/token", "", refreshForm(rt))
		if a.err != nil || a.status < 500 {
			t.Fatalf("token answer %+v, want a 5xx", a)
		}
	}
	if diff := cmp.Diff(map[int]bool{500: true, 502: true, 503: true, 504: true}, seen); diff != "" {
		t.Errorf("outage statuses (-want +got):\n%s", diff)
	}
	st := f.sim.Stats()
	if len(st.Closes) != 0 || st.TokenRefreshes != 1 || st.Chaos.Status5xx != 36 {
		t.Errorf("closes %v, refreshes %d, outages %d: outages must not act", st.Closes, st.TokenRefreshes, st.Chaos.Status5xx)
	}
	f.sim.ClearChaos()
	if code, _ := f.refresh(t, rt); code != 200 {
		t.Errorf("the refresh token died in an outage: %d", code)
	}
}

// A slow close closes at once and answers late; a client that does not wait loses the
// answer, but the batch is closed and the CLOSED list says so.
func TestChaosSlowClose(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	auth := "Bearer " + f.accessToken(t)
	u := f.batchURL(t, auth, SeedOpenUSD)
	f.setChaos(t, Chaos{Slow: 1, SlowFor: Duration(time.Minute), Seed: 5, Ops: []string{"close"}})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if a := f.try(ctx, http.MethodPost, u+"/close", auth, nil); a.err == nil {
		t.Fatalf("slow close answered %d before a minute", a.status)
	}
	if ids := f.listIDs(t, auth, "CLOSED"); !slices.Contains(ids, SeedOpenUSD) {
		t.Errorf("CLOSED list %v lacks the batch whose slow close the client gave up on", ids)
	}
	deadline := time.Now().Add(5 * time.Second) // the handler notices the client left
	for f.sim.Stats().Chaos.LostCloses != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := f.sim.Stats(); st.Closes[SeedOpenUSD] != 1 || st.Chaos.LostCloses != 1 || st.Chaos.Slow != 1 {
		t.Errorf("closes %v, lost %d, slow %d; want 1 each", st.Closes, st.Chaos.LostCloses, st.Chaos.Slow)
	}

	f.setChaos(t, Chaos{Slow: 1, SlowFor: Duration(50 * time.Millisecond), Ops: []string{"close"}})
	start := time.Now()
	a := f.try(t.Context(), http.MethodPost, u+"/close", auth, nil)
	if a.err != nil || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("patient client: %+v after %v", a, time.Since(start))
	}
	parseStatus(t, &http.Response{StatusCode: a.status, Header: http.Header{"Content-Type": {a.ctype}}}, a.body)
	if st := f.sim.Stats(); st.Closes[SeedOpenUSD] != 2 || st.Chaos.LostCloses != 1 {
		t.Errorf("closes %v, lost %d after a patient close", st.Closes, st.Chaos.LostCloses)
	}
}

// A slow token request that the client gives up on is never processed: no rotation behind
// the client's back. One the client waits for is answered normally.
func TestChaosSlowToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.setChaos(t, Chaos{Slow: 1, SlowFor: Duration(300 * time.Millisecond), Ops: []string{"token", "list"}})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if a := f.try(ctx, http.MethodPost, "/oauth2/v0/token", "", refreshForm(testRefresh)); a.err == nil {
		t.Fatalf("slow token answered %d before its delay", a.status)
	}
	time.Sleep(600 * time.Millisecond) // past the delay: a request still waiting would be processed now
	if n := f.sim.Stats().TokenRefreshes; n != 0 {
		t.Fatalf("%d refreshes made for a client that had left", n)
	}
	f.setChaos(t, Chaos{Slow: 1, SlowFor: Duration(20 * time.Millisecond), Ops: []string{"token"}})
	a := f.try(t.Context(), http.MethodPost, "/oauth2/v0/token", "", refreshForm(testRefresh))
	if a.err != nil || a.status != 200 {
		t.Fatalf("the refresh token was spent by a request its client gave up on: %+v", a)
	}
	if st := f.sim.Stats(); st.TokenRefreshes != 1 || st.Chaos.ByOp["token"].Slow != 2 {
		t.Errorf("refreshes %d, slow token requests %d; want 1 and 2", st.TokenRefreshes, st.Chaos.ByOp["token"].Slow)
	}
}

// A fault that matches a request goes first; chaos applies to what it leaves.
func TestChaosAfterFault(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	auth := "Bearer " + f.accessToken(t)
	f.setChaos(t, Chaos{Reset: 1, Ops: []string{"list"}})
	f.sim.SetFault(Fault{Op: "list", Mode: "status", Status: 418, Count: 1})
	if a := f.try(t.Context(), http.MethodGet, listPath, auth, nil); a.err != nil || a.status != 418 {
		t.Errorf("first list: %+v, want the fault's 418", a)
	}
	if a := f.try(t.Context(), http.MethodGet, listPath, auth, nil); a.err == nil {
		t.Errorf("second list answered %d, want chaos's reset", a.status)
	}
	if a := f.try(t.Context(), http.MethodPost, "/oauth2/v0/token", "", refreshForm("spent")); a.err != nil || a.status != 400 {
		t.Errorf("token outside chaos's ops: %+v, want the normal invalid_grant", a)
	}
}

// The same seed gives the same sequence of outcomes, in about the configured shares.
func TestChaosSeedAndShares(t *testing.T) {
	t.Parallel()
	draw := func(seed uint64) ([]chaosOutcome, ChaosCounts) {
		s, err := New(Options{ClientID: "a", ClientSecret: "b", RefreshToken: "c"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.SetChaos(Chaos{Reset: 0.1, Status5xx: 0.1, Slow: 0.1, Seed: seed}); err != nil {
			t.Fatal(err)
		}
		var seq []chaosOutcome
		for i := range 3000 {
			seq = append(seq, s.drawChaos(chaosOps[i%len(chaosOps)]).outcome)
		}
		return seq, s.Stats().Chaos.ChaosCounts
	}
	a, counts := draw(42)
	b, _ := draw(42)
	c, _ := draw(43)
	if !slices.Equal(a, b) {
		t.Error("the same seed drew different outcomes")
	}
	if slices.Equal(a, c) {
		t.Error("different seeds drew the same outcomes")
	}
	if counts.Requests != 3000 {
		t.Errorf("requests = %d", counts.Requests)
	}
	for name, n := range map[string]int{"resets": counts.Resets, "5xx": counts.Status5xx, "slow": counts.Slow} {
		if n < 200 || n > 400 { // 10 % of 3000 is 300; the bounds are over 5 standard deviations wide
			t.Errorf("%s = %d of 3000, want about 300", name, n)
		}
	}
}

// The stats JSON carries the chaos counters.
func TestChaosStatsJSON(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.setChaos(t, Chaos{Status5xx: 1, Ops: []string{"token"}})
	f.try(t.Context(), http.MethodPost, "/oauth2/v0/token", "", refreshForm(testRefresh))
	code, body := f.admin(t, http.MethodGet, "/_sim/stats", "")
	var got struct {
		Chaos struct {
			Requests, Resets, Status5xx, Slow, LostCloses int
			ByOp                                          map[string]map[string]int
		}
	}
	if err := json.Unmarshal([]byte(body), &got); code != 200 || err != nil {
		t.Fatalf("stats: %d %v", code, err)
	}
	if got.Chaos.Requests != 1 || got.Chaos.Status5xx != 1 || got.Chaos.ByOp["token"]["status5xx"] != 1 {
		t.Errorf("stats chaos = %+v", got.Chaos)
	}
}
