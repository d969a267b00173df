package concur

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

func TestHostGuard(t *testing.T) {
	t.Parallel()
	const p = "/api/expense/paymentbatch/v1.1/batch/pQ7v$sK2m"
	tests := []struct {
		name string
		url  func(good, evil string) string
		code batch.Code
	}{
		{"foreign host", func(_, evil string) string { return evil + p }, batch.CodeUpstreamHostRefused},
		{"same host other port", func(good, _ string) string {
			return strings.Replace(good, "127.0.0.1:", "127.0.0.1:1", 1) + p
		}, batch.CodeUpstreamHostRefused},
		{"userinfo", func(good, _ string) string {
			return strings.Replace(good, "http://", "http://user:pw@", 1) + p
		}, batch.CodeUpstreamHostRefused},
		{"path outside the API", func(good, _ string) string { return good + "/oauth2/v0/token" }, batch.CodeUpstreamHostRefused},
		{"dot segments", func(good, _ string) string {
			return good + "/api/expense/paymentbatch/../../oauth2/v0/token"
		}, batch.CodeUpstreamHostRefused},
		{"encoded dot segments", func(good, _ string) string {
			return good + "/api/expense/paymentbatch/%2e%2e/x"
		}, batch.CodeUpstreamHostRefused},
		{"other scheme", func(good, _ string) string {
			return strings.Replace(good, "http://", "ftp://", 1) + p
		}, batch.CodeUpstreamHostRefused},
		{"relative", func(string, string) string { return p }, batch.CodeUpstreamHostRefused},
		{"unparseable", func(string, string) string { return "http:// www.concursolutions.com" + p }, batch.CodeUpstreamBadResponse},
		{"empty", func(string, string) string { return "  " }, batch.CodeUpstreamBadResponse},
		{"query on Batch-URL", func(good, _ string) string { return good + p + "?x=1" }, batch.CodeUpstreamBadResponse},
	}
	for _, tt := range tests {
		for _, op := range []operation{opClose, opFile} {
			t.Run(tt.name+"/"+op.String(), func(t *testing.T) {
				t.Parallel()
				f, evil := newFake(t), newRecorder(t)
				c, _ := newClient(t, f, nil)
				u := tt.url(f.srv.URL, evil.srv.URL)
				var err error
				if op == opClose {
					_, err = c.CloseBatch(t.Context(), u)
				} else {
					var file *batch.File
					if strings.TrimSpace(u) != "" {
						u += "/file"
					}
					if file, err = c.OpenFile(t.Context(), u); err == nil {
						file.Body.Close()
					}
				}
				if tt.name == "query on Batch-URL" && op == opFile {
					return // a File-Url may carry a query
				}
				wantCode(t, err, tt.code)
				if evil.calls.Load() != 0 || f.apiCalls.Load() != 0 {
					t.Errorf("requests sent: foreign %d, Concur %d", evil.calls.Load(), f.apiCalls.Load())
				}
			})
		}
	}
}

// Host case and the default port do not make a trusted origin foreign.
func TestHostGuardCanonicalOrigin(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	c, _ := newClient(t, f, nil)
	u := strings.Replace(batchURL(f.srv.URL), "http://127.0.0.1", "HTTP://127.0.0.1", 1)
	if _, err := c.CloseBatch(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	if got, want := originOf(mustURL(t, "HTTPS://Us.Api.Concursolutions.com:443/x")), "https://us.api.concursolutions.com"; got != want {
		t.Errorf("originOf = %q, want %q", got, want)
	}
}

// Defence in depth: the auth transport itself refuses an untrusted origin.
func TestAuthTransportRefusesForeignOrigin(t *testing.T) {
	t.Parallel()
	evil := newRecorder(t)
	rt := &authTransport{base: http.DefaultTransport, scheme: "Bearer", trustedBase: "https://us.api.concursolutions.com"}
	for _, ctx := range []context.Context{
		withToken(t.Context(), &token{access: "at-secret"}),
		withToken(t.Context(), &token{access: "at-secret", apiBase: "https://emea.api.concursolutions.com"}),
		t.Context(), // no token at all
	} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, evil.srv.URL+apiPrefix, http.NoBody)
		resp, err := rt.RoundTrip(req)
		if !errors.Is(err, errHostRefused) || resp != nil {
			t.Errorf("RoundTrip = %v, %v; want errHostRefused", resp, err)
		}
	}
	if evil.calls.Load() != 0 {
		t.Errorf("foreign host received %d requests", evil.calls.Load())
	}
}

// A redirect is not followed (Go would carry no Authorization across hosts, but we do not
// even go): a 3xx is a bad answer.
func TestRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	f, evil := newFake(t), newRecorder(t)
	f.set(func(f *fakeConcur) {
		f.api = func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, evil.srv.URL+r.URL.Path, http.StatusTemporaryRedirect)
		}
	})
	c, _ := newClient(t, f, nil)
	for _, op := range []operation{opList, opClose, opFile} {
		e := wantCode(t, call(t.Context(), c, f, op), batch.CodeUpstreamBadResponse)
		if e.Upstream == nil || e.Upstream.Status != http.StatusTemporaryRedirect {
			t.Errorf("%s: Upstream = %+v", op, e.Upstream)
		}
	}
	if evil.calls.Load() != 0 || evil.auths.Load() != 0 {
		t.Errorf("redirect target received %d requests", evil.calls.Load())
	}
}

func TestTimeoutAndCancel(t *testing.T) {
	t.Parallel()
	slow := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
	}
	tests := []struct {
		name     string
		cancel   time.Duration // cancel the caller's ctx after this; 0: never
		code     batch.Code
		canceled bool
	}{
		{name: "our time-out", code: batch.CodeUpstreamTimeout},
		{name: "caller cancels", cancel: 30 * time.Millisecond, code: batch.CodeUpstreamTimeout, canceled: true},
	}
	for _, tt := range tests {
		for _, op := range []operation{opList, opClose, opFile} {
			t.Run(tt.name+"/"+op.String(), func(t *testing.T) {
				t.Parallel()
				f := newFake(t)
				f.set(func(f *fakeConcur) { f.api = slow })
				timeout := 100 * time.Millisecond
				if tt.cancel != 0 {
					timeout = time.Second
				}
				c, _ := newClient(t, f, func(c *Config) { c.Timeout = timeout })
				c.tokens.get(t.Context()) // take the token out of the picture
				ctx := t.Context()
				if tt.cancel != 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithCancel(ctx)
					time.AfterFunc(tt.cancel, cancel)
				}
				start := time.Now()
				err := call(ctx, c, f, op)
				wantCode(t, err, tt.code)
				if got := errors.Is(err, context.Canceled); got != tt.canceled {
					t.Errorf("errors.Is(err, context.Canceled) = %v, want %v (%v)", got, tt.canceled, err)
				}
				if d := time.Since(start); d > time.Second {
					t.Errorf("took %v", d)
				}
			})
		}
	}
}

func TestUnreachable(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	c, _ := newClient(t, f, func(c *Config) { c.BaseURL = closedURL(t) })
	wantCode(t, call(t.Context(), c, f, opList), batch.CodeUpstreamUnreachable)
}

// The batch list is read as a stream through its own cap; past it the answer is refused.
func TestListOverLimit(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	body := batchListXML(1000, f.srv.URL)
	f.set(func(f *fakeConcur) {
		f.api = func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/xml")
			w.Write(body)
		}
	})
	c, _ := newClient(t, f, nil)
	c.listLimit = int64(len(body))
	if got, err := listOf(t.Context(), c, batch.ListAll); err != nil || len(got) != 1000 {
		t.Fatalf("at the limit: %d, %v", len(got), err)
	}
	c.listLimit = int64(len(body)) - 1
	_, err := listOf(t.Context(), c, batch.ListAll)
	wantCode(t, err, batch.CodeUpstreamBadResponse)
}

func closedURL(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	return srv.URL
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
