package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultTimeout bounds a call when Config.Timeout is zero. A close can take a while:
// Concur promises an answer within 60 s, and the gateway may first refresh its batch list.
const DefaultTimeout = 2 * time.Minute

// Limits on what the client reads.
const (
	maxJSONBody  = 16 << 20 // an answer: a page of 500 batches is ~200 KiB
	maxErrorBody = 64 << 10 // an error answer: a problem is < 2 KiB; a proxy's HTML page is cut
)

// Config configures a Client.
type Config struct {
	// BaseURL is where the gateway is, e.g. "https://payment-gateway.internal" (http or
	// https, optionally with a path prefix; no user info, query or fragment).
	BaseURL string
	// Key is the bearer credential: an API key minted for this service, or a JWT. It is
	// sent in the Authorization header to BaseURL only, and never appears in errors. Empty
	// sends no Authorization header (a gateway with authentication disabled).
	Key string
	// Timeout bounds each call: the whole call for JSON answers, and for File the wait for
	// the answer's headers (the file itself streams for as long as ctx allows). Zero means
	// DefaultTimeout; negative means no time-out but ctx's.
	Timeout time.Duration
	// HTTPClient, when set, sends the requests (its Transport, TLS settings, redirect
	// policy; its own Timeout applies too, and cuts file streams). Nil means a client that
	// follows no redirects, so the key is never sent anywhere but BaseURL.
	HTTPClient *http.Client
	// UserAgent is sent as User-Agent; empty means "payment-batch-gateway-client".
	UserAgent string
}

// Client calls the payment-batch gateway. It is safe for concurrent use.
type Client struct {
	base    string // BaseURL without a trailing slash
	auth    string // the Authorization header value, "" for none
	timeout time.Duration
	hc      *http.Client
	ua      string
}

// New returns a Client for cfg.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return nil, errors.New("client: BaseURL must be an http or https URL without user info, query or fragment")
	}
	c := &Client{base: strings.TrimRight(u.String(), "/"), timeout: cfg.Timeout, hc: cfg.HTTPClient, ua: cfg.UserAgent}
	if cfg.Key != "" {
		for _, r := range cfg.Key {
			if r <= ' ' || r > '~' { // the key is not quoted: say what is wrong, not where
				return nil, errors.New("client: Key must be visible ASCII characters without spaces")
			}
		}
		c.auth = "Bearer " + cfg.Key
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.hc == nil {
		c.hc = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if c.ua == "" {
		c.ua = "payment-batch-gateway-client"
	}
	return c, nil
}

// withTimeout bounds ctx by the client's time-out.
func (c *Client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.timeout < 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.timeout)
}

// send makes one request to path (already escaped) and returns the answer when its status
// is 2xx; any other status becomes an *Error and the body is closed.
func (c *Client) send(ctx context.Context, method, path string, query url.Values, header http.Header) (*http.Response, error) {
	target := c.base + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, target, nil)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", c.ua)
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// A *url.Error names the method and URL, never the headers: the key stays out.
		return nil, fmt.Errorf("client: %w", err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, errorFrom(method, path, resp)
}

// doJSON makes one request and decodes its JSON answer into out, all within the time-out.
func (c *Client) doJSON(ctx context.Context, method, path string, query url.Values, header http.Header, out any) error {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	if header == nil {
		header = http.Header{}
	}
	header.Set("Accept", "application/json, application/problem+json")
	resp, err := c.send(ctx, method, path, query, header)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" {
		return fmt.Errorf("client: %s %s: answer is %q, not JSON", method, path, resp.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJSONBody+1))
	if err != nil {
		return fmt.Errorf("client: %s %s: reading the answer: %w", method, path, err)
	}
	if len(body) > maxJSONBody {
		return fmt.Errorf("client: %s %s: answer larger than %d bytes", method, path, maxJSONBody)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("client: %s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

// batchPath is /batches/{id}[/suffix], with id escaped as one path segment.
func batchPath(id, suffix string) (string, error) {
	if id == "" {
		return "", errors.New("client: empty batch id")
	}
	p := "/batches/" + url.PathEscape(id)
	if suffix != "" {
		p += "/" + suffix
	}
	return p, nil
}
