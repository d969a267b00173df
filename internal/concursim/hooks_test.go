package concursim

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// AuthScheme narrows the API to one scheme: the other is a malformed header (401).
func TestOptionAuthScheme(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ accepted, refused string }{{"Bearer", "OAuth"}, {"OAuth", "Bearer"}} {
		t.Run(tt.accepted, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, func(o *Options) { o.AuthScheme = tt.accepted })
			tok := f.accessToken(t)
			if resp, body := f.do(t, http.MethodGet, listPath, tt.accepted+" "+tok); resp.StatusCode != http.StatusOK {
				t.Errorf("%s: %d %s", tt.accepted, resp.StatusCode, body)
			}
			resp, body := f.do(t, http.MethodGet, listPath, tt.refused+" "+tok)
			wantError(t, resp, body, http.StatusUnauthorized, "")
		})
	}
}

// RefusedStatus is the answer to a live-looking header with a dead token; a missing header
// stays 401.
func TestOptionRefusedStatus(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		f := newFixture(t, func(o *Options) { o.RefusedStatus = status })
		auth := "Bearer " + f.accessToken(t)
		f.sim.ExpireAccessTokens()
		resp, body := f.do(t, http.MethodGet, listPath, auth)
		wantError(t, resp, body, status, "")
		resp, body = f.do(t, http.MethodGet, listPath, "")
		wantError(t, resp, body, http.StatusUnauthorized, "")
	}
}

// CountedTokens names tokens in issue order; NoGeolocation leaves the member out.
func TestOptionCountedTokensNoGeolocation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *Options) { o.CountedTokens, o.NoGeolocation = true, true })
	code, first := f.refresh(t, testRefresh)
	if code != http.StatusOK || first.AccessToken != "at-1" || first.RefreshToken != "rt-1" || first.Geolocation != "" {
		t.Fatalf("first: %d %+v", code, first)
	}
	code, second := f.refresh(t, "rt-1")
	if code != http.StatusOK || second.AccessToken != "at-2" || second.RefreshToken != "rt-2" {
		t.Fatalf("second: %d %+v", code, second)
	}
	if code, _ := f.refresh(t, "rt-1"); code != http.StatusBadRequest {
		t.Errorf("spent rt-1: %d, want 400", code)
	}
	st := f.sim.Stats()
	if diff := cmp.Diff([]string{testRefresh, "rt-1", "rt-1"}, st.PresentedTokens); diff != "" {
		t.Errorf("presented (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{testRefresh, "rt-1"}, st.RedeemedTokens); diff != "" {
		t.Errorf("redeemed (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"rt-2"}, f.sim.RefreshTokens()); diff != "" {
		t.Errorf("live refresh tokens (-want +got):\n%s", diff)
	}
}

// A batch's Key is its Batch-URL's; its FileKey serves its file before any close.
func TestBatchKeyAndFileKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *Options) {
		o.Batches = []Batch{{ID: "b-1", Name: "B", Total: "1.00", Currency: "USD", Type: TypeEmployee,
			Count: 1, Key: "pQ7v$K", FileKey: "J0b$Run"}}
	})
	auth := "Bearer " + f.accessToken(t)
	if u := f.batchURL(t, auth, "b-1"); u != f.srv.URL+apiPrefix+"v1.1/batch/pQ7v$K" {
		t.Errorf("Batch-URL = %s", u)
	}
	resp, body := f.do(t, http.MethodGet, apiPrefix+"v1.1/batch/J0b$Run/file", auth)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/csv" || len(body) == 0 {
		t.Errorf("file: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}

// Added tokens work; revoked refresh tokens do not.
func TestAddAndRevokeTokens(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.sim.AddAccessToken("static-1")
	f.sim.AddAccessToken("") // ignored
	if resp, body := f.do(t, http.MethodGet, listPath, "OAuth static-1"); resp.StatusCode != http.StatusOK {
		t.Errorf("static token: %d %s", resp.StatusCode, body)
	}
	f.sim.AddRefreshToken("rt-fresh")
	f.sim.AddRefreshToken("")
	if diff := cmp.Diff([]string{testRefresh, "rt-fresh"}, f.sim.RefreshTokens()); diff != "" {
		t.Errorf("live refresh tokens (-want +got):\n%s", diff)
	}
	if code, _ := f.refresh(t, "rt-fresh"); code != http.StatusOK {
		t.Errorf("added refresh token: %d", code)
	}
	f.sim.RevokeRefreshTokens()
	if code, tr := f.refresh(t, testRefresh); code != http.StatusBadRequest || tr.Code != 108 {
		t.Errorf("after revocation: %d %+v, want 400 code 108", code, tr)
	}
	if got := f.sim.RefreshTokens(); len(got) != 0 {
		t.Errorf("live refresh tokens %v after revocation", got)
	}
}

// EditTokenAnswers edits what is sent, after the redemption; nil restores the answer.
func TestEditTokenAnswers(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *Options) { o.CountedTokens = true })
	f.sim.EditTokenAnswers(func(a map[string]any) {
		delete(a, "access_token")
		a["expires_in"] = 60
	})
	code, tr := f.refresh(t, testRefresh)
	if code != http.StatusOK || tr.AccessToken != "" || string(tr.ExpiresIn) != "60" || tr.RefreshToken != "rt-1" {
		t.Errorf("edited: %d %+v", code, tr)
	}
	f.sim.EditTokenAnswers(nil)
	if code, tr := f.refresh(t, "rt-1"); code != http.StatusOK || tr.AccessToken != "at-2" {
		t.Errorf("restored: %d %+v", code, tr)
	}
}

// InterceptAPI sees authorised requests only, may answer them or pass them on; every
// request is counted per operation, faulted and refused ones too.
func TestInterceptAPIAndRequests(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	auth := "Bearer " + f.accessToken(t)
	var seen []string
	f.sim.InterceptAPI(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen = append(seen, r.Method+" "+r.URL.Path)
			if strings.HasSuffix(r.URL.Path, "/close") {
				w.Header().Set("Content-Type", "application/xml")
				w.Write([]byte("<BatchStatus><Status>MINE</Status></BatchStatus>"))
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	u := f.batchURL(t, auth, SeedOpenUSD)
	req, _ := http.NewRequest(http.MethodPost, u+"/close", http.NoBody)
	req.Header.Set("Authorization", auth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := string(body); !strings.Contains(got, "MINE") {
		t.Errorf("close answer %q, want the interceptor's", got)
	}
	f.do(t, http.MethodGet, listPath, "") // refused: not seen
	f.sim.SetFault(Fault{Op: "list", Mode: "empty", Count: 1})
	f.do(t, http.MethodGet, listPath, auth) // faulted: not seen
	f.sim.InterceptAPI(nil)
	f.do(t, http.MethodGet, listPath, auth) // not seen: removed
	want := []string{"GET " + listPath, "POST " + strings.TrimPrefix(u, f.srv.URL) + "/close"}
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("intercepted (-want +got):\n%s", diff)
	}
	st := f.sim.Stats()
	if diff := cmp.Diff(map[string]int{"token": 1, "list": 4, "close": 1}, st.Requests); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	if st.Closes[SeedOpenUSD] != 0 {
		t.Errorf("the intercepted close closed the batch")
	}
}
