package concursim

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// rawToken posts form and returns the status and the JSON answer as a map, so that the
// type of "code" shows.
func (f *fixture) rawToken(t *testing.T, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(f.srv.URL+tokenPath, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, m
}

func TestInjectedTokenErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		put        string
		wantStatus int
		want       map[string]any
	}{
		{"code as a number, defaults", `{"code":20,"count":1}`, 401, map[string]any{"error": "unauthorized_client",
			"error_description": "The request's IP address is not allowed for this client.", "code": 20.0}},
		{"code as a string, everything given", `{"code":134,"status":503,"error":"maintenance","description":"Back soon.","codeAsString":true,"count":1}`,
			503, map[string]any{"error": "maintenance", "error_description": "Back soon.", "code": "134"}},
		{"code 5", `{"code":5,"count":1}`, 400, map[string]any{"error": "invalid_grant",
			"error_description": "Incorrect Credentials. Please Retry", "code": 5.0}},
		{"code 16 carries a geolocation", `{"code":16,"geolocation":"https://eu2.api.concursolutions.com","count":1}`, 400,
			map[string]any{"error": "invalid_grant", "error_description": "user lives elsewhere", "code": 16.0,
				"geolocation": "https://eu2.api.concursolutions.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, nil)
			if code, body := f.admin(t, http.MethodPut, "/_sim/token-error", tt.put); code != 200 {
				t.Fatalf("PUT: %d %s", code, body)
			}
			status, got := f.rawToken(t, refreshForm(testRefresh))
			if status != tt.wantStatus {
				t.Errorf("status %d, want %d", status, tt.wantStatus)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
			// Count 1: used up, and the refresh token was not spent.
			if code, tr := f.refresh(t, testRefresh); code != 200 {
				t.Errorf("next refresh: %d %+v", code, tr)
			}
			if st := f.sim.Stats(); st.TokenErrors != 1 || st.TokenRefreshes != 1 {
				t.Errorf("stats: %d token errors, %d refreshes; want 1 and 1", st.TokenErrors, st.TokenRefreshes)
			}
		})
	}
}

func TestInjectedTokenErrorCountAndAdmin(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *Options) { withCompany(o) })
	if code, body := f.admin(t, http.MethodGet, "/_sim/token-error", ""); code != 200 || strings.TrimSpace(body) != "null" {
		t.Errorf("GET without one: %d %s", code, body)
	}
	code, body := f.admin(t, http.MethodPut, "/_sim/token-error", `{"code":108,"count":2}`)
	var echoed TokenError
	if err := json.Unmarshal([]byte(body), &echoed); code != 200 || err != nil || echoed.Status != 400 || echoed.OAuthError != "invalid_grant" {
		t.Fatalf("PUT: %d %s", code, body)
	}
	for i, form := range []url.Values{refreshForm(testRefresh), passwordForm(testCompany, testRequestToken)} {
		if status, m := f.rawToken(t, form); status != 400 || m["code"] != 108.0 {
			t.Errorf("answer %d: %d %v, want code 108", i, status, m)
		}
	}
	if code, _ := f.refresh(t, testRefresh); code != 200 {
		t.Errorf("after two: %d", code)
	}

	f.admin(t, http.MethodPut, "/_sim/token-error", `{"code":59}`) // until cleared
	for range 3 {
		if status, m := f.rawToken(t, refreshForm("any")); status != 401 || m["code"] != 59.0 {
			t.Errorf("until cleared: %d %v", status, m)
		}
	}
	if code, body := f.admin(t, http.MethodGet, "/_sim/token-error", ""); code != 200 || !strings.Contains(body, `"code":59`) {
		t.Errorf("GET: %d %s", code, body)
	}
	if code, _ := f.admin(t, http.MethodDelete, "/_sim/token-error", ""); code != http.StatusNoContent {
		t.Errorf("DELETE: %d", code)
	}
	if status, m := f.rawToken(t, refreshForm("any")); status != 400 || m["code"] != 108.0 {
		t.Errorf("after DELETE: %d %v, want the simulator's own answer", status, m)
	}

	for _, bad := range []string{`{"code":99}`, `{"code":5,"status":200}`, `{"code":5,"count":-1}`,
		`{"code":5,"colour":"red"}`, `{"code":"5"}`, `{"code":16,"geolocation":"eu2.api.concursolutions.com"}`,
		`{"code":5,"description":"two\nlines"}`, `not json`} {
		if code, body := f.admin(t, http.MethodPut, "/_sim/token-error", bad); code != 400 || !strings.Contains(body, `"error"`) {
			t.Errorf("PUT %s: %d %s, want 400 with an error", bad, code, body)
		}
	}
}
