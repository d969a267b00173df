package concur

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// New trusts what internal/config validated; it refuses only what it cannot build: an
// unset knob that has no safe zero, and a BaseURL it cannot take the origin of. Its error
// never echoes a secret.
func TestNewRefuses(t *testing.T) {
	t.Parallel()
	ok := Config{BaseURL: "https://us.api.concursolutions.com", TokenURL: "https://us.api.concursolutions.com/oauth2/v0/token",
		ClientID: "id", ClientSecret: "s3cr3t-value", RefreshToken: "rt-s3cr3t"}.withDefaults(time.Second)
	tests := []struct {
		name   string
		mutate func(*Config)
		fields []string // every field the error must name; none means valid
	}{
		{"valid", func(*Config) {}, nil},
		{"static token needs no refresh settings", func(c *Config) {
			c.AccessToken, c.TokenURL, c.ClientID, c.ClientSecret, c.RefreshToken = "tok-s3cr3t", "", "", "", ""
		}, nil},
		{"unset knobs", func(c *Config) { *c = Config{BaseURL: c.BaseURL, ClientSecret: "s3cr3t-value"} },
			[]string{"Timeout", "BreakerThreshold", "BreakerOpenInterval", "MaxAttempts", "MaxConcurrent"}},
		{"base with userinfo", func(c *Config) { c.BaseURL = "https://u:s3cr3t-value@h" }, []string{"BaseURL"}},
		{"base not http", func(c *Config) { c.BaseURL = "ftp://h" }, []string{"BaseURL"}},
		{"no base", func(c *Config) { c.BaseURL = "" }, []string{"BaseURL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := ok
			tt.mutate(&cfg)
			_, err := New(cfg)
			if len(tt.fields) == 0 {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("New accepted an unusable config")
			}
			for _, f := range tt.fields {
				if !strings.Contains(err.Error(), f) {
					t.Errorf("error %q does not name %s", err, f)
				}
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error %q echoes a secret", err)
			}
		})
	}
}

func TestListBatches(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		status   batch.ListStatus
		fixture  string
		wantPath string
	}{
		{"all namespaced", batch.ListAll, "testdata/list/namespaced.xml", apiPrefix + "v1.1/batchlist/"},
		{"open plain Batch-Url", batch.ListOpen, "testdata/list/plain.xml", apiPrefix + "v1.1/batchlist/OPEN"},
		{"closed empty", batch.ListClosed, "testdata/list/empty.xml", apiPrefix + "v1.1/batchlist/CLOSED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.set(func(f *fakeConcur) {
				f.api = func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Path != tt.wantPath || r.Method != http.MethodGet {
						t.Errorf("got %s %s, want GET %s", r.Method, r.URL.Path, tt.wantPath)
					}
					if r.Header.Get("Accept") != "application/xml" || r.Header.Get("User-Agent") != "ua-test" {
						t.Errorf("headers: Accept %q, User-Agent %q", r.Header.Get("Accept"), r.Header.Get("User-Agent"))
					}
					f.serveFile(w, tt.fixture)
				}
			})
			c, _ := newClient(t, f, func(c *Config) { c.UserAgent = "ua-test" })
			got, err := listOf(t.Context(), c, tt.status)
			if err != nil {
				t.Fatal(err)
			}
			body := strings.ReplaceAll(string(readFile(t, tt.fixture)), "{{host}}", f.srv.URL)
			want, err := decodeList(strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			assertEqual(t, want, got)
			if tt.fixture == "testdata/list/namespaced.xml" {
				assertEqual(t, wantNamespacedList(f.srv.URL), got)
			}
		})
	}
}

func TestListBatchesUnknownFilter(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t, newFake(t), nil)
	_, err := listOf(t.Context(), c, "OPEN/../x")
	wantCode(t, err, batch.CodeInternal)
}

// Close goes out as POST {Batch-URL}/close with the '$' literal, Content-Length: 0 and no
// chunked encoding, and translates the reference page's example exactly.
func TestCloseBatchWire(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.set(func(f *fakeConcur) {
		f.api = func(w http.ResponseWriter, r *http.Request) {
			want := "/api/expense/paymentbatch/v1.1/batch/pQ7v$sK2mLx9RtB4$pWcYe0nHa3Jd$xs/close"
			if r.RequestURI != want {
				t.Errorf("RequestURI = %q, want %q", r.RequestURI, want)
			}
			if r.Method != http.MethodPost || r.ContentLength != 0 || len(r.TransferEncoding) != 0 ||
				r.Header.Get("Content-Length") != "0" {
				t.Errorf("%s ContentLength=%d TransferEncoding=%v Content-Length=%q", r.Method,
					r.ContentLength, r.TransferEncoding, r.Header.Get("Content-Length"))
			}
			if r.Header.Get("Accept") != "application/xml" || r.Header.Get("User-Agent") != DefaultUserAgent {
				t.Errorf("Accept %q, User-Agent %q", r.Header.Get("Accept"), r.Header.Get("User-Agent"))
			}
			f.serveFile(w, "testdata/close/reference.xml")
		}
	})
	c, _ := newClient(t, f, nil)
	got, err := c.CloseBatch(t.Context(), "  "+batchURL(f.srv.URL)+"\n")
	if err != nil {
		t.Fatal(err)
	}
	assertEqual(t, batch.CloseResult{BatchStatus: "CLOSED", Status: "SUCCESS", JobQueueKey: "d$wIUEkl72LW299WTjTlskdy",
		FileURL: "http:// www.concursolutions.com/api/expense/paymentbatch/v1.1/batch/n$s4MtBKgvoJxAYcbggR7eD2jRU$sxYjePU/file"}, got)
	// The close happened; its File-Url is unusable, and OpenFile says so without sending anything.
	_, err = c.OpenFile(t.Context(), got.FileURL)
	wantCode(t, err, batch.CodeUpstreamBadResponse)
	if n := f.apiCalls.Load(); n != 1 {
		t.Errorf("API calls = %d, want 1", n)
	}
}

// An already-escaped Batch-URL is sent as given, not escaped twice.
func TestCloseBatchNoDoubleEscape(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.set(func(f *fakeConcur) {
		f.api = func(w http.ResponseWriter, r *http.Request) {
			if want := "/api/expense/paymentbatch/v1.1/batch/ab%24cd/close"; r.RequestURI != want {
				t.Errorf("RequestURI = %q, want %q", r.RequestURI, want)
			}
			f.fixtures(w, r)
		}
	})
	c, _ := newClient(t, f, nil)
	if _, err := c.CloseBatch(t.Context(), f.srv.URL+"/api/expense/paymentbatch/v1.1/batch/ab%24cd"); err != nil {
		t.Fatal(err)
	}
}

// A File-Url on a foreign host does not fail the close (a retry would regenerate the file).
func TestCloseBatchForeignFileURL(t *testing.T) {
	t.Parallel()
	f, evil := newFake(t), newRecorder(t)
	foreign := evil.srv.URL + "/api/expense/paymentbatch/v1.1/batch/x/file"
	f.set(func(f *fakeConcur) {
		f.api = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/xml")
			fmt.Fprintf(w, "<BatchStatus><BatchStatus>CLOSED</BatchStatus><File-Url>%s</File-Url></BatchStatus>", foreign)
		}
	})
	c, _ := newClient(t, f, nil)
	res, err := c.CloseBatch(t.Context(), batchURL(f.srv.URL))
	if err != nil || res.FileURL != foreign {
		t.Fatalf("CloseBatch = %+v, %v", res, err)
	}
	_, err = c.OpenFile(t.Context(), res.FileURL)
	wantCode(t, err, batch.CodeUpstreamHostRefused)
	if evil.calls.Load() != 0 {
		t.Errorf("the foreign host received %d requests", evil.calls.Load())
	}
}

func TestAcceptedContentTypes(t *testing.T) {
	t.Parallel()
	for _, ct := range []string{"application/xml", "text/xml; charset=utf-8", "application/vnd.concur+xml", "Application/XML;charset=\"utf-8\""} {
		t.Run(ct, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.set(func(f *fakeConcur) {
				f.api = func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", ct)
					fmt.Fprint(w, "<BatchStatus><Status>SUCCESS</Status></BatchStatus>")
				}
			})
			c, _ := newClient(t, f, nil)
			if res, err := c.CloseBatch(t.Context(), batchURL(f.srv.URL)); err != nil || res.Status != "SUCCESS" {
				t.Fatalf("CloseBatch = %+v, %v", res, err)
			}
		})
	}
}

// wantCode asserts err is a *batch.Error with code and returns it.
func wantCode(t *testing.T, err error, code batch.Code) *batch.Error {
	t.Helper()
	e, ok := errors.AsType[*batch.Error](err)
	if !ok {
		t.Fatalf("error = %v (%T), want *batch.Error with code %s", err, err, code)
	}
	if e.Code != code {
		t.Fatalf("code = %s, want %s (error: %v)", e.Code, code, err)
	}
	// Concur: after a time-out, wait 5 minutes before retrying. Every time-out says so.
	if code == batch.CodeUpstreamTimeout && e.RetryAfter != 5*time.Minute {
		t.Errorf("RetryAfter = %v, want 5m0s on a time-out", e.RetryAfter)
	}
	for _, secret := range []string{"at-", "rt-", "client-secret", "static-", "Bearer", "Authorization"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q contains %q", err, secret)
		}
	}
	return e
}

// call runs one operation against f, as the status table needs.
func call(ctx context.Context, c *Client, f *fakeConcur, op operation) error {
	switch op {
	case opList:
		_, err := listOf(ctx, c, batch.ListOpen)
		return err
	case opClose:
		_, err := c.CloseBatch(ctx, batchURL(f.srv.URL))
		return err
	default:
		file, err := c.OpenFile(ctx, f.srv.URL+"/api/expense/paymentbatch/v1.1/batch/J0b$Run/file")
		if err != nil {
			return err
		}
		defer file.Body.Close()
		_, err = io.Copy(io.Discard, file.Body)
		return err
	}
}
