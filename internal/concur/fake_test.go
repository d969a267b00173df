package concur

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const tokenPath = "/oauth2/v0/token"

// fakeConcur is a fake Concur: an OAuth2 token endpoint that rotates refresh tokens and
// refuses reused ones (400 invalid_grant, code 108), and the Payment Batch API behind
// Authorization with exactly one scheme (Bearer unless the test sets scheme), serving
// testdata fixtures unless a test installs its own handler.
type fakeConcur struct {
	t   *testing.T
	srv *httptest.Server

	tokenCalls atomic.Int64
	apiCalls   atomic.Int64

	mu            sync.Mutex
	expiresIn     any    // JSON value of expires_in: "3600" or 3600
	refreshExpiry any    // JSON value of refresh_expires_in; nil: not sent
	geolocation   string // returned with each token; "" for none
	scheme        string // the only Authorization scheme the API accepts: "Bearer" or "OAuth"
	refuseStatus  int    // the API's status for a missing or refused token: 403 or 401
	rotate        bool   // issue a new refresh token on every refresh
	tokenDelay    time.Duration
	tokenFail     http.HandlerFunc     // overrides the token endpoint when set
	mangle        func(map[string]any) // edits a successful token answer (after redeeming) when set
	api           http.HandlerFunc     // overrides the API (after auth) when set
	refresh       map[string]bool      // refresh tokens that may be redeemed
	access        map[string]bool      // access tokens Concur accepts
	redeemed      []string             // refresh tokens redeemed, in order
	presented     []string             // every refresh token presented, redeemed or not, in order
	n             int
}

func newFake(t *testing.T) *fakeConcur {
	t.Helper()
	f := &fakeConcur{
		t:             t,
		expiresIn:     "3600",
		refreshExpiry: 1893456000,
		scheme:        "Bearer",
		refuseStatus:  http.StatusForbidden,
		rotate:        true,
		refresh:       map[string]bool{"rt-0": true},
		access:        map[string]bool{},
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// set changes the fake's behaviour under its lock.
func (f *fakeConcur) set(fn func(f *fakeConcur)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// revokeAccess makes Concur refuse every access token issued so far (server-side expiry).
func (f *fakeConcur) revokeAccess() { f.set(func(f *fakeConcur) { clear(f.access) }) }

func (f *fakeConcur) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == tokenPath:
		f.tokenCalls.Add(1)
		f.serveToken(w, r)
	case strings.HasPrefix(r.URL.Path, apiPrefix):
		f.apiCalls.Add(1)
		f.serveAPI(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeConcur) serveToken(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	delay, fail := f.tokenDelay, f.tokenFail
	f.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if fail != nil {
		fail(w, r)
		return
	}
	if err := r.ParseForm(); err != nil || r.Method != http.MethodPost {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_request"})
		return
	}
	if r.PostForm.Get("client_id") != "client-id" || r.PostForm.Get("client_secret") != "client-secret" {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid_client", "code": 101})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	rt := r.PostForm.Get("refresh_token")
	f.presented = append(f.presented, rt)
	if r.PostForm.Get("grant_type") != "refresh_token" || !f.refresh[rt] {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_grant",
			"error_description": "Bad or expired refresh token", "code": 108})
		return
	}
	f.redeemed = append(f.redeemed, rt)
	f.n++
	newRT := rt
	if f.rotate {
		delete(f.refresh, rt)
		newRT = fmt.Sprintf("rt-%d", f.n)
		f.refresh[newRT] = true
	}
	at := fmt.Sprintf("at-%d", f.n)
	f.access[at] = true
	ans := map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": f.expiresIn,
		"refresh_token": newRT, "scope": "EXPRPT"}
	if f.refreshExpiry != nil {
		ans["refresh_expires_in"] = f.refreshExpiry
	}
	if f.geolocation != "" {
		ans["geolocation"] = f.geolocation
	}
	if f.mangle != nil {
		f.mangle(ans)
	}
	writeJSON(w, http.StatusOK, ans)
}

func (f *fakeConcur) serveAPI(w http.ResponseWriter, r *http.Request) {
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	f.mu.Lock()
	valid, api, refuse := scheme == f.scheme && f.access[tok], f.api, f.refuseStatus
	f.mu.Unlock()
	if !valid {
		writeXMLError(w, refuse, "Invalid or expired token")
		return
	}
	if api != nil {
		api(w, r)
		return
	}
	f.fixtures(w, r)
}

// fixtures serves testdata, with {{host}} replaced by the fake's own URL.
func (f *fakeConcur) fixtures(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(r.URL.Path, apiPrefix)
	switch {
	case r.Method == http.MethodGet && strings.HasPrefix(p, "v1.1/batchlist/"):
		f.serveFile(w, "testdata/list/namespaced.xml")
	case r.Method == http.MethodPost && strings.HasSuffix(p, "/close"):
		w.Header().Set("Content-Type", "application/xml; charset=utf-8")
		fmt.Fprintf(w, `<BatchStatus xmlns="http://www.concursolutions.com/api/expense/paymentbatch/2011/11">`+
			`<BatchStatus>CLOSED</BatchStatus><File-Url>%s/api/expense/paymentbatch/v1.1/batch/J0b$Run/file</File-Url>`+
			`<Status>SUCCESS</Status></BatchStatus>`, f.srv.URL)
	case r.Method == http.MethodGet && strings.HasSuffix(p, "/file"):
		w.Header().Set("Content-Type", "text/csv")
		fmt.Fprint(w, "a,b\n1,2\n")
	default:
		writeXMLError(w, http.StatusNotFound, "Not found")
	}
}

func (f *fakeConcur) serveFile(w http.ResponseWriter, name string) {
	b, err := os.ReadFile(name)
	if err != nil {
		f.t.Errorf("fixture: %v", err)
		http.Error(w, "no fixture", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	w.Write([]byte(strings.ReplaceAll(string(b), "{{host}}", f.srv.URL)))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeXMLError answers like Concur does on an error.
func writeXMLError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<Error><Message>%s</Message><Server-Time>2024-03-05T14:02:11</Server-Time>"+
		"<Id>8A7C3F0E-5B21-4D9A-A1E2-7F6B5C4D3E21</Id></Error>", msg)
}

// recorder is a second server that must never be contacted: it counts what reaches it.
type recorder struct {
	srv   *httptest.Server
	calls atomic.Int64
	auths atomic.Int64 // requests that carried an Authorization header
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	rec := &recorder{}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.calls.Add(1)
		if r.Header.Get("Authorization") != "" {
			rec.auths.Add(1)
		}
		w.Header().Set("Content-Type", "application/xml")
		fmt.Fprint(w, "<BatchStatus><Status>SUCCESS</Status></BatchStatus>")
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

// testClock is a clock that tests can move forward, safely across goroutines.
type testClock struct{ offset atomic.Int64 }

func (c *testClock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *testClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// redeemedTokens returns the refresh tokens the fake redeemed, in order.
func (f *fakeConcur) redeemedTokens() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.redeemed...)
}

// newClient builds a Client against f in refresh-token mode; mutate adjusts the config.
func newClient(t *testing.T, f *fakeConcur, mutate func(*Config)) (*Client, *testClock) {
	t.Helper()
	cfg := Config{
		BaseURL:      f.srv.URL,
		TokenURL:     f.srv.URL + tokenPath,
		ClientID:     "client-id",
		ClientSecret: "client-secret",
		RefreshToken: "rt-0",
	}.withDefaults(5 * time.Second)
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	clock := &testClock{}
	c.tokens.now = clock.now
	c.tokens.retryMin, c.tokens.retryMax = 5*time.Millisecond, 50*time.Millisecond
	t.Cleanup(func() { // ends the background commits of an unsaved grant
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		c.Drain(ctx)
	})
	return c, clock
}

// withDefaults sets what internal/config sets for the gateway: the Default constants,
// with timeout as Config.Timeout.
func (c Config) withDefaults(timeout time.Duration) Config {
	c.Timeout = timeout
	c.BreakerThreshold, c.BreakerOpenInterval = DefaultBreakerThreshold, DefaultBreakerOpenInterval
	c.MaxAttempts, c.MaxConcurrent = DefaultMaxAttempts, DefaultMaxConcurrent
	return c
}

func batchURL(host string) string {
	return host + "/api/expense/paymentbatch/v1.1/batch/pQ7v$sK2mLx9RtB4$pWcYe0nHa3Jd$xs"
}
