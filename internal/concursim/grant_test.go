package concursim

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	testCompany      = "08BCCA1E-0D4F-4261-9F1B-F778D96617D6"
	testRequestToken = "request-token-0"
)

// withCompany turns the request-token grant on.
func withCompany(o *Options) { o.CompanyUUID, o.RequestToken = testCompany, testRequestToken }

// passwordForm is the company request-token exchange.
func passwordForm(company, requestToken string) url.Values {
	return url.Values{
		"grant_type": {"password"}, "username": {company}, "password": {requestToken},
		"credtype": {"authtoken"}, "client_id": {testClientID}, "client_secret": {testClientSecret},
	}
}

// epoch reads refresh_expires_in, a string or a number.
func epoch(t *testing.T, tr tokenResponse) int64 {
	t.Helper()
	raw := string(tr.RefreshExpiresIn)
	if uq, err := strconv.Unquote(raw); err == nil {
		raw = uq
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		t.Fatalf("refresh_expires_in %s: %v", tr.RefreshExpiresIn, err)
	}
	return n
}

func TestPasswordGrant(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *Options) { withCompany(o); o.RefreshToken = "" })

	seen := map[string]bool{}
	for i := range 2 { // a request token may be exchanged again within its 24 h
		f.clock.add(time.Hour)
		code, tr := f.tokenForm(t, passwordForm(strings.ToLower(testCompany), testRequestToken))
		if code != http.StatusOK {
			t.Fatalf("exchange %d: %d %+v", i, code, tr)
		}
		if tr.AccessToken == "" || tr.RefreshToken == "" || tr.TokenType != "Bearer" || string(tr.ExpiresIn) != `"3600"` {
			t.Errorf("exchange %d: %+v", i, tr)
		}
		if tr.Scope != DefaultScope || !strings.Contains(tr.Scope, "PAYBAT") {
			t.Errorf("scope = %q, want %q", tr.Scope, DefaultScope)
		}
		if tr.Geolocation != f.srv.URL {
			t.Errorf("geolocation = %q, want %q", tr.Geolocation, f.srv.URL)
		}
		if got, want := epoch(t, tr), f.clock.now().Add(180*24*time.Hour).Unix(); got != want {
			t.Errorf("refresh_expires_in = %d, want %d", got, want)
		}
		if seen[tr.RefreshToken] {
			t.Errorf("exchange %d reissued refresh token %q", i, tr.RefreshToken)
		}
		seen[tr.RefreshToken] = true
		// Each exchange is a grant of its own: its refresh token is redeemable.
		if code, _ := f.refresh(t, tr.RefreshToken); code != http.StatusOK {
			t.Errorf("refresh of exchange %d: %d", i, code)
		}
	}
	st := f.sim.Stats()
	if st.PasswordGrants != 2 || st.PasswordRefusals != 0 || st.TokenRefreshes != 2 {
		t.Errorf("stats: %d password grants, %d refusals, %d refreshes; want 2, 0, 2",
			st.PasswordGrants, st.PasswordRefusals, st.TokenRefreshes)
	}
}

func TestPasswordGrantRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		opts     func(*Options)
		form     func(url.Values)
		later    time.Duration
		wantCode int
	}{
		{"wrong credtype", nil, func(v url.Values) { v.Set("credtype", "password") }, 0, 120},
		{"no credtype", nil, func(v url.Values) { v.Del("credtype") }, 0, 120},
		{"unknown company", nil, func(v url.Values) { v.Set("username", "11111111-0D4F-4261-9F1B-F778D96617D6") }, 0, 5},
		{"wrong request token", nil, func(v url.Values) { v.Set("password", "guess") }, 0, 5},
		{"request token expired", nil, nil, 24 * time.Hour, 108},
		{"expired by option", func(o *Options) { o.RequestTokenTTL = time.Minute }, nil, time.Minute, 108},
		{"issued for another client", func(o *Options) { o.RequestTokenClientID = "other-app" }, nil, 0, 136},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, func(o *Options) {
				withCompany(o)
				if tt.opts != nil {
					tt.opts(o)
				}
			})
			f.clock.add(tt.later)
			form := passwordForm(testCompany, testRequestToken)
			if tt.form != nil {
				tt.form(form)
			}
			code, tr := f.tokenForm(t, form)
			if code != http.StatusBadRequest || tr.Code != tt.wantCode || tr.Error == "" || tr.ErrorDescription == "" ||
				tr.AccessToken != "" {
				t.Errorf("got %d %+v, want 400 code %d", code, tr, tt.wantCode)
			}
			if tt.wantCode == 5 && tr.ErrorDescription != "Incorrect Credentials. Please Retry" {
				t.Errorf("error_description = %q", tr.ErrorDescription)
			}
			if st := f.sim.Stats(); st.PasswordRefusals != 1 || st.PasswordGrants != 0 || len(st.IssuedTokens) != 0 {
				t.Errorf("stats: %d refusals, %d grants, %d issued", st.PasswordRefusals, st.PasswordGrants, len(st.IssuedTokens))
			}
		})
	}
}

func TestPasswordGrantOff(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil) // no RequestToken: the grant is not offered
	code, tr := f.tokenForm(t, passwordForm("", ""))
	if code != http.StatusBadRequest || tr.Error != "unsupported_grant_type" {
		t.Errorf("got %d %+v, want 400 unsupported_grant_type", code, tr)
	}
}

func TestScopeOption(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *Options) { withCompany(o); o.Scope = "EXPRPT company.read" })
	_, tr := f.tokenForm(t, passwordForm(testCompany, testRequestToken))
	_, tr2 := f.refresh(t, tr.RefreshToken)
	if tr.Scope != "EXPRPT company.read" || tr2.Scope != tr.Scope {
		t.Errorf("scopes %q, %q; want the option's", tr.Scope, tr2.Scope)
	}
}

func TestNewCompanyOptions(t *testing.T) {
	t.Parallel()
	base := Options{ClientID: "a", ClientSecret: "b"}
	for _, tt := range []struct {
		name string
		edit func(*Options)
		ok   bool
	}{
		{"request token instead of refresh token", withCompany, true},
		{"request token without company", func(o *Options) { o.RequestToken = "x" }, false},
		{"company without request token", func(o *Options) { o.CompanyUUID = "x"; o.RefreshToken = "r" }, false},
		{"neither refresh nor request token", func(*Options) {}, false},
	} {
		o := base
		tt.edit(&o)
		sim, err := New(o)
		if (err == nil) != tt.ok {
			t.Errorf("%s: New = %v, want ok %v", tt.name, err, tt.ok)
		}
		if sim != nil {
			sim.Close()
		}
	}
}
