package concur

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// tokenServer is a token endpoint scripted by a test: answer decides each request's JSON
// answer; the forms it received are kept. Other requests go to api, when set (a host that
// is both a token endpoint and the API, as a geolocation is).
type tokenServer struct {
	srv *httptest.Server
	api http.Handler

	mu    sync.Mutex
	forms []map[string]string
}

func newTokenServer(t *testing.T, answer func(form map[string]string) (int, map[string]any)) *tokenServer {
	t.Helper()
	ts := &tokenServer{}
	ts.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/oauth2/v0/token" || r.Method != http.MethodPost {
			if ts.api != nil {
				ts.api.ServeHTTP(w, r)
				return
			}
			http.NotFound(w, r)
			return
		}
		if err := r.ParseForm(); err != nil {
			t.Errorf("token request: %v", err)
		}
		form := map[string]string{}
		for k := range r.PostForm {
			form[k] = r.PostForm.Get(k)
		}
		ts.mu.Lock()
		ts.forms = append(ts.forms, form)
		ts.mu.Unlock()
		status, body := answer(form)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Concur-Correlationid", tokenCorrelationID)
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(ts.srv.Close)
	return ts
}

// tokenCorrelationID is the concur-correlationid of every answer of a tokenServer.
const tokenCorrelationID = "6b1f0c2e-8d3a-4e5b-9f7c-1a2b3c4d5e6f"

func (ts *tokenServer) received() []map[string]string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]map[string]string(nil), ts.forms...)
}

// grantAnswer is Concur's answer to a good grant, its tokens named after suffix.
func grantAnswer(geo, suffix, scope string) map[string]any {
	return map[string]any{
		"access_token": "at-" + suffix, "token_type": "Bearer", "expires_in": "3600",
		"refresh_token": "rt-" + suffix, "refresh_expires_in": time.Now().Add(180 * 24 * time.Hour).Unix(),
		"scope": scope, "geolocation": geo, "id_token": "not-used",
	}
}

// The company request token is exchanged at the configured token endpoint with Concur's
// password grant; the grant is stored as a refresh would store it, and a client with no
// refresh token configured uses it: its stored access token first, then its refresh token,
// at the geolocation's token endpoint.
func TestAuthorizeStoresTheGrant(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.AddAccessToken("at-granted")
	var geo *tokenServer
	geo = newTokenServer(t, func(form map[string]string) (int, map[string]any) {
		if form["grant_type"] != "refresh_token" || form["refresh_token"] != "rt-granted" {
			return 400, map[string]any{"error": "invalid_grant", "code": 108}
		}
		f.AddAccessToken("at-renewed")
		return 200, grantAnswer(geo.srv.URL+"/oauth2/v0/token", "renewed", "PAYBAT")
	})
	geo.api = f.Sim
	glz := newTokenServer(t, func(form map[string]string) (int, map[string]any) {
		return 200, grantAnswer(geo.srv.URL+"/oauth2/v0/token", "granted", "EXPRPT PAYBAT")
	})
	creds := newRecordingStore()
	c, clock := newClient(t, f, func(c *Config) {
		c.TokenURL, c.RefreshToken, c.Credentials = glz.srv.URL+"/oauth2/v0/token", "", creds
	})

	got, err := c.Authorize(t.Context(), "company-uuid", " request-token\n", false, "")
	if err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	want := map[string]string{"grant_type": "password", "username": "company-uuid", "password": "request-token",
		"credtype": "authtoken", "client_id": "client-id", "client_secret": "client-secret"}
	assertEqual(t, []map[string]string{want}, glz.received())
	if !got.HasScope(ScopePaymentBatch) || got.Replaced || got.Geolocation != geo.srv.URL+"/oauth2/v0/token" ||
		time.Until(got.RefreshExpiry) < 179*24*time.Hour {
		t.Errorf("Authorization = %+v", got)
	}
	stored := creds.committed()
	if len(stored) != 1 || stored[0].RefreshToken != "rt-granted" || stored[0].AccessToken != "at-granted" {
		t.Fatalf("stored %+v", stored)
	}

	// The stored access token serves the first call, at the geolocation: no token request.
	if _, err := listOf(t.Context(), c, batch.ListOpen); err != nil {
		t.Fatalf("list with the authorized grant: %v", err)
	}
	if n := len(geo.received()) + len(glz.received()); n != 1 {
		t.Errorf("token requests = %d, want only the authorization's", n)
	}
	// Once it is stale, the refresh goes to the geolocation's token endpoint (its origin:
	// the geolocation carries a path), not to the configured one.
	clock.advance(2 * time.Hour)
	if _, err := listOf(t.Context(), c, batch.ListOpen); err != nil {
		t.Fatalf("list after the renewal: %v", err)
	}
	if n := len(geo.received()); n != 1 {
		t.Errorf("refreshes at the geolocation = %d, want 1", n)
	}
	if n := len(glz.received()); n != 1 {
		t.Errorf("requests at the configured token endpoint = %d, want 1 (the authorization)", n)
	}
}

// A store that holds a grant is not overwritten unless told so; a replaced grant's
// successor wins, and a seed still configured on a replica is recorded as spent.
func TestAuthorizeReplace(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	n := 0
	glz := newTokenServer(t, func(map[string]string) (int, map[string]any) {
		n++
		return 200, grantAnswer("", strings.Repeat("x", n), "PAYBAT")
	})
	creds := newRecordingStore()
	c, _ := newClient(t, f, func(c *Config) {
		c.TokenURL, c.RefreshToken, c.Credentials = glz.srv.URL+"/oauth2/v0/token", "", creds
	})
	if _, err := c.Authorize(t.Context(), "company-uuid", "rq-1", false, ""); err != nil {
		t.Fatalf("first Authorize: %v", err)
	}
	if _, err := c.Authorize(t.Context(), "company-uuid", "rq-2", false, ""); !errors.Is(err, ErrAlreadyAuthorized) {
		t.Fatalf("second Authorize without replace = %v, want ErrAlreadyAuthorized", err)
	}
	if len(glz.received()) != 1 {
		t.Errorf("token requests = %d: a refused authorize must not ask Concur", len(glz.received()))
	}
	got, err := c.Authorize(t.Context(), "company-uuid", "rq-2", true, "rt-0")
	if err != nil || !got.Replaced {
		t.Fatalf("Authorize --replace = %+v, %v", got, err)
	}
	last := creds.committed()[len(creds.committed())-1]
	if last.RefreshToken != "rt-xx" || !hasHash(last.SpentSeeds, seedHash("rt-0")) {
		t.Errorf("stored %+v", last)
	}
	// A replica still configured with the old seed renews the stored grant, not the seed
	// (its access token has expired: the replica must present a refresh token).
	replica, clock := newClient(t, f, func(c *Config) { c.Credentials = creds })
	clock.advance(2 * time.Hour)
	_ = call(t.Context(), replica, f, opList) // the fake does not know rt-xx: what matters is what was presented
	assertEqual(t, []string{"rt-xx"}, f.presentedTokens())
}

// A grant that lives at another geolocation is asked for there, once (code 16).
func TestAuthorizeFollowsCode16Once(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	home := newTokenServer(t, func(map[string]string) (int, map[string]any) {
		return 200, grantAnswer("", "home", "PAYBAT")
	})
	for _, tc := range []struct {
		name   string
		code   any
		geo    string
		wantOK bool
	}{
		{"number", 16, home.srv.URL + "/oauth2/v0/token", true},
		{"string", "16", home.srv.URL, true},
		{"no geolocation", 16, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(home.received())
			glz := newTokenServer(t, func(map[string]string) (int, map[string]any) {
				return 400, map[string]any{"error": "invalid_grant", "error_description": "user lives elsewhere",
					"code": tc.code, "geolocation": tc.geo}
			})
			c, _ := newClient(t, f, func(c *Config) { c.TokenURL, c.RefreshToken = glz.srv.URL+"/oauth2/v0/token", "" })
			_, err := c.Authorize(t.Context(), "company-uuid", "rq", false, "")
			if (err == nil) != tc.wantOK {
				t.Fatalf("Authorize = %v, want ok %v", err, tc.wantOK)
			}
			if got := len(home.received()) - before; tc.wantOK && got != 1 {
				t.Errorf("requests at the home geolocation = %d, want 1", got)
			}
			if len(glz.received()) != 1 {
				t.Errorf("requests at GLZ = %d, want 1", len(glz.received()))
			}
		})
	}
	// A geolocation that answers code 16 naming itself is not asked again.
	var loop *tokenServer
	loop = newTokenServer(t, func(map[string]string) (int, map[string]any) {
		return 400, map[string]any{"error": "invalid_grant", "code": 16, "geolocation": loop.srv.URL}
	})
	c, _ := newClient(t, f, func(c *Config) { c.TokenURL, c.RefreshToken = loop.srv.URL+"/oauth2/v0/token", "" })
	if _, err := c.Authorize(t.Context(), "company-uuid", "rq", false, ""); err == nil || len(loop.received()) != 1 {
		t.Errorf("Authorize = %v after %d requests, want an error after 1", err, len(loop.received()))
	}
}

// Every one of Concur's token error codes gets a sentence an operator can act on, whether
// the code arrives as a number or as a string.
func TestTokenErrorCodes(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	for _, tc := range []struct {
		code     int
		kind     grantKind
		wantCode batch.Code
		want     string
	}{
		{5, grantRequestToken, batch.CodeUpstreamAuthFailed, "CONCUR_COMPANY_UUID"},
		{5, grantRefresh, batch.CodeUpstreamAuthFailed, "re-run `gateway authorize`"},
		{108, grantRefresh, batch.CodeUpstreamAuthFailed, "re-run `gateway authorize`"},
		{108, grantRequestToken, batch.CodeUpstreamAuthFailed, "valid 24 hours"},
		{120, grantRequestToken, batch.CodeUpstreamAuthFailed, "credtype"},
		{136, grantRequestToken, batch.CodeUpstreamAuthFailed, "not issued for this app"},
		{20, grantRefresh, batch.CodeUpstreamAuthFailed, "egress addresses"},
		{53, grantRequestToken, batch.CodeUpstreamAuthFailed, "not enabled for this app"},
		{59, grantRefresh, batch.CodeUpstreamAuthFailed, "client id is disabled"},
		{107, grantRefresh, batch.CodeUpstreamAuthFailed, "refresh_token grant"},
		{123, grantRefresh, batch.CodeUpstreamAuthFailed, "disabled"},
		{134, grantRefresh, batch.CodeUpstreamUnavailable, "maintenance"},
	} {
		for _, asString := range []bool{false, true} {
			var code any = tc.code
			if asString {
				code = strconv.Itoa(tc.code)
			}
			srv := newTokenServer(t, func(map[string]string) (int, map[string]any) {
				return 400, map[string]any{"error": "invalid_grant", "error_description": "Refused", "code": code}
			})
			c, _ := newClient(t, f, func(c *Config) { c.TokenURL = srv.srv.URL + "/oauth2/v0/token" })
			var err error
			if tc.kind == grantRequestToken {
				_, err = c.Authorize(t.Context(), "company-uuid", "rq", false, "")
			} else {
				err = call(t.Context(), c, f, opList)
			}
			e := wantCode(t, err, tc.wantCode)
			if !strings.Contains(e.Detail, tc.want) {
				t.Errorf("code %v (%T), grant %d: detail %q, want it to mention %q", code, code, tc.kind, e.Detail, tc.want)
			}
			if e.CorrelationID != tokenCorrelationID {
				t.Errorf("code %v: correlation id %q, want the answer's", code, e.CorrelationID)
			}
			if e.Upstream == nil || !strings.Contains(e.Upstream.Message, "(code ") {
				t.Errorf("code %v: upstream %+v, want Concur's code in its message", code, e.Upstream)
			}
		}
	}
}

// A gateway configured with no refresh token and no stored grant says what to do, and asks
// Concur nothing.
func TestNoGrantSaysRunAuthorize(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	c, _ := newClient(t, f, func(c *Config) { c.RefreshToken = "" })
	e := wantCode(t, call(t.Context(), c, f, opList), batch.CodeUpstreamAuthFailed)
	if !strings.Contains(e.Detail, "gateway authorize") {
		t.Errorf("detail = %q", e.Detail)
	}
	if f.tokenCalls() != 0 || f.apiCalls() != 0 {
		t.Errorf("token calls %d, API calls %d: want none", f.tokenCalls(), f.apiCalls())
	}
}

// A refusal a person must lift (here code 123) is not presented again at every call, probe
// and tick, but it is after the hold-off, without a restart.
func TestRefusalNeedingAPersonIsHeldOff(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	srv := newTokenServer(t, func(map[string]string) (int, map[string]any) {
		return 400, map[string]any{"error": "invalid_grant", "error_description": "principal disabled", "code": 123}
	})
	c, clock := newClient(t, f, func(c *Config) { c.TokenURL = srv.srv.URL + "/oauth2/v0/token" })
	for range 5 {
		wantCode(t, call(t.Context(), c, f, opList), batch.CodeUpstreamAuthFailed)
	}
	if n := len(srv.received()); n != 1 {
		t.Errorf("token requests = %d, want 1 within the hold-off", n)
	}
	clock.advance(refusalHoldOff + time.Second)
	wantCode(t, call(t.Context(), c, f, opList), batch.CodeUpstreamAuthFailed)
	if n := len(srv.received()); n != 2 {
		t.Errorf("token requests = %d, want 2 after the hold-off", n)
	}
}

// A renewal that Concur answers with code 16 is made again, once, at the geolocation it
// names, with the same refresh token (a code 16 redeems nothing).
func TestRefreshFollowsCode16Once(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.AddAccessToken("at-home")
	home := newTokenServer(t, func(form map[string]string) (int, map[string]any) {
		return 200, grantAnswer("", "home", "PAYBAT")
	})
	glz := newTokenServer(t, func(map[string]string) (int, map[string]any) {
		return 400, map[string]any{"error": "invalid_grant", "code": "16", "geolocation": home.srv.URL + "/oauth2/v0/token"}
	})
	c, _ := newClient(t, f, func(c *Config) { c.TokenURL = glz.srv.URL + "/oauth2/v0/token" })
	if err := call(t.Context(), c, f, opList); err != nil {
		t.Fatalf("list: %v", err)
	}
	g, h := glz.received(), home.received()
	if len(g) != 1 || len(h) != 1 || h[0]["refresh_token"] != "rt-0" || h[0]["grant_type"] != "refresh_token" {
		t.Errorf("GLZ got %v, the geolocation %v: want one refresh each, the same token", g, h)
	}
}

// A refusal told again without asking Concur carries no answer's correlation id: it was
// another call's.
func TestHeldRefusalCarriesNoOldCorrelationID(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	srv := newTokenServer(t, func(map[string]string) (int, map[string]any) {
		return 400, map[string]any{"error": "invalid_grant", "code": 123}
	})
	c, _ := newClient(t, f, func(c *Config) { c.TokenURL = srv.srv.URL + "/oauth2/v0/token" })
	ctx1, noted1 := batch.WithCorrelations(t.Context())
	_, err1 := c.CloseBatch(ctx1, batchURL(f.srv.URL))
	ctx2, noted2 := batch.WithCorrelations(t.Context())
	_, err2 := c.CloseBatch(ctx2, batchURL(f.srv.URL))
	first, second := wantCode(t, err1, batch.CodeUpstreamAuthFailed), wantCode(t, err2, batch.CodeUpstreamAuthFailed)
	ids1, _ := noted1.IDs()
	ids2, _ := noted2.IDs()
	if first.CorrelationID != tokenCorrelationID || len(ids1) != 1 || second.CorrelationID != "" || len(ids2) != 0 ||
		len(srv.received()) != 1 {
		t.Errorf("first %q (noted %q), second %q (noted %q), token requests %d", first.CorrelationID, ids1,
			second.CorrelationID, ids2, len(srv.received()))
	}
}
