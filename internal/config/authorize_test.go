package config

import (
	"strings"
	"testing"
	"time"
)

// `gateway authorize` runs with the service's environment minus its callers, and needs the
// company; the request token may come from a prompt.
func TestLoadAuthorize(t *testing.T) {
	t.Parallel()
	base := map[string]string{
		"GATEWAY_AUTH":    "", // callers are not needed: nothing is served
		"CONCUR_BASE_URL": "https://us2.api.concursolutions.com", "CONCUR_CLIENT_ID": "id", "CONCUR_CLIENT_SECRET": "s",
		"CONCUR_COMPANY_UUID": "3f0c9b7e-4d2a-4a8e-9c1b-2e7d5f6a8b90",
	}
	c, err := LoadAuthorize(env(base))
	if err != nil {
		t.Fatalf("LoadAuthorize: %v", err)
	}
	if c.ConcurCompanyUUID != base["CONCUR_COMPANY_UUID"] || c.ConcurRequestToken != "" || c.ConcurRefreshKeepAlive != 720*time.Hour {
		t.Errorf("config = %+v", c)
	}
	if _, err := Load(env(base)); err == nil || !strings.Contains(err.Error(), "no callers") {
		t.Errorf("Load without callers = %v: the service must still need them", err)
	}
	delete(base, "CONCUR_COMPANY_UUID")
	base["CONCUR_ACCESS_TOKEN"] = "static"
	_, err = LoadAuthorize(env(base))
	if err == nil || !strings.Contains(err.Error(), "CONCUR_ACCESS_TOKEN is set") {
		t.Errorf("LoadAuthorize with a static token = %v", err)
	}
	delete(base, "CONCUR_ACCESS_TOKEN")
	if _, err := LoadAuthorize(env(base)); err == nil || !strings.Contains(err.Error(), "CONCUR_COMPANY_UUID is required") {
		t.Errorf("LoadAuthorize without a company = %v", err)
	}
}

// The company request token goes to Concur's GLZ endpoint unless told otherwise.
func TestAuthorizeTokenURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ base, tokenURL, want string }{
		{"https://us2.api.concursolutions.com", "", GLZTokenURL},
		{"https://www-us2.api.concursolutions.com", "", GLZTokenURL},
		{"https://emea-impl.api.concursolutions.com", "https://emea-impl.api.concursolutions.com/oauth2/v0/token",
			"https://emea-impl.api.concursolutions.com/oauth2/v0/token"},
		{"https://us-impl.api.concursolutions.com", "", "https://us-impl.api.concursolutions.com/oauth2/v0/token"},
		{"http://127.0.0.1:9090", "", "http://127.0.0.1:9090/oauth2/v0/token"},
		{"https://concursolutions.com.example.org", "", "https://concursolutions.com.example.org/oauth2/v0/token"},
	} {
		c, err := Load(env(map[string]string{"CONCUR_BASE_URL": tc.base, "CONCUR_TOKEN_URL": tc.tokenURL,
			"CONCUR_CLIENT_ID": "id", "CONCUR_CLIENT_SECRET": "s"}))
		if err != nil {
			t.Fatalf("%s: %v", tc.base, err)
		}
		if got := c.AuthorizeTokenURL(); got != tc.want {
			t.Errorf("base %s, CONCUR_TOKEN_URL %q: AuthorizeTokenURL = %q, want %q", tc.base, tc.tokenURL, got, tc.want)
		}
	}
}

func TestRefreshKeepAliveBounds(t *testing.T) {
	t.Parallel()
	for v, ok := range map[string]bool{"1s": true, "720h": true, "3600h": true, "0s": false, "3601h": false} {
		_, err := Load(env(map[string]string{"CONCUR_BASE_URL": "http://127.0.0.1:9090", "CONCUR_CLIENT_ID": "id",
			"CONCUR_CLIENT_SECRET": "s", "CONCUR_REFRESH_KEEPALIVE": v}))
		if (err == nil) != ok {
			t.Errorf("CONCUR_REFRESH_KEEPALIVE=%s: %v, want ok %v", v, err, ok)
		}
	}
}
