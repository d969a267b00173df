// Package concur is the gateway's client for SAP Concur's legacy Payment Batch API. It owns
// the transport (time-outs, host guard, no redirects), the credentials (OAuth2 refresh with
// rotation, single-flight, shared by replicas through a CredentialStore) and the XML.
//
// Read it in this order: client.go (the public methods), do.go (the one do and its retry
// loop), classify.go (every failure), token.go and refresh.go (credentials), resilience.go
// (breakers, limits, retries), xml.go, transport.go (Authorization and the host guard).
//
// Failures. Every failure is a *batch.Error: a code, a Retry-After, and how far the call
// got (its Delivery). A close that may have acted must never be reported as one that did
// not: closing a closed batch regenerates its payment file. So only what proves that Concur
// did not act says so:
//
//	failure                                                         Delivery
//	no token (fetch or renewal failed), breaker open, no slot or
//	rate turn, untrusted host or bad URL, request not buildable,
//	the caller gone before sending, dial or DNS failure              NotSent
//	401/403 answered, then the renewal failed (the retry never left)  NotSent
//	4xx (400, 401, 403, 404, 409, 429, ...)                          Answered
//	503 (maintenance, or a proxy with no Concur behind it)            Answered
//	500 to a close whose Message is one of Concur's business
//	answers ("does not contain any reports", "could not be closed")  Answered
//	any other 5xx: 500 empty, HTML or with another message, 502,
//	504 (a proxy may have timed out while Concur closed the batch)   MaybeDelivered
//	1xx, 2xx other than 200, 3xx (no redirect is followed)            MaybeDelivered
//	time-out or connection failure once connected, or with a
//	transport that does not report its connections                    MaybeDelivered
//	a 200 whose body could not be read or decoded                     MaybeDelivered
//	anything else                                                     MaybeDelivered
//
// The caller's context ending after Concur answered keeps the answer's Delivery. A call
// tried more than once reports the strongest Delivery of its tries.
//
// Breakers. BreakerAPI guards list, close and file calls; BreakerToken the token endpoint,
// so that a dead token endpoint does not hide a healthy API (a refresh is single-flight and
// detached from its callers: its failures count once per request sent). An API call is
// admitted only once it holds its slot and its rate turn and before it asks for a token:
// a call that queued while the breaker opened is refused, not sent; an open breaker
// triggers no refresh; a half-open breaker's probe is the one request it admitted. After
// Config.BreakerThreshold consecutive failures (verdictOf) a breaker refuses calls for
// Config.BreakerOpenInterval with upstream_unavailable, batch.ErrCircuitOpen and a Retry-After of
// the time left, then lets one probe through.
//
// Retries. Only the batch list and a file download before its body are tried again (see
// retryPolicy.next); never a close, never after a failure to get a token. Tries stop at
// Config.MaxAttempts, Config.RetryBudget and the caller's end.
//
// Limits. At most Config.MaxConcurrent calls in flight per Client (a token refresh runs in
// its caller's slot) and, with Config.RateLimit, a paced request rate. A call that gets no
// turn within Timeout fails with upstream_unavailable, unsent and not counted by the breaker.
//
// Of our packages it imports only internal/batch, whose Upstream it implements and whose
// errors it returns (internal/imports_test.go holds the rule).
package concur

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// Defaults of the knobs that have no setting of the gateway, which New applies when they
// are zero. Those internal/config sets have their defaults there, and nowhere else.
const (
	DefaultUserAgent      = "payment-batch-gateway"
	DefaultRetryBaseDelay = 250 * time.Millisecond
	DefaultRetryMaxDelay  = 10 * time.Second
)

// apiPrefix is where every Payment Batch resource lives; Batch-URLs and File-Urls must be under it.
const apiPrefix = "/api/expense/paymentbatch/"

// Config configures a Client. internal/config validates and defaults BaseURL to RateBurst
// (the gateway's settings); New uses them as given and refuses only one unset that cannot
// work: Timeout, AuthScheme, BreakerThreshold, BreakerOpenInterval, MaxAttempts,
// MaxConcurrent, and RateBurst under a RateLimit. The fields after RateBurst have no
// setting: New defaults them when zero.
type Config struct {
	// BaseURL is the API origin when the token carries no geolocation, e.g.
	// https://us2.api.concursolutions.com. When it is https, an http geolocation is refused.
	BaseURL string
	// TokenURL, ClientID, ClientSecret and RefreshToken are the OAuth2 refresh-token grant,
	// unused with AccessToken. RefreshToken seeds it: redeemed when Credentials holds no
	// chain started from it.
	TokenURL, ClientID, ClientSecret, RefreshToken string
	AccessToken                                    string        // static token (development): the token endpoint is never called
	AuthScheme                                     string        // "Bearer" or "OAuth"
	Timeout                                        time.Duration // per Concur call; for a file download, per read

	BreakerThreshold    int           // consecutive failures (verdictOf) that open a breaker
	BreakerOpenInterval time.Duration // how long an open breaker refuses calls before one probe
	MaxAttempts         int           // tries of a list, or of a download before its body; 1: none again
	MaxConcurrent       int           // calls in flight from this Client; a call waits for a slot at most Timeout
	RateLimit           float64       // when positive, the requests per second sent to Concur's API
	RateBurst           int           // requests that may go at once under RateLimit

	RetryBudget    time.Duration     // bounds a retried call as a whole, waits included; default 2*Timeout
	RetryBaseDelay time.Duration     // upper bound of the first back-off (full jitter, doubling); default DefaultRetryBaseDelay
	RetryMaxDelay  time.Duration     // the longest wait between tries (a longer Retry-After fails at once); default DefaultRetryMaxDelay
	UserAgent      string            // default DefaultUserAgent
	Transport      http.RoundTripper // the base transport; nil means DefaultTransport(Timeout)
	// Credentials keeps the grant across restarts and replicas and serialises refreshes,
	// so that exactly one replica redeems a refresh token. nil: in memory, this process only.
	Credentials CredentialStore
	Observer    Observer // when set, told of every try of a call and every token renewal
	// OnBreakerStateChange, when set, is told every state change of a breaker. It runs
	// inside the breaker's lock: it must be quick and must not call the Client.
	OnBreakerStateChange func(name, from, to string)
	// RefreshKeepAlive is the keep-alive's margin (see KeepAlive): the grant is renewed once
	// its refresh token expires within it. 0: no keep-alive.
	RefreshKeepAlive time.Duration
	// OnSignal, when set, is told once of each thing Concur signalled that an operator must
	// hear (see Signal). It runs on the goroutine of the answer: it must be quick.
	OnSignal func(Signal)
}

// Client talks to Concur. It is safe for concurrent use.
type Client struct {
	baseOrigin string // canonical origin of Config.BaseURL
	timeout    time.Duration
	userAgent  string
	httpc      *http.Client // auth transport, no redirects
	tokens     *tokenSource
	sig        *signals
	listLimit  int64 // body cap of the batch list; a field so tests can lower it

	api    *breaker // list, close and file calls
	limits *limits
	retry  retryPolicy
	obs    Observer
}

var _ batch.Upstream = (*Client)(nil)

// New returns a Client for cfg (see Config for what it checks).
func New(cfg Config) (*Client, error) {
	var unset []string
	for name, ok := range map[string]bool{
		"Timeout": cfg.Timeout > 0, "AuthScheme": cfg.AuthScheme != "", "BreakerThreshold": cfg.BreakerThreshold > 0,
		"BreakerOpenInterval": cfg.BreakerOpenInterval > 0, "MaxAttempts": cfg.MaxAttempts > 0,
		"MaxConcurrent": cfg.MaxConcurrent > 0, "RateBurst (with a RateLimit)": cfg.RateLimit <= 0 || cfg.RateBurst > 0,
	} {
		if !ok {
			unset = append(unset, name)
		}
	}
	if len(unset) > 0 {
		slices.Sort(unset)
		return nil, fmt.Errorf("concur: config: %s must be set (internal/config defaults them)", strings.Join(unset, ", "))
	}
	base, err := parseOrigin(cfg.BaseURL)
	if err != nil {
		return nil, errors.New("concur: config: BaseURL must be an absolute http(s) URL without user info or query")
	}
	ua := cmp.Or(cfg.UserAgent, DefaultUserAgent)
	rt := cfg.Transport
	if rt == nil {
		rt = DefaultTransport(cfg.Timeout)
	}
	sig := newSignals(cfg.OnSignal)
	rt = &signalTransport{base: rt, sig: sig}
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c := &Client{
		baseOrigin: base,
		timeout:    cfg.Timeout,
		userAgent:  ua,
		httpc: &http.Client{
			Transport:     &authTransport{base: rt, scheme: cfg.AuthScheme, trustedBase: base},
			CheckRedirect: noRedirect,
		},
		listLimit: maxListBody,
		api:       newBreaker(BreakerAPI, "Concur", cfg.BreakerThreshold, cfg.BreakerOpenInterval, cfg.OnBreakerStateChange),
		limits:    newLimits(cfg.MaxConcurrent, cfg.RateLimit, cfg.RateBurst, cfg.Timeout),
		retry: retryPolicy{
			attempts: cfg.MaxAttempts,
			budget:   cmp.Or(cfg.RetryBudget, 2*cfg.Timeout),
			base:     cmp.Or(cfg.RetryBaseDelay, DefaultRetryBaseDelay),
			maxWait:  cmp.Or(cfg.RetryMaxDelay, DefaultRetryMaxDelay),
		},
		obs: cfg.Observer,
		sig: sig,
	}
	c.tokens = &tokenSource{
		store:        cfg.Credentials,
		seed:         cfg.RefreshToken,
		seedHash:     seedHash(cfg.RefreshToken),
		tokenURL:     cfg.TokenURL,
		clientID:     cfg.ClientID,
		clientSecret: cfg.ClientSecret,
		base:         base,
		timeout:      cfg.Timeout,
		userAgent:    ua,
		httpc:        &http.Client{Transport: rt, CheckRedirect: noRedirect},
		now:          time.Now,
		breaker: newBreaker(BreakerToken, "Concur's token endpoint", cfg.BreakerThreshold, cfg.BreakerOpenInterval,
			cfg.OnBreakerStateChange),
		obs:       cfg.Observer,
		keepAlive: cfg.RefreshKeepAlive,
		sig:       sig,
		retryMin:  50 * time.Millisecond,
		retryMax:  10 * time.Second,
	}
	c.tokens.bg, c.tokens.stopBG = context.WithCancel(context.Background())
	if c.tokens.store == nil {
		c.tokens.store = newMemCredentials()
	}
	if cfg.AccessToken != "" {
		c.tokens.static = &token{access: cfg.AccessToken}
	}
	return c, nil
}

// ListBatches streams Concur's batch list, filtered by status unless ListAll, to fn (see
// batch.Upstream). A list that fails midway may be tried again from its start, so fn may
// see a summary twice. An error of fn stops the list and is returned as is: it is not
// Concur's, so it is neither retried nor counted by the breaker.
func (c *Client) ListBatches(ctx context.Context, status batch.ListStatus, fn func(batch.Summary) error) error {
	switch status {
	case batch.ListAll, batch.ListOpen, batch.ListClosed:
	default:
		return &batch.Error{Code: batch.CodeInternal, Delivery: batch.NotSent, Detail: "unknown batch list filter"}
	}
	_, err := c.do(ctx, request{
		op:     opList,
		method: http.MethodGet,
		path:   apiPrefix + "v1.1/batchlist/" + string(status),
		limit:  c.listLimit,
		decode: func(r io.Reader, consume func(func() error) error) error {
			return decodeBatchList(r, func(s batch.Summary) error {
				if err := consume(func() error { return fn(s) }); err != nil {
					return &consumerError{err: err}
				}
				return nil
			})
		},
	})
	return err
}

// CloseBatch closes (v1.1, synchronous) the batch at batchURL, the Batch-URL from the list.
// A File-Url on a foreign host is returned as is: the close happened; OpenFile refuses it.
// The close is sent at most once.
func (c *Client) CloseBatch(ctx context.Context, batchURL string) (batch.CloseResult, error) {
	return c.closeBatch(ctx, batchURL, false)
}

// CloseBatchAsync schedules the close (v1.2, asynchronous) of the batch at batchURL: the
// Batch-URL's v1.1 segment becomes v1.2. Concur answers Status and JobQueueKey; the batch
// shows in the CLOSED list once the job ran, and a v1.1 close then yields the File-Url.
func (c *Client) CloseBatchAsync(ctx context.Context, batchURL string) (batch.CloseResult, error) {
	return c.closeBatch(ctx, batchURL, true)
}

// v11Batch is the path prefix of a Batch-URL, whose version segment CloseBatchAsync swaps.
const v11Batch = apiPrefix + "v1.1/batch/"

func (c *Client) closeBatch(ctx context.Context, batchURL string, async bool) (batch.CloseResult, error) {
	raw := strings.TrimSpace(batchURL)
	u, err := parseConcurURL(raw)
	if err != nil {
		return batch.CloseResult{}, err
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || (async && !strings.HasPrefix(u.EscapedPath(), v11Batch)) {
		return batch.CloseResult{}, &batch.Error{Code: batch.CodeUpstreamBadResponse, Delivery: batch.NotSent,
			Detail: "the Batch-URL from Concur has an unexpected shape"}
	}
	target := strings.TrimSuffix(raw, "/") + "/close" // as given: never re-escape its '$'
	if async {
		// The host cannot hold v11Batch's slashes: the first occurrence is the path's.
		target = strings.Replace(target, v11Batch, apiPrefix+"v1.2/batch/", 1)
	}
	var out batch.CloseResult
	a, err := c.do(ctx, request{
		op:     opClose,
		method: http.MethodPost,
		url:    target,
		limit:  maxSmallBody,
		decode: func(r io.Reader, _ func(func() error) error) (err error) { out, err = decodeClose(r); return err },
	})
	if err == nil {
		out.CorrelationID = a.correlationID // a failure's, when Concur answered, is the error's
	}
	return out, err
}

// OpenFile starts the download of a File-Url from CloseBatch. The headers must come within
// Config.Timeout; then the body streams, uncapped, and each Read must make progress within
// Config.Timeout. The caller must close Body. Failures before the headers are retried like
// the list, none after. The download holds its Config.MaxConcurrent slot only until its
// headers arrive: a slow consumer must not starve other calls.
func (c *Client) OpenFile(ctx context.Context, fileURL string) (*batch.File, error) {
	raw := strings.TrimSpace(fileURL)
	if _, err := parseConcurURL(raw); err != nil {
		return nil, err
	}
	a, err := c.do(ctx, request{op: opFile, method: http.MethodGet, url: raw})
	if err != nil {
		return nil, err
	}
	return fileOf(ctx, a, c.timeout)
}

// Ready reports, for readiness probes, whether the Client can authenticate to Concur: nil
// when it holds a fresh access token or obtains one now (joining the one refresh, waiting
// no longer than ctx). A static token is always ready.
func (c *Client) Ready(ctx context.Context) error {
	_, err := c.tokens.get(ctx)
	return err
}

// BreakerState reports the state of the named breaker (BreakerAPI or BreakerToken):
// BreakerClosed, BreakerOpen or BreakerHalfOpen; "" for an unknown name.
func (c *Client) BreakerState(name string) string {
	switch name {
	case BreakerAPI:
		return c.api.state()
	case BreakerToken:
		return c.tokens.breaker.state()
	}
	return ""
}

// Drain waits for the token refresh in flight, commits a renewed grant the credential store
// failed to take (trying again until ctx ends) and stops the background commits. Call it
// last, after the server stopped and before the store closes, or a rotated refresh token
// could be lost with the process.
func (c *Client) Drain(ctx context.Context) error { return c.tokens.drain(ctx) }

// CloseIdleConnections closes the idle connections to Concur and its token endpoint.
func (c *Client) CloseIdleConnections() {
	c.httpc.CloseIdleConnections()
	c.tokens.httpc.CloseIdleConnections()
}
