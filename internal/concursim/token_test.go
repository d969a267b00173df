package concursim

import (
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestTokenRotation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)

	code, first := f.refresh(t, testRefresh)
	if code != http.StatusOK {
		t.Fatalf("first refresh: %d %+v", code, first)
	}
	if first.RefreshToken == "" || first.RefreshToken == testRefresh {
		t.Fatalf("refresh_token = %q, want a new one", first.RefreshToken)
	}

	// The spent token is refused, every time.
	for range 2 {
		code, tr := f.refresh(t, testRefresh)
		if code != http.StatusBadRequest || tr.Error != "invalid_grant" || tr.Code != 108 || tr.ErrorDescription == "" {
			t.Errorf("reuse: %d %+v, want 400 invalid_grant code 108", code, tr)
		}
	}
	code, second := f.refresh(t, first.RefreshToken)
	if code != http.StatusOK || second.RefreshToken == first.RefreshToken {
		t.Fatalf("second refresh: %d %+v", code, second)
	}
	if code, _ := f.refresh(t, first.RefreshToken); code != http.StatusBadRequest {
		t.Errorf("old token after a newer one: %d, want 400", code)
	}
	if code, _ := f.refresh(t, "never-issued"); code != http.StatusBadRequest {
		t.Errorf("unknown token: %d, want 400", code)
	}
	st := f.sim.Stats()
	if st.TokenRequests != 6 || st.TokenRefreshes != 2 || st.InvalidGrants != 4 {
		t.Errorf("stats = %+v, want 6 requests, 2 refreshes, 4 invalid grants", st)
	}
}

func TestTokenNoRotate(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *Options) { o.NoRotate = true })
	for i := range 3 {
		code, tr := f.refresh(t, testRefresh)
		if code != http.StatusOK || tr.RefreshToken != testRefresh {
			t.Fatalf("refresh %d: %d %+v, want the same refresh token back", i, code, tr)
		}
	}
}

func TestTokenResponseShape(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		number    bool
		geo       string
		wantTTL   string
		wantGeoFn func(srvURL string) string
	}{
		{"string expires_in, request origin", false, "", `"3600"`, func(u string) string { return u }},
		{"number expires_in, geolocation option", true, "https://us2.api.concursolutions.com/", "3600",
			func(string) string { return "https://us2.api.concursolutions.com" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, func(o *Options) { o.ExpiresInNumber = tt.number; o.Geolocation = tt.geo })
			code, tr := f.refresh(t, testRefresh)
			if code != http.StatusOK {
				t.Fatalf("status %d", code)
			}
			if got := string(tr.ExpiresIn); got != tt.wantTTL {
				t.Errorf("expires_in = %s, want %s", got, tt.wantTTL)
			}
			if tr.TokenType != "Bearer" || tr.AccessToken == "" || tr.Scope == "" || tr.IDToken == nil {
				t.Errorf("token = %+v, want Bearer, an access token, a scope and an id_token", tr)
			}
			if got, want := tr.Geolocation, tt.wantGeoFn(f.srv.URL); got != want {
				t.Errorf("geolocation = %q, want %q", got, want)
			}
			raw := string(tr.RefreshExpiresIn)
			if !tt.number {
				raw, _ = strconv.Unquote(raw)
			}
			epoch, err := strconv.ParseInt(raw, 10, 64)
			want := f.clock.now().Add(180 * 24 * time.Hour).Unix()
			if err != nil || epoch != want {
				t.Errorf("refresh_expires_in = %s, want %d", tr.RefreshExpiresIn, want)
			}
		})
	}
}

func TestTokenErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		form      url.Values
		wantCode  int
		wantError string
	}{
		{"wrong secret", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {testRefresh},
			"client_id": {testClientID}, "client_secret": {"nope"}}, 401, "invalid_client"},
		{"wrong client", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {testRefresh},
			"client_id": {"other"}, "client_secret": {testClientSecret}}, 401, "invalid_client"},
		{"password grant", url.Values{"grant_type": {"password"}, "username": {"u"}, "password": {"p"},
			"client_id": {testClientID}, "client_secret": {testClientSecret}}, 400, "unsupported_grant_type"},
		{"no refresh token", url.Values{"grant_type": {"refresh_token"},
			"client_id": {testClientID}, "client_secret": {testClientSecret}}, 400, "invalid_grant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, nil)
			code, tr := f.tokenForm(t, tt.form)
			if code != tt.wantCode || tr.Error != tt.wantError || tr.ErrorDescription == "" {
				t.Errorf("got %d %+v, want %d %s", code, tr, tt.wantCode, tt.wantError)
			}
			// A failed attempt does not spend the refresh token.
			if code, _ := f.refresh(t, testRefresh); code != http.StatusOK {
				t.Errorf("refresh after a failed attempt: %d", code)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	const list = "/api/expense/paymentbatch/v1.1/batchlist/"
	tests := []struct {
		name   string
		auth   func(tok string) string
		before func(f *fixture)
		want   int
	}{
		{"bearer", func(tok string) string { return "Bearer " + tok }, nil, 200},
		{"legacy OAuth scheme", func(tok string) string { return "OAuth " + tok }, nil, 200},
		{"missing header", func(string) string { return "" }, nil, 401},
		{"scheme without token", func(string) string { return "Bearer" }, nil, 401},
		{"basic scheme", func(tok string) string { return "Basic " + tok }, nil, 401},
		{"unknown token", func(string) string { return "Bearer not-a-token" }, nil, 403},
		{"expired by clock", func(tok string) string { return "Bearer " + tok },
			func(f *fixture) { f.clock.add(time.Hour) }, 403},
		{"still valid before expiry", func(tok string) string { return "Bearer " + tok },
			func(f *fixture) { f.clock.add(59 * time.Minute) }, 200},
		{"expired by ExpireAccessTokens", func(tok string) string { return "Bearer " + tok },
			func(f *fixture) { f.sim.ExpireAccessTokens() }, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, nil)
			tok := f.accessToken(t)
			if tt.before != nil {
				tt.before(f)
			}
			resp, body := f.do(t, http.MethodGet, list, tt.auth(tok))
			if tt.want != http.StatusOK {
				wantError(t, resp, body, tt.want, "")
			} else if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			wantStats := Stats{TokenRequests: 1, TokenRefreshes: 1,
				Requests:        map[string]int{"token": 1, "list": 1},
				PresentedTokens: []string{testRefresh}, RedeemedTokens: []string{testRefresh},
				Closes: map[string]int{}, Regenerations: map[string]int{}, AsyncCloses: map[string]int{}}
			if tt.want == http.StatusOK {
				wantStats.ListCalls = 1
			} else {
				wantStats.Unauthorized = 1
			}
			if diff := cmp.Diff(wantStats, f.sim.Stats(), ignoreIssued); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRefreshAfterExpiry(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *Options) { o.AccessTokenTTL = time.Minute })
	code, tr := f.refresh(t, testRefresh)
	if code != 200 || string(tr.ExpiresIn) != `"60"` {
		t.Fatalf("refresh: %d expires_in %s", code, tr.ExpiresIn)
	}
	f.clock.add(time.Minute)
	resp, _ := f.do(t, http.MethodGet, "/api/expense/paymentbatch/v1.1/batchlist", "Bearer "+tr.AccessToken)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("expired token: %d, want 403", resp.StatusCode)
	}
	_, tr2 := f.refresh(t, tr.RefreshToken)
	resp, _ = f.do(t, http.MethodGet, "/api/expense/paymentbatch/v1.1/batchlist", "Bearer "+tr2.AccessToken)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after refresh: %d, want 200", resp.StatusCode)
	}
}
