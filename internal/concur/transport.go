package concur

import (
	"context"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

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

// DefaultTransport is the transport a Client uses when Config.Transport is nil: a clone of
// http.DefaultTransport with a 10s dial and TLS handshake time-out and a response header
// time-out of timeout, Config.Timeout (zero would leave the headers without one, as in
// net/http). Wrap it (tracing) and pass it as Config.Transport to keep them. It keeps 64
// idle connections per host: with the standard library's 2, every call beyond them under
// load opened (and TLS-handshook) a new one.
func DefaultTransport(timeout time.Duration) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
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

// parseConcurURL checks a (trimmed) Batch-URL or File-Url: parseable, else bad response;
// absolute http(s), no user info, a clean path under apiPrefix, else host refused. Its
// origin is checked against the token in send, before anything is sent.
func parseConcurURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, &batch.Error{Code: batch.CodeUpstreamBadResponse, Delivery: batch.NotSent, Detail: "Concur gave an empty URL"}
	}
	u, err := url.Parse(raw)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			ue.URL = RedactURL(ue.URL) // its text reaches the log
		}
		return nil, &batch.Error{Code: batch.CodeUpstreamBadResponse, Delivery: batch.NotSent,
			Detail: "Concur gave a URL that cannot be parsed", Err: err}
	}
	p := u.Path
	dotSegment := func(seg string) bool { return seg == "." || seg == ".." }
	if !isHTTP(u) || u.User != nil || !strings.HasPrefix(p, apiPrefix) || slices.ContainsFunc(strings.Split(p, "/"), dotSegment) {
		return nil, hostRefused()
	}
	return u, nil
}

// isXML accepts application/xml, text/xml and */*+xml, with parameters.
func isXML(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil && !errors.Is(err, mime.ErrInvalidMediaParameter) {
		return false
	}
	return mt == "application/xml" || mt == "text/xml" ||
		(strings.HasSuffix(mt, "+xml") && strings.Contains(mt, "/"))
}

// capReader reads at most n bytes and fails with errTooLarge past them: never a silent cut.
type capReader struct {
	r   io.Reader
	n   int64 // bytes still allowed
	err error // the first read error other than io.EOF
}

func (c *capReader) Read(p []byte) (int, error) {
	if int64(len(p)) > c.n+1 {
		p = p[:c.n+1]
	}
	n, err := c.r.Read(p)
	if int64(n) > c.n {
		n = int(c.n)
		c.n = 0
		err = errTooLarge
	} else {
		c.n -= int64(n)
	}
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}

// readAll reads r through a limit of n bytes.
func readAll(r io.Reader, n int64) ([]byte, error) {
	return io.ReadAll(&capReader{r: r, n: n})
}

// Operations, as an Observer and Operation name them.
const (
	OpToken = "token" // the OAuth2 token endpoint
	OpList  = "list"  // a batch list
	OpClose = "close" // a close, v1.1 or v1.2
	OpFile  = "file"  // a payment file download
)

// Outcomes an Observer is told besides "ok" and the error codes of internal/batch.
const (
	OutcomeOK          = "ok"
	OutcomeCircuitOpen = "circuit_open" // refused by an open or half-open breaker: nothing was sent
	OutcomeNoTurn      = "no_turn"      // no slot or rate turn within the time-out: nothing was sent
	OutcomeCallerGone  = "caller_gone"  // the caller's request ended first
)

// Observer is told what the Client does, for metrics. Its methods run on the calling
// goroutine: they must be quick and safe for concurrent use, and must not call the Client.
type Observer interface {
	// ConcurRequest is told of every try of a call to Concur, the token endpoint's
	// included. operation is OpToken, OpList, OpClose or OpFile; status is the HTTP status
	// Concur answered this request with (200 on success), 0 when no answer could be read
	// or the try failed before or beside it (breaker, slot, token); outcome is
	// OutcomeOK, an Outcome* constant, or the *batch.Error code the try failed with. took
	// is the whole try: its wait for a slot, its token and Concur's answer (for a file,
	// until the headers).
	ConcurRequest(operation string, status int, outcome string, took time.Duration)
	// TokenRefreshed is told of the end of every renewal of the access token (one per
	// refresh, however many calls waited for it): ok is false when no new token came of
	// it, whatever the reason (Concur, the credential store, the breaker).
	TokenRefreshed(ok bool)
}

// observeTry tells o, if any, of one try of op that began at start and ended with err.
// fromOp is false when the failure came before or beside the operation's own request (the
// breaker, a slot, the token), whose status is then not the operation's.
func observeTry(o Observer, caller context.Context, op string, start time.Time, fromOp bool, err error) {
	if o == nil {
		return
	}
	status := 0
	if e, ok := errors.AsType[*batch.Error](err); fromOp && ok && e.Upstream != nil {
		status = e.Upstream.Status
	} else if fromOp && err == nil {
		status = http.StatusOK
	}
	outcome := string(batch.ErrorCode(err))
	switch {
	case err == nil:
		outcome = OutcomeOK
	case errors.Is(err, batch.ErrCircuitOpen):
		outcome = OutcomeCircuitOpen
	case errors.Is(err, errQueueTimeout):
		outcome = OutcomeNoTurn
	case caller.Err() != nil:
		outcome = OutcomeCallerGone
	}
	o.ConcurRequest(op, status, outcome, time.Since(start))
}

// Operation names the Concur call req is: OpList, OpClose or OpFile for the Payment Batch
// API, OpToken for anything else (the token endpoint). For span names: it reads only the
// path, never the query or the host.
func Operation(req *http.Request) string {
	p := req.URL.Path
	switch {
	case !strings.HasPrefix(p, apiPrefix):
		return OpToken
	case strings.HasSuffix(p, "/close"):
		return OpClose
	case strings.HasSuffix(p, "/file"):
		return OpFile
	}
	return OpList
}
