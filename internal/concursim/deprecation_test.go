package concursim

import (
	"net/http"
	"strings"
	"testing"
)

const testSunset = "Sat, 31 Oct 2027 23:59:59 GMT"

func TestDeprecationHeaders(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *Options) {
		o.Sunset, o.APIWarn = testSunset, "Payment Batch v1.1 is deprecated; see the release notes."
		o.AsyncCloseDelay = -1
	})
	want := func(resp *http.Response, what string, on bool) {
		t.Helper()
		sunset, warn := resp.Header.Get(HeaderSunset), resp.Header.Get(HeaderAPIWarn)
		if on && (sunset != testSunset || !strings.HasPrefix(warn, "Payment Batch v1.1")) {
			t.Errorf("%s: Sunset %q, x-api-warn %q; want both", what, sunset, warn)
		}
		if !on && (sunset != "" || warn != "") {
			t.Errorf("%s: Sunset %q, x-api-warn %q; want neither", what, sunset, warn)
		}
	}
	resp, err := http.PostForm(f.srv.URL+tokenPath, refreshForm(testRefresh))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want(resp, "token", false)
	f.sim.AddAccessToken("static")
	auth := "Bearer static"
	resp, _ = f.do(t, http.MethodGet, listPath, auth)
	want(resp, "list", true)
	resp, _ = f.do(t, http.MethodGet, listPath, "")
	want(resp, "list refused", true)
	resp, body := f.closeBatch(t, auth, f.batchURL(t, auth, SeedOpenUSD), "v1.1")
	want(resp, "close", true)
	resp, _ = f.do(t, http.MethodGet, parseStatus(t, resp, body).FileURL.Value, auth)
	want(resp, "file", true)

	// At run time: changed, then cleared.
	if code, body := f.admin(t, http.MethodPut, "/_sim/deprecation", `{"sunset":"Sun, 31 Oct 2027 23:59:59 GMT"}`); code != 200 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	resp, _ = f.do(t, http.MethodGet, listPath, auth)
	if resp.Header.Get(HeaderSunset) != "Sun, 31 Oct 2027 23:59:59 GMT" || resp.Header.Get(HeaderAPIWarn) != "" {
		t.Errorf("after PUT: %v", resp.Header)
	}
	if code, body := f.admin(t, http.MethodGet, "/_sim/deprecation", ""); code != 200 || !strings.Contains(body, "Sun, 31 Oct") {
		t.Errorf("GET: %d %s", code, body)
	}
	if code, _ := f.admin(t, http.MethodDelete, "/_sim/deprecation", ""); code != http.StatusNoContent {
		t.Errorf("DELETE: %d", code)
	}
	resp, _ = f.do(t, http.MethodGet, listPath, auth)
	want(resp, "after DELETE", false)
}

func TestDeprecationValidation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	for _, bad := range []string{`{"sunset":"2027-10-31"}`, `{"sunset":"Sat, 31 Oct 2027 23:59:59 CET"}`,
		`{"apiWarn":"a\u000db"}`, `{"apiWarn":"` + strings.Repeat("x", 1025) + `"}`, `{"sunrise":"x"}`, `[]`} {
		if code, body := f.admin(t, http.MethodPut, "/_sim/deprecation", bad); code != 400 || !strings.Contains(body, `"error"`) {
			t.Errorf("PUT %.40s: %d %s, want 400", bad, code, body)
		}
	}
	if _, err := New(Options{ClientID: "a", ClientSecret: "b", RefreshToken: "c", Sunset: "tomorrow"}); err == nil ||
		!strings.Contains(err.Error(), "sunset") {
		t.Errorf("New with a bad Sunset: %v", err)
	}
}
