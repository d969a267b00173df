package concur

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

const (
	// maxTokenLifetime caps expires_in (Concur's tokens live an hour), so an absurd value
	// cannot overflow into an expiry in the past.
	maxTokenLifetime = 24 * time.Hour
	maxTokenBody     = 64 << 10         // token endpoint answers
	refreshEarly     = 60 * time.Second // renew a token that expires within this, or within half its lifetime if shorter
)

// token is one access token. It is immutable once built; identity (the pointer) tells
// whether a token that Concur refused is still the current one.
type token struct {
	access   string
	expiry   time.Time     // zero: unknown, used until Concur refuses it
	lifetime time.Duration // expires_in as granted; meaningful only with expiry
	apiBase  string        // canonical origin of the geolocation; "" when none
}

// trusts reports whether origin may receive this token: Config.BaseURL's or the geolocation's.
func (t *token) trusts(base, origin string) bool {
	return origin == base || (t.apiBase != "" && origin == t.apiBase)
}

// tokenSource owns the credentials: the current access token and the newest refresh token.
// Refreshes are single-flight and run detached from any one caller, so a refresh token that
// Concur has redeemed is never lost to a cancelled request.
type tokenSource struct {
	static       *token // set in static AccessToken mode: never refresh
	tokenURL     string
	clientID     string
	clientSecret string
	onRefresh    func(ctx context.Context, refreshToken, geolocation string) error
	allowHTTPGeo bool // Config.BaseURL is http:// (development, simulator): an http geolocation is accepted
	timeout      time.Duration
	userAgent    string
	httpc        *http.Client
	now          func() time.Time

	mu       sync.Mutex
	cur      *token
	refresh  string // newest refresh token; the one to redeem next
	inflight *flight
	refused  error // set once Concur refused the refresh token: no point asking again
}

// errGrantRefused marks Concur's invalid_grant: the refresh token is dead until a person
// re-authorises the gateway (a later change that reloads the token must clear refused).
var errGrantRefused = errors.New("concur: refresh token refused (invalid_grant)")

type flight struct {
	done chan struct{}
	tok  *token
	err  error
}

// get returns a token that is not about to expire (see freshLocked), refreshing it if needed.
func (s *tokenSource) get(ctx context.Context) (*token, error) {
	if s.static != nil {
		return s.static, nil
	}
	return s.acquire(ctx, nil)
}

// renew is called after Concur refused failed. If another caller already replaced it, the
// replacement is returned; otherwise one refresh is made (or joined).
func (s *tokenSource) renew(ctx context.Context, failed *token) (*token, error) {
	return s.acquire(ctx, failed)
}

// acquire returns the current token unless it is stale or is failed (nil for none), else
// starts or joins the one refresh.
func (s *tokenSource) acquire(ctx context.Context, failed *token) (*token, error) {
	s.mu.Lock()
	if s.cur != nil && s.cur != failed && s.freshLocked(s.cur) {
		t := s.cur
		s.mu.Unlock()
		return t, nil
	}
	if failed != nil && s.cur == failed {
		s.cur = nil
	}
	if s.refused != nil {
		s.mu.Unlock()
		return nil, s.refused
	}
	f := s.startLocked(ctx)
	s.mu.Unlock()
	return s.wait(ctx, f)
}

// freshLocked reports whether t may still be used: it is renewed once less than
// min(refreshEarly, half its lifetime) remains, so a short-lived token (expires_in of a
// minute or less) is not renewed on every call.
func (s *tokenSource) freshLocked(t *token) bool {
	if t.expiry.IsZero() {
		return true
	}
	margin := min(refreshEarly, t.lifetime/2)
	return !s.now().Add(margin).After(t.expiry)
}

func (s *tokenSource) startLocked(ctx context.Context) *flight {
	if s.inflight != nil {
		return s.inflight
	}
	f := &flight{done: make(chan struct{})}
	s.inflight = f
	go func() {
		ctx, cancel := context.WithTimeoutCause(context.WithoutCancel(ctx), s.timeout, errCallTimeout)
		defer cancel()
		tok, err := s.fetch(ctx)
		s.mu.Lock()
		if err == nil {
			s.cur = tok
		} else if errors.Is(err, errGrantRefused) {
			s.refused = err
		}
		s.inflight = nil
		f.tok, f.err = tok, err
		s.mu.Unlock()
		close(f.done)
	}()
	return f
}

func (s *tokenSource) wait(ctx context.Context, f *flight) (*token, error) {
	select {
	case <-f.done:
		return f.tok, f.err
	case <-ctx.Done():
		return nil, callerGone(ctx)
	}
}

// tokenAnswer is the token endpoint's JSON, success and error alike.
type tokenAnswer struct {
	AccessToken  string          `json:"access_token"`
	ExpiresIn    json.RawMessage `json:"expires_in"` // "3600" or 3600
	RefreshToken string          `json:"refresh_token"`
	Geolocation  string          `json:"geolocation"`
	Error        string          `json:"error"`
	Description  string          `json:"error_description"`
	Code         json.RawMessage `json:"code"` // 108 or "108"
}

// fetch redeems the newest refresh token. Only one fetch runs at a time.
func (s *tokenSource) fetch(ctx context.Context) (*token, error) {
	s.mu.Lock()
	rt := s.refresh
	s.mu.Unlock()
	form := url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {rt},
		"client_id":     {s.clientID},
		"client_secret": {s.clientSecret},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, &batch.Error{Code: batch.CodeInternal, Detail: "cannot build the token request", Err: err}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", s.userAgent)
	resp, err := s.httpc.Do(req)
	if err != nil {
		return nil, tokenTransportError(ctx, err)
	}
	defer resp.Body.Close()
	body, readErr := readAll(resp.Body, maxTokenBody)
	var ans tokenAnswer
	jsonErr := json.Unmarshal(body, &ans)
	if resp.StatusCode != http.StatusOK {
		return nil, tokenStatusError(resp, ans)
	}
	if readErr != nil {
		if errors.Is(readErr, errTooLarge) {
			return nil, badToken("the token answer is too large", readErr)
		}
		return nil, tokenTransportError(ctx, readErr)
	}
	if jsonErr != nil {
		return nil, badToken("the token answer is not JSON", jsonErr)
	}
	// The refresh token we sent is spent: keep the newest one before anything else.
	newRT := rt
	if ans.RefreshToken != "" {
		newRT = ans.RefreshToken
		s.mu.Lock()
		s.refresh = newRT
		s.mu.Unlock()
	}
	tok, geo, verr := buildToken(ans, s.now(), s.allowHTTPGeo)
	if s.onRefresh != nil {
		if err := s.onRefresh(ctx, newRT, geo); err != nil {
			return nil, &batch.Error{Code: batch.CodeInternal,
				Detail: "could not store the renewed Concur refresh token", Err: err}
		}
	}
	if verr != nil {
		return nil, verr
	}
	return tok, nil
}

// buildToken validates a successful answer. geo is the validated geolocation or "". An http
// geolocation is refused unless allowHTTP (Config.BaseURL is itself http): bearer tokens
// never travel in cleartext when the configured API is https.
func buildToken(ans tokenAnswer, now time.Time, allowHTTP bool) (*token, string, error) {
	var geo, base string
	if g := strings.TrimSpace(ans.Geolocation); g != "" {
		o, err := parseOrigin(g)
		if err != nil {
			return nil, "", badToken("the token answer has an invalid geolocation", err)
		}
		if !allowHTTP && !strings.HasPrefix(o, "https://") {
			return nil, "", badToken("the token answer has a geolocation that is not https", nil)
		}
		geo, base = g, o
	}
	if ans.AccessToken == "" {
		return nil, geo, badToken("the token answer has no access_token", nil)
	}
	tok := &token{access: ans.AccessToken, apiBase: base}
	if len(ans.ExpiresIn) > 0 && string(ans.ExpiresIn) != "null" {
		secs, err := flexInt(ans.ExpiresIn)
		if err != nil || secs < 0 {
			return nil, geo, badToken("the token answer has an invalid expires_in", err)
		}
		if secs > 0 {
			tok.lifetime = time.Duration(min(secs, int64(maxTokenLifetime/time.Second))) * time.Second
			tok.expiry = now.Add(tok.lifetime)
		}
	}
	return tok, geo, nil
}

// flexInt reads a JSON number or a string holding an integer.
func flexInt(raw json.RawMessage) (int64, error) {
	s := strings.TrimSpace(string(raw))
	if uq, err := strconv.Unquote(s); err == nil {
		s = strings.TrimSpace(uq)
	}
	return strconv.ParseInt(s, 10, 64)
}

func badToken(detail string, err error) *batch.Error {
	return &batch.Error{Code: batch.CodeUpstreamBadResponse, Detail: detail, Err: err}
}

func tokenStatusError(resp *http.Response, ans tokenAnswer) *batch.Error {
	up := &batch.UpstreamError{Status: resp.StatusCode, Message: strings.TrimSpace(ans.Error + ": " + ans.Description)}
	up.Message = strings.Trim(up.Message, ": ")
	code, _ := flexInt(ans.Code)
	e := &batch.Error{Code: batch.CodeUpstreamAuthFailed, Upstream: up}
	switch {
	case ans.Error == "invalid_grant" || code == 108:
		e.Detail = "Concur refused the refresh token (invalid_grant): a person must re-authorise the gateway with Concur"
		e.Err = errGrantRefused
	case ans.Error == "invalid_client":
		e.Detail = "Concur refused the gateway's client credentials (invalid_client)"
	case resp.StatusCode == http.StatusTooManyRequests:
		e.Code, e.Detail = batch.CodeUpstreamRateLimited, "Concur's token endpoint is throttling the gateway"
		e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), defaultRateLimitWait)
	case resp.StatusCode >= 500:
		e.Code, e.Detail = batch.CodeUpstreamUnavailable, "Concur's token endpoint is unavailable"
		e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), defaultUnavailableWait)
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		e.Code, e.Detail = batch.CodeUpstreamBadResponse, "Concur's token endpoint answered with a redirect"
	default:
		e.Detail = "Concur refused to renew the access token"
	}
	return e
}

// tokenTransportError classifies a failure to reach the token endpoint. ctx is the
// refresh's own (detached) context, so a cancelled caller is not the cause here.
func tokenTransportError(ctx context.Context, err error) *batch.Error {
	e := transportError(ctx, ctx, err)
	if e.Code == batch.CodeUpstreamTimeout || e.Code == batch.CodeUpstreamUnreachable {
		e.Detail = "Concur's token endpoint: " + e.Detail
	}
	return e
}
