package concursim

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// twoHosts is a simulator on two listeners: glz (the Sim) and dc (DataCentreHandler).
type twoHosts struct {
	*fixture        // srv is GLZ
	dc       string // the data centre's URL
}

func newTwoHosts(t *testing.T, edit func(*Options)) *twoHosts {
	t.Helper()
	dc := httptest.NewUnstartedServer(nil)
	dcURL := "http://" + dc.Listener.Addr().String()
	f := newFixture(t, func(o *Options) {
		withCompany(o)
		o.DataCentre = dcURL
		if edit != nil {
			edit(o)
		}
	})
	dc.Config.Handler = f.sim.DataCentreHandler()
	dc.Start()
	t.Cleanup(dc.Close)
	return &twoHosts{fixture: f, dc: dcURL}
}

// tokenAt posts form to the token endpoint at base.
func tokenAt(t *testing.T, base string, form url.Values) (int, tokenResponse) {
	t.Helper()
	resp, err := http.PostForm(base+tokenPath, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr tokenResponse
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, tr
}

func TestTwoHosts(t *testing.T) {
	t.Parallel()
	h := newTwoHosts(t, nil)

	// Day one: the request token is exchanged at GLZ; the grant lives at the data centre.
	code, tr := tokenAt(t, h.srv.URL, passwordForm(testCompany, testRequestToken))
	if code != http.StatusOK || tr.Geolocation != h.dc {
		t.Fatalf("exchange at GLZ: %d %+v, want geolocation %s", code, tr, h.dc)
	}
	auth := "Bearer " + tr.AccessToken

	// The token works at the data centre only.
	resp, body := h.do(t, http.MethodGet, listPath, auth)
	wantError(t, resp, body, http.StatusForbidden, "")
	resp, body = h.do(t, http.MethodGet, h.dc+listPath, auth)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("list at the data centre: %d %s", resp.StatusCode, body)
	}
	for _, s := range parseList(t, body).Summaries {
		if u := value(s, URLElementUpper); !strings.HasPrefix(u, h.dc+apiPrefix) {
			t.Errorf("Batch-URL %q does not name the data centre", u)
		}
	}
	bu := ""
	for _, s := range parseList(t, body).Summaries {
		if value(s, "BatchID") == SeedOpenUSD {
			bu = value(s, URLElementUpper)
		}
	}
	if st := h.closeOK(t, auth, bu, "v1.1"); !strings.HasPrefix(st.FileURL.Value, h.dc+apiPrefix) {
		t.Errorf("File-Url %q does not name the data centre", st.FileURL.Value)
	}

	// A refresh at GLZ is sent to the geolocation once per grant, the token unspent.
	code, redirect := tokenAt(t, h.srv.URL, refreshForm(tr.RefreshToken))
	if code != http.StatusBadRequest || redirect.Code != 16 || redirect.Geolocation != h.dc || redirect.Error == "" {
		t.Fatalf("refresh at GLZ: %d %+v, want 400 code 16 with geolocation %s", code, redirect, h.dc)
	}
	code, tr2 := tokenAt(t, h.dc, refreshForm(tr.RefreshToken))
	if code != http.StatusOK || tr2.Geolocation != h.dc {
		t.Fatalf("refresh at the data centre: %d %+v", code, tr2)
	}
	if code, _ := tokenAt(t, h.srv.URL, refreshForm(tr2.RefreshToken)); code != http.StatusOK {
		t.Errorf("second refresh of the grant at GLZ: %d, want 200 (code 16 once per grant)", code)
	}
	// Another exchange is another grant: told once again.
	_, other := tokenAt(t, h.dc, passwordForm(testCompany, testRequestToken))
	if code, tr := tokenAt(t, h.srv.URL, refreshForm(other.RefreshToken)); code != http.StatusBadRequest || tr.Code != 16 {
		t.Errorf("new grant's refresh at GLZ: %d %+v, want code 16", code, tr)
	}
	st := h.sim.Stats()
	if st.WrongHostRefreshes != 2 || st.WrongHostCalls != 1 || st.PasswordGrants != 2 {
		t.Errorf("stats: %d wrong-host refreshes, %d wrong-host calls, %d password grants; want 2, 1, 2",
			st.WrongHostRefreshes, st.WrongHostCalls, st.PasswordGrants)
	}
}

func TestTwoHostsOptions(t *testing.T) {
	t.Parallel()
	t.Run("no redirect", func(t *testing.T) {
		t.Parallel()
		h := newTwoHosts(t, func(o *Options) { o.NoRedirectRefresh = true })
		if code, tr := tokenAt(t, h.srv.URL, refreshForm(testRefresh)); code != http.StatusOK || tr.Geolocation != h.dc {
			t.Errorf("refresh at GLZ: %d %+v", code, tr)
		}
	})
	t.Run("geolocation option and path", func(t *testing.T) {
		t.Parallel()
		h := newTwoHosts(t, func(o *Options) { o.GeolocationPath = true })
		if _, tr := tokenAt(t, h.dc, refreshForm(testRefresh)); tr.Geolocation != h.dc+tokenPath {
			t.Errorf("geolocation %q, want %q", tr.Geolocation, h.dc+tokenPath)
		}
		h = newTwoHosts(t, func(o *Options) { o.Geolocation = "https://us2.api.concursolutions.com/oauth2/v0/token" })
		if _, tr := tokenAt(t, h.dc, refreshForm(testRefresh)); tr.Geolocation != "https://us2.api.concursolutions.com/oauth2/v0/token" {
			t.Errorf("geolocation %q, want the option verbatim", tr.Geolocation)
		}
	})
	t.Run("bad data centre", func(t *testing.T) {
		t.Parallel()
		for _, dc := range []string{"us2.api.concursolutions.com", "ftp://x", "http://x/path", "http://x?q"} {
			if _, err := New(Options{ClientID: "a", ClientSecret: "b", RefreshToken: "c", DataCentre: dc}); err == nil ||
				!strings.Contains(err.Error(), "DataCentre") {
				t.Errorf("DataCentre %q: %v", dc, err)
			}
		}
	})
}

// One host: the geolocation may carry a path, sent verbatim, and the URLs handed out use
// its origin; GeolocationPath appends the token path to the request's origin.
func TestGeolocationWithPath(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *Options) { o.Geolocation = "https://us2.api.concursolutions.com/oauth2/v0/token" })
	code, tr := f.refresh(t, testRefresh)
	if code != 200 || tr.Geolocation != "https://us2.api.concursolutions.com/oauth2/v0/token" {
		t.Fatalf("%d geolocation %q", code, tr.Geolocation)
	}
	u := f.batchURL(t, "Bearer "+tr.AccessToken, SeedOpenUSD)
	if !strings.HasPrefix(u, "https://us2.api.concursolutions.com"+apiPrefix) {
		t.Errorf("Batch-URL %q, want the geolocation's origin", u)
	}

	f = newFixture(t, func(o *Options) { o.GeolocationPath = true })
	if _, tr := f.refresh(t, testRefresh); tr.Geolocation != f.srv.URL+tokenPath {
		t.Errorf("geolocation %q, want %q", tr.Geolocation, f.srv.URL+tokenPath)
	}
	for _, geo := range []string{"us2.api.concursolutions.com", "mailto:x", "https://x/?q=1"} {
		if _, err := New(Options{ClientID: "a", ClientSecret: "b", RefreshToken: "c", Geolocation: geo}); err == nil {
			t.Errorf("Geolocation %q accepted", geo)
		}
	}
}
