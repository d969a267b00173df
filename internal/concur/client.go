// Package concur is the gateway's client for SAP Concur's legacy Payment Batch API. It owns
// the transport (time-outs, host guard, no redirects), the credentials (OAuth2 refresh with
// rotation, single-flight, shared by replicas through a CredentialStore) and the XML. Every
// failure is a *batch.Error with an upstream code.
package concur

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// Defaults for Config.
const (
	DefaultTimeout   = 60 * time.Second
	DefaultUserAgent = "payment-batch-gateway"

	DefaultBreakerThreshold    = 5
	DefaultBreakerOpenInterval = 30 * time.Second
	DefaultMaxAttempts         = 3
	DefaultRetryBaseDelay      = 250 * time.Millisecond
	DefaultRetryMaxDelay       = 10 * time.Second
	DefaultMaxConcurrent       = 8
	DefaultRateBurst           = 1
)

// apiPrefix is where every Payment Batch resource lives; Batch-URLs and File-Urls must be under it.
const apiPrefix = "/api/expense/paymentbatch/"

// Config configures a Client. Either AccessToken (static, development) or TokenURL,
// ClientID, ClientSecret and RefreshToken (OAuth2 refresh-token grant) must be set.
type Config struct {
	// BaseURL is the API origin when the token carries no geolocation, e.g.
	// https://us.api.concursolutions.com. When it is https, a token whose geolocation is
	// http is refused; an http BaseURL (development, simulator) accepts an http geolocation.
	BaseURL      string
	TokenURL     string // OAuth2 token endpoint (form POST)
	ClientID     string
	ClientSecret string
	RefreshToken string        // the grant's seed: redeemed when Credentials holds no chain started from it
	AccessToken  string        // static token: when set, the token endpoint is never called
	AuthScheme   string        // "Bearer" (default) or "OAuth"
	Timeout      time.Duration // per Concur call; for a file download, per read; default 60s
	UserAgent    string        // default "payment-batch-gateway"
	// Transport is the base transport. nil means a clone of http.DefaultTransport with a
	// 10s dial and TLS handshake time-out and a response header time-out of Timeout.
	Transport http.RoundTripper
	// Credentials keeps the grant (the newest refresh token, the newest access token and
	// its geolocation) across restarts and replicas: refreshes are serialised through it,
	// so exactly one replica redeems a refresh token and the others adopt its result. nil
	// means an in-memory store: this process only, the grant lost on exit. Unused with a
	// static AccessToken.
	Credentials CredentialStore

	// Resilience (see resilience.go). Zero values take the defaults; negative ones are refused.

	// BreakerThreshold is how many consecutive failures (5xx other than the close's
	// no-reports 500, time-outs, connection failures) open a breaker; default 5.
	BreakerThreshold int
	// BreakerOpenInterval is how long an open breaker refuses calls before it lets one
	// probe through (half-open); default 30s.
	BreakerOpenInterval time.Duration
	// OnBreakerStateChange, when set, is told every state change of a breaker: name is
	// BreakerAPI or BreakerToken, from and to are BreakerClosed, BreakerOpen or
	// BreakerHalfOpen. It runs inside the breaker's lock: it must be quick and must not
	// call the Client.
	OnBreakerStateChange func(name, from, to string)
	// MaxAttempts is how many times a batch list, or a file download before its body, is
	// tried; default 3; 1 turns retries off. A close is never retried.
	MaxAttempts int
	// RetryBudget bounds a retried call as a whole, waits included; default 2*Timeout.
	RetryBudget time.Duration
	// RetryBaseDelay is the upper bound of the first back-off (full jitter, doubling per
	// try); default 250ms.
	RetryBaseDelay time.Duration
	// RetryMaxDelay caps one wait between tries; a Retry-After longer than this is not
	// waited for: the call fails at once with it. Default 10s.
	RetryMaxDelay time.Duration
	// MaxConcurrent caps the calls in flight to Concur from this Client; default 8. A
	// call waits for a slot at most Timeout (and no longer than its context).
	MaxConcurrent int
	// RateLimit, when positive, caps the requests per second sent to Concur's API; 0: off.
	RateLimit float64
	// RateBurst is how many requests may go at once under RateLimit; default 1.
	RateBurst int

	// Observer, when set, is told of every try of a call to Concur and of every token
	// renewal (observe.go), for metrics.
	Observer Observer
}

// Client talks to Concur. It is safe for concurrent use.
type Client struct {
	baseOrigin string // canonical origin of Config.BaseURL
	timeout    time.Duration
	userAgent  string
	httpc      *http.Client // auth transport, no redirects
	tokens     *tokenSource
	listLimit  int64 // body cap of the batch list; a field so tests can lower it

	api    *breaker // list, close and file calls
	limits *limits
	retry  retryPolicy
	obs    Observer
}

var _ batch.Upstream = (*Client)(nil)

// New validates cfg and returns a Client. Errors name the offending fields, never their values.
func New(cfg Config) (*Client, error) {
	var errs []error
	bad := func(field, why string) { errs = append(errs, fmt.Errorf("%s: %s", field, why)) }

	base, err := parseOrigin(cfg.BaseURL)
	switch {
	case cfg.BaseURL == "":
		bad("BaseURL", "is required")
	case err != nil:
		bad("BaseURL", "must be an absolute http(s) URL without user info or query")
	case strings.Trim(pathOf(cfg.BaseURL), "/") != "":
		bad("BaseURL", "must not have a path")
	}
	static := cfg.AccessToken != ""
	if !static {
		if cfg.TokenURL == "" {
			bad("TokenURL", "is required when AccessToken is not set")
		} else if u, err := url.Parse(cfg.TokenURL); err != nil || !isHTTP(u) || u.User != nil {
			bad("TokenURL", "must be an absolute http(s) URL without user info")
		}
		for _, f := range []struct{ name, v string }{
			{"ClientID", cfg.ClientID}, {"ClientSecret", cfg.ClientSecret}, {"RefreshToken", cfg.RefreshToken},
		} {
			if f.v == "" {
				bad(f.name, "is required when AccessToken is not set")
			}
		}
	}
	scheme := "Bearer"
	switch {
	case cfg.AuthScheme == "" || strings.EqualFold(cfg.AuthScheme, "Bearer"):
	case strings.EqualFold(cfg.AuthScheme, "OAuth"):
		scheme = "OAuth"
	default:
		bad("AuthScheme", `must be "Bearer" or "OAuth"`)
	}
	if cfg.Timeout < 0 {
		bad("Timeout", "must not be negative")
	}
	if strings.ContainsAny(cfg.UserAgent, "\r\n") {
		bad("UserAgent", "must be a single line")
	}
	validateResilience(cfg, bad)
	if len(errs) > 0 {
		return nil, fmt.Errorf("concur: invalid config: %w", errors.Join(errs...))
	}

	timeout := cmp.Or(cfg.Timeout, DefaultTimeout)
	ua := cmp.Or(cfg.UserAgent, DefaultUserAgent)
	rt := cfg.Transport
	if rt == nil {
		rt = defaultTransport(timeout)
	}
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res := resilienceOf(cfg, timeout)
	obs := observerOr(cfg.Observer)
	c := &Client{
		obs:        obs,
		api:        newBreaker(BreakerAPI, "Concur", res.threshold, res.openInterval, cfg.OnBreakerStateChange),
		limits:     newLimits(res.maxConcurrent, cfg.RateLimit, res.burst, timeout),
		retry:      res.retry,
		baseOrigin: base,
		listLimit:  maxListBody,
		timeout:    timeout,
		userAgent:  ua,
		httpc: &http.Client{
			Transport:     &authTransport{base: rt, scheme: scheme, trustedBase: base},
			CheckRedirect: noRedirect,
		},
		tokens: &tokenSource{
			tokenURL:     cfg.TokenURL,
			clientID:     cfg.ClientID,
			clientSecret: cfg.ClientSecret,
			store:        cfg.Credentials,
			seed:         cfg.RefreshToken,
			seedHash:     seedHash(cfg.RefreshToken),
			allowHTTPGeo: strings.HasPrefix(base, "http://"),
			timeout:      timeout,
			userAgent:    ua,
			httpc:        &http.Client{Transport: rt, CheckRedirect: noRedirect},
			now:          time.Now,
			obs:          obs,
			breaker: newBreaker(BreakerToken, "Concur's token endpoint", res.threshold, res.openInterval,
				cfg.OnBreakerStateChange),
		},
	}
	c.tokens.bg, c.tokens.stopBG = context.WithCancel(context.Background())
	c.tokens.retryMin, c.tokens.retryMax = 50*time.Millisecond, 10*time.Second
	if c.tokens.store == nil {
		c.tokens.store = newMemCredentials()
	}
	if static {
		c.tokens.static = &token{access: cfg.AccessToken}
	}
	return c, nil
}

// ListBatches reads Concur's batch list, filtered by status unless status is ListAll,
// and hands each summary to fn as it is read (see batch.Upstream). A list that fails
// while it is read may be tried again from its start, so fn may be handed a summary
// again. An error of fn stops the list and is returned as is: it is not Concur's, so it
// is neither retried nor counted by the breaker.
func (c *Client) ListBatches(ctx context.Context, status batch.ListStatus, fn func(batch.Summary) error) error {
	switch status {
	case batch.ListAll, batch.ListOpen, batch.ListClosed:
	default:
		return &batch.Error{Code: batch.CodeInternal, Delivery: batch.NotSent, Detail: "unknown batch list filter"}
	}
	return c.do(ctx, request{
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
}

// CloseBatch closes (v1.1, synchronous) the batch at batchURL, the Batch-URL from the list.
// A File-Url on a foreign host is returned as is: the close happened; OpenFile refuses it.
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
		// Exactly the path's version segment: the host part cannot hold v11Batch's slashes
		// before the path starts, so the first occurrence is the path's.
		target = strings.Replace(target, v11Batch, apiPrefix+"v1.2/batch/", 1)
	}
	var out batch.CloseResult
	err = c.do(ctx, request{
		op:     opClose,
		method: http.MethodPost,
		url:    target,
		limit:  maxSmallBody,
		decode: func(r io.Reader, _ func(func() error) error) (err error) { out, err = decodeClose(r); return err },
	})
	return out, err
}

// Drain waits until no token refresh is in flight, then commits a renewed grant that the
// credential store failed to take (trying again until ctx ends), and stops the background
// commits. A refresh runs detached from its callers and commits the rotated refresh token
// to the credential store: call Drain after the server stopped and before the store
// closes, as the last call of the Client, or a rotation could be lost with the process.
func (c *Client) Drain(ctx context.Context) error { return c.tokens.drain(ctx) }

// CloseIdleConnections closes the idle keep-alive connections to Concur and its token
// endpoint (as http.Client.CloseIdleConnections does); connections in use are not touched.
// For shutdown and tests.
func (c *Client) CloseIdleConnections() {
	c.httpc.CloseIdleConnections()
	c.tokens.httpc.CloseIdleConnections()
}

func pathOf(s string) string {
	if u, err := url.Parse(strings.TrimSpace(s)); err == nil {
		return u.Path
	}
	return ""
}
