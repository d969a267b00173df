package concur

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// errHostRefused is returned by the auth transport for a request to an untrusted origin.
var errHostRefused = errors.New("concur: refusing to send credentials to an untrusted origin")

// tokenKey carries the *token a request must be sent with, from do() to the auth transport.
type tokenKey struct{}

func withToken(ctx context.Context, t *token) context.Context {
	return context.WithValue(ctx, tokenKey{}, t)
}

// authTransport adds the Authorization header, and only for a trusted origin: Config.BaseURL's
// or the geolocation of the token being sent. It is the last line of the host guard.
type authTransport struct {
	base        http.RoundTripper
	scheme      string // "Bearer" or "OAuth"
	trustedBase string // canonical origin of Config.BaseURL
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, _ := req.Context().Value(tokenKey{}).(*token)
	if tok == nil || !tok.trusts(t.trustedBase, originOf(req.URL)) {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, errHostRefused
	}
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", t.scheme+" "+tok.access)
	return t.base.RoundTrip(r)
}

// idleConnsPerHost is how many idle keep-alive connections to each Concur host the
// default transport keeps: every one the concurrency cap lets run at once (the standard
// library keeps 2, so that under load each call beyond them opened, and in production
// TLS-handshook, a new connection; the load suite's floor proxy showed the difference).
const idleConnsPerHost = 64

// defaultTransport is a clone of http.DefaultTransport with bounded connection set-up and
// a keep-alive pool as large as the concurrency cap allows.
func defaultTransport(timeout time.Duration) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = idleConnsPerHost
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	t.DialContext = d.DialContext
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ResponseHeaderTimeout = timeout
	return t
}

func isHTTP(u *url.URL) bool {
	s := strings.ToLower(u.Scheme)
	return (s == "http" || s == "https") && u.Host != "" && u.Hostname() != ""
}

// originOf is u's scheme://host[:port], lower-cased, without the scheme's default port.
func originOf(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	switch {
	case port != "":
		host = net.JoinHostPort(host, port)
	case strings.Contains(host, ":"):
		host = "[" + host + "]"
	}
	return scheme + "://" + host
}

// parseOrigin validates an API base (Config.BaseURL or a token's geolocation): an absolute
// http(s) URL without user info or query. Its path is ignored. It returns the origin.
func parseOrigin(s string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return "", err
	}
	if !isHTTP(u) || u.User != nil || u.RawQuery != "" || u.ForceQuery {
		return "", errors.New("not an absolute http(s) URL without user info and query")
	}
	return originOf(u), nil
}

// parseConcurURL checks the shape of a Batch-URL or File-Url (already trimmed): parseable
// (else upstream_bad_response), absolute http(s), no user info, a clean path under
// /api/expense/paymentbatch/ (else upstream_host_refused). Trust of its origin is checked
// against the token in do(), before anything is sent.
func parseConcurURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, &batch.Error{Code: batch.CodeUpstreamBadResponse, Delivery: batch.NotSent, Detail: "Concur gave an empty URL"}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, &batch.Error{Code: batch.CodeUpstreamBadResponse, Delivery: batch.NotSent,
			Detail: "Concur gave a URL that cannot be parsed", Err: err}
	}
	p := u.Path
	if !isHTTP(u) || u.User != nil || !strings.HasPrefix(p, apiPrefix) || hasDotSegment(p) {
		return nil, hostRefused()
	}
	return u, nil
}

func hasDotSegment(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

func hostRefused() *batch.Error {
	return &batch.Error{Code: batch.CodeUpstreamHostRefused, Delivery: batch.NotSent,
		Detail: "Concur gave a URL outside the trusted Concur hosts; nothing was sent to it"}
}
