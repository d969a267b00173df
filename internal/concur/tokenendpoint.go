package concur

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// tokenAnswer is the token endpoint's JSON, success and error alike.
type tokenAnswer struct {
	AccessToken      string          `json:"access_token"`
	ExpiresIn        json.RawMessage `json:"expires_in"` // "3600" or 3600
	RefreshToken     string          `json:"refresh_token"`
	RefreshExpiresIn json.RawMessage `json:"refresh_expires_in"` // epoch seconds, string or number
	Geolocation      string          `json:"geolocation"`
	Error            string          `json:"error"`
	Description      string          `json:"error_description"`
	Code             json.RawMessage `json:"code"` // 108 or "108"
}

// redeem presents the refresh token rt at the token endpoint and returns Concur's 200
// answer. An error means there is nothing to store: Concur refused rt, or did not answer,
// or answered so that no new refresh token can be read from it.
func (s *tokenSource) redeem(ctx context.Context, rt string) (tokenAnswer, error) {
	form := url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {rt},
		"client_id":     {s.clientID},
		"client_secret": {s.clientSecret},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return tokenAnswer{}, &batch.Error{Code: batch.CodeInternal, Detail: "cannot build the token request", Err: err}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", s.userAgent)
	resp, err := s.httpc.Do(req)
	if err != nil {
		return tokenAnswer{}, tokenTransportError(ctx, err)
	}
	defer resp.Body.Close()
	body, readErr := readAll(resp.Body, maxTokenBody)
	var ans tokenAnswer
	jsonErr := json.Unmarshal(body, &ans)
	if resp.StatusCode != http.StatusOK {
		return tokenAnswer{}, tokenStatusError(resp, ans)
	}
	if readErr != nil {
		if errors.Is(readErr, errTooLarge) {
			return tokenAnswer{}, badToken("the token answer is too large", readErr)
		}
		return tokenAnswer{}, tokenTransportError(ctx, readErr)
	}
	if jsonErr != nil {
		return tokenAnswer{}, badToken("the token answer is not JSON", jsonErr)
	}
	return ans, nil
}

// buildToken validates a successful answer. geo is the validated geolocation or "" (also
// when the rest of the answer is invalid, so that it can be stored with the refresh token).
func buildToken(ans tokenAnswer, now time.Time, allowHTTP bool) (*token, string, error) {
	var geo, base string
	if g := strings.TrimSpace(ans.Geolocation); g != "" {
		b, err := geoBase(g, allowHTTP)
		if err != nil {
			return nil, "", err
		}
		geo, base = g, b
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

// geoBase turns a geolocation into the API origin. An http geolocation is refused unless
// allowHTTP (Config.BaseURL is itself http): bearer tokens never travel in cleartext when the
// configured API is https.
func geoBase(geo string, allowHTTP bool) (string, error) {
	o, err := parseOrigin(geo)
	if err != nil {
		return "", badToken("the token answer has an invalid geolocation", err)
	}
	if !allowHTTP && !strings.HasPrefix(o, "https://") {
		return "", badToken("the token answer has a geolocation that is not https", nil)
	}
	return o, nil
}

// Plausible bounds for refresh_expires_in, epoch seconds: from 2000 to the end of year 9999.
const (
	minRefreshEpoch = 946684800
	maxRefreshEpoch = 253402300799
)

// refreshExpiry reads refresh_expires_in (epoch seconds; a JSON number or a string holding
// one, possibly with a fraction). It is informational: anything else gives the zero time.
func refreshExpiry(raw json.RawMessage) time.Time {
	s := strings.TrimSpace(string(raw))
	if uq, err := strconv.Unquote(s); err == nil {
		s = strings.TrimSpace(uq)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f < minRefreshEpoch || f > maxRefreshEpoch {
		return time.Time{}
	}
	return time.Unix(int64(f), 0).UTC()
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
