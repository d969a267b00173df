package concursim

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testClientID     = "client-id"
	testClientSecret = "client-secret"
	testRefresh      = "refresh-0"
)

// clock is a settable time source for token expiry.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// fixture is a simulator behind a real HTTP server.
type fixture struct {
	sim   *Sim
	srv   *httptest.Server
	clock *clock
}

// newFixture starts a simulator with test credentials; edit adjusts the options.
func newFixture(t *testing.T, edit func(*Options)) *fixture {
	t.Helper()
	c := &clock{t: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}
	opts := Options{ClientID: testClientID, ClientSecret: testClientSecret, RefreshToken: testRefresh, now: c.now}
	if edit != nil {
		edit(&opts)
	}
	sim, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { srv.Close(); sim.Close() })
	return &fixture{sim: sim, srv: srv, clock: c}
}

// tokenResponse is the token endpoint's JSON; numbers-or-strings stay raw.
type tokenResponse struct {
	AccessToken      string          `json:"access_token"`
	TokenType        string          `json:"token_type"`
	ExpiresIn        json.RawMessage `json:"expires_in"`
	Scope            string          `json:"scope"`
	RefreshToken     string          `json:"refresh_token"`
	RefreshExpiresIn json.RawMessage `json:"refresh_expires_in"`
	IDToken          *string         `json:"id_token"`
	Geolocation      string          `json:"geolocation"`
	Error            string          `json:"error"`
	ErrorDescription string          `json:"error_description"`
	Code             int             `json:"code"`
}

// refresh calls the token endpoint with the test client and the given refresh token.
func (f *fixture) refresh(t *testing.T, refreshToken string) (int, tokenResponse) {
	t.Helper()
	return f.tokenForm(t, url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {refreshToken},
		"client_id": {testClientID}, "client_secret": {testClientSecret},
	})
}

func (f *fixture) tokenForm(t *testing.T, form url.Values) (int, tokenResponse) {
	t.Helper()
	resp, err := http.PostForm(f.srv.URL+"/oauth2/v0/token", form)
	if err != nil {
		t.Fatalf("token: %v", err)
	}
	defer resp.Body.Close()
	var tr tokenResponse
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		t.Fatalf("token: decode: %v", err)
	}
	return resp.StatusCode, tr
}

// accessToken returns a fresh access token; with rotation on it spends the initial
// refresh token, so call it once per fixture.
func (f *fixture) accessToken(t *testing.T) string {
	t.Helper()
	code, tr := f.refresh(t, testRefresh)
	if code != http.StatusOK {
		t.Fatalf("token: status %d: %+v", code, tr)
	}
	return tr.AccessToken
}

// do sends a request with the given Authorization header ("" for none) and returns the
// response with its body read.
func (f *fixture) do(t *testing.T, method, path, auth string) (*http.Response, []byte) {
	t.Helper()
	u := path
	if !strings.HasPrefix(path, "http") {
		u = f.srv.URL + path
	}
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, path, err)
	}
	return resp, body
}

// xmlError is Concur's error body.
type xmlError struct {
	XMLName    xml.Name
	Message    string `xml:"Message"`
	ServerTime string `xml:"Server-Time"`
	ID         string `xml:"Id"`
}

// wantError checks status, content type and message of an XML error answer.
func wantError(t *testing.T, resp *http.Response, body []byte, status int, msg string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("status = %d, want %d; body %s", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != contentTypeXML {
		t.Errorf("Content-Type = %q, want %q", ct, contentTypeXML)
	}
	var e xmlError
	if err := xml.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	if e.XMLName.Local != "Error" {
		t.Errorf("root = %q, want Error", e.XMLName.Local)
	}
	if msg != "" && e.Message != msg {
		t.Errorf("Message = %q, want %q", e.Message, msg)
	}
	if _, err := time.Parse("2006-01-02T15:04:05", e.ServerTime); err != nil {
		t.Errorf("Server-Time %q: %v", e.ServerTime, err)
	}
	if len(e.ID) != 36 || e.ID != strings.ToUpper(e.ID) {
		t.Errorf("Id = %q, want an upper-case GUID", e.ID)
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	good := Options{ClientID: "a", ClientSecret: "b", RefreshToken: "c"}
	tests := []struct {
		name  string
		edit  func(*Options)
		wants []string // substrings of the error
	}{
		{"all credentials missing", func(o *Options) { *o = Options{} },
			[]string{"ClientID", "ClientSecret", "RefreshToken"}},
		{"bad url element", func(o *Options) { o.URLElement = "BatchURL" }, []string{"URLElement"}},
		{"duplicate id", func(o *Options) { o.Batches = append(Seed(), Seed()[0]) }, []string{"duplicate ID"}},
		{"bad total", func(o *Options) { o.Batches = []Batch{{ID: "x", Total: "12.345"}} }, []string{"Total"}},
		{"empty id", func(o *Options) { o.Batches = []Batch{{Total: "1.00"}} }, []string{"ID is empty"}},
		{"bad auth scheme", func(o *Options) { o.AuthScheme = "Basic" }, []string{"AuthScheme"}},
		{"bad refused status", func(o *Options) { o.RefusedStatus = 500 }, []string{"RefusedStatus"}},
		{"bad key", func(o *Options) { o.Batches = []Batch{{ID: "x", Total: "1.00", Key: "a/b"}} }, []string{"Key"}},
		{"duplicate key", func(o *Options) {
			o.Batches = []Batch{{ID: "x", Total: "1.00", Key: "k"}, {ID: "y", Total: "1.00", Key: "k"}}
		}, []string{"duplicate Key"}},
		{"duplicate file key", func(o *Options) {
			o.Batches = []Batch{{ID: "x", Total: "1.00", FileKey: "k"}, {ID: "y", Total: "1.00", FileKey: "k"}}
		}, []string{"duplicate Key or FileKey"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := good
			tt.edit(&o)
			_, err := New(o)
			if err == nil {
				t.Fatal("New succeeded, want an error")
			}
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if _, err := New(good); err != nil {
		t.Errorf("New(good) = %v", err)
	}
	var joined interface{ Unwrap() []error }
	if _, err := New(Options{}); !errors.As(err, &joined) || len(joined.Unwrap()) != 3 {
		t.Errorf("New(Options{}) = %v, want three joined errors", err)
	}
}

func TestUnknownPath(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	for _, p := range []string{"/nope", "/api/expense/paymentbatch/v1.1/nothing", "/oauth2/v0/token"} {
		resp, body := f.do(t, http.MethodGet, p, "")
		wantError(t, resp, body, http.StatusNotFound, "")
	}
}

func TestErrorNamespace(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		ns     bool
		wantNS string
	}{
		{"default has no namespace", false, ""},
		{"namespaced by option", true, nsPaymentBatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, func(o *Options) { o.ErrorNamespace = tt.ns })
			resp, body := f.do(t, http.MethodGet, "/nope", "")
			wantError(t, resp, body, http.StatusNotFound, "The requested resource was not found.")
			var e xmlError
			_ = xml.Unmarshal(body, &e)
			if e.XMLName.Space != tt.wantNS {
				t.Errorf("namespace = %q, want %q", e.XMLName.Space, tt.wantNS)
			}
		})
	}
}
