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
	"sync"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

const (
	maxTokenLifetime = 24 * time.Hour   // caps expires_in, so that an absurd value cannot overflow into the past
	maxTokenBody     = 64 << 10         // token endpoint answers
	refreshEarly     = 60 * time.Second // renew a token that expires within this, or within half its lifetime if shorter
)

// token is one access token, immutable once built. The same access token can be built twice
// (this process's, and adopted from the store), so tokens are compared by access.
type token struct {
	access   string
	expiry   time.Time     // zero: unknown, used until Concur refuses it
	lifetime time.Duration // expires_in as granted; meaningful only with expiry
	apiBase  string        // canonical origin of the geolocation; "" when none
	// refreshExpiry is when the grant's refresh token expires (zero: unknown): the
	// keep-alive renews the token early to keep it ahead (keepAliveDue).
	refreshExpiry time.Time
	issued        time.Time // when Concur issued it (zero: unknown), for keepAliveDue
}

// trusts reports whether origin may receive this token: Config.BaseURL's or the geolocation's.
func (t *token) trusts(base, origin string) bool {
	return origin == base || (t.apiBase != "" && origin == t.apiBase)
}

// CredentialStore keeps the OAuth grant across restarts and replicas (internal/store implements
// it, mapping its row to Credentials).
type CredentialStore interface {
	UpdateCredentials(ctx context.Context, fn func(cur Credentials, found bool) (*Credentials, error)) (Credentials, error)
}

// Credentials are the gateway's Concur OAuth grant, as a CredentialStore keeps it (the
// store encrypts the tokens at rest). This package decides what goes in.
type Credentials struct {
	RefreshToken   string    // the newest refresh token: the one to redeem next
	RefreshExpiry  time.Time // zero when unknown
	AccessToken    string    // the newest access token, shared by replicas; "" when none
	AccessExpiry   time.Time // zero when unknown
	AccessLifetime time.Duration
	Geolocation    string
	// SeedHash is the hex SHA-256 of the configured refresh token this chain of rotations
	// started from: when the configured token changes (a person re-authorised the
	// gateway), the configured one wins over the stored one.
	SeedHash string
	// Redeeming is the marker of a refresh token being presented to Concur (zero: none),
	// committed before the token call so that other replicas wait, cleared with the grant.
	Redeeming Redemption
	// SpentSeeds and SpentTokens list, space-separated and newest first, the hex SHA-256
	// of the seeds that started a chain and of the latest refresh tokens redeemed. The
	// store keeps them as given.
	SpentSeeds  string
	SpentTokens string
	Version     int64 // incremented by every write; 0 when nothing was ever stored
	UpdatedAt   time.Time
}

// Redemption is a replica's announcement that it is presenting a refresh token to Concur.
// Its lease runs on the database's clock, the one clock every replica shares.
type Redemption struct {
	TokenHash string // hex SHA-256 of the refresh token being redeemed; "" for no marker
	// Lease, when positive on a write with TokenHash set, (re)starts the lease: Until
	// becomes the database's now plus Lease. Otherwise Until is written as given. Reads
	// leave it 0.
	Lease time.Duration
	Until time.Time // read: when the lease ends, on the database's clock
	Live  bool      // read: the lease had not ended when the row was read (database's clock)
}

// ErrUndecryptable is what a CredentialStore's error wraps when the stored credentials
// cannot be decrypted with the configured key.
var ErrUndecryptable = errors.New("stored credentials cannot be decrypted with this key")

// tokenSource owns the credentials: the grant lives in the credential store every replica
// shares, the access token this process uses in cur. Refreshes are single-flight in the
// process, serialised across processes by the store (refresh.go), and detached from their
// callers, so a refresh token Concur has redeemed is never lost to a cancelled request.
type tokenSource struct {
	static                           *token // static AccessToken mode: never refresh
	store                            CredentialStore
	seed                             string // Config.RefreshToken: redeemed when the store holds no chain started from it
	seedHash                         string // hex SHA-256 of seed
	tokenURL, clientID, clientSecret string
	base                             string // Config.BaseURL's origin: which geolocations may be used (geoBase)
	timeout                          time.Duration
	userAgent                        string
	httpc                            *http.Client
	now                              func() time.Time
	breaker                          *breaker // BreakerToken
	obs                              Observer
	keepAlive                        time.Duration // Config.RefreshKeepAlive; 0: no keep-alive
	sig                              *signals

	// Background commits of an unsaved grant (see commit) run under bg, which Drain ends.
	bg                 context.Context
	stopBG             context.CancelFunc
	retryMin, retryMax time.Duration // their back-off

	mu  sync.Mutex
	cur *token
	// lastExpiry is the refresh expiry of the newest token this process held: what
	// Signals reports while no token is held (a refresh failed).
	lastExpiry   time.Time
	keepAliveErr string // why the keep-alive's last renewal failed; "" after a success
	denied       string // the access token Concur refused last: never adopted from the store again
	inflight     *flight
	// The hash of the refresh token Concur refused and its error: while the store still
	// holds that token, it is not presented again; until refusedUntil for a refusal that
	// a person can lift without a new token (errNeedsPerson), ever for invalid_grant.
	refusedHash  string
	refusedErr   error
	refusedUntil time.Time // zero: for as long as the token is stored
	unsaved      *grant    // a grant the store failed to commit; committed again in the background
	retrying     bool      // retryUnsaved is running
}

// errGrantRefused marks Concur's invalid_grant: the refresh token is dead until a person
// re-authorises the gateway.
var errGrantRefused = errors.New("concur: refresh token refused (invalid_grant)")

// errNeedsPerson marks a refusal of the token endpoint that a person must lift (the app or
// company not enabled, an IP restriction, …) while the refresh token stays good: it is
// presented again only after refusalHoldOff, so that calls, probes and the keep-alive do
// not present it over and over meanwhile (a 4xx opens no breaker).
var errNeedsPerson = errors.New("concur: the token endpoint refused the app or company")

// refusalHoldOff is how long a refusal marked errNeedsPerson is answered without asking
// Concur again.
const refusalHoldOff = time.Minute

type flight struct {
	done chan struct{}
	tok  *token
	err  error
}

// get returns a token that is not about to expire (see fresh), refreshing it if needed.
func (s *tokenSource) get(ctx context.Context) (*token, error) {
	if s.static != nil {
		return s.static, nil
	}
	return s.renew(ctx, nil)
}

// renew returns the current token unless it is stale or is failed, the token Concur just
// refused (nil for none), else starts or joins the one refresh. If another caller (or
// replica) already replaced failed, the replacement is returned.
func (s *tokenSource) renew(ctx context.Context, failed *token) (*token, error) {
	for try := 0; ; try++ {
		s.mu.Lock()
		if failed != nil {
			s.denied = failed.access
			if s.cur != nil && s.cur.access == failed.access {
				s.cur = nil
			}
		}
		if s.cur != nil && s.fresh(s.cur) {
			t := s.cur
			s.mu.Unlock()
			return t, nil
		}
		f := s.startLocked(ctx, false)
		s.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, callerGone(ctx)
		}
		// A refresh that was already running may have adopted the refused token from the
		// store before this caller said it was refused: then run one more.
		if f.err != nil || failed == nil || f.tok.access != failed.access || try > 0 {
			return f.tok, f.err
		}
	}
}

// fresh reports whether t may still be used: it is renewed once less than min(refreshEarly,
// half its lifetime) remains, so that a token of a minute or less is not renewed every call.
// (The keep-alive renews earlier, on its own: keepAliveDue; a call never waits for that.)
func (s *tokenSource) fresh(t *token) bool {
	if t.expiry.IsZero() {
		return true
	}
	margin := min(refreshEarly, t.lifetime/2)
	return !s.now().Add(margin).After(t.expiry)
}

// keepAliveDue reports whether t is to be renewed now only to keep its grant alive: its
// refresh token expires within the keep-alive margin, and t was issued before that margin
// began. A token issued within it (Concur did not extend the refresh token's life) is not
// renewed early again, so that a grant Concur will not extend costs no more renewals than
// any other: Signals reports it as expiring instead.
func (s *tokenSource) keepAliveDue(t *token) bool {
	if s.keepAlive <= 0 || t.refreshExpiry.IsZero() {
		return false
	}
	due := t.refreshExpiry.Add(-s.keepAlive)
	return !s.now().Before(due) && t.issued.Before(due) // an unknown issue time is long ago
}

// expiring reports whether a refresh token that expires at expiry is within the keep-alive
// margin.
func (s *tokenSource) expiring(expiry time.Time) bool {
	return s.keepAlive > 0 && !expiry.IsZero() && !s.now().Before(expiry.Add(-s.keepAlive))
}

// startLocked starts the one refresh, or returns the one running. keepAlive: the
// keep-alive started it, and a stored token is adopted only if its grant is not due for the
// keep-alive either.
func (s *tokenSource) startLocked(ctx context.Context, keepAlive bool) *flight {
	if s.inflight != nil {
		return s.inflight
	}
	f := &flight{done: make(chan struct{})}
	s.inflight = f
	go func() {
		ctx, cancel := context.WithTimeoutCause(context.WithoutCancel(ctx), refreshBudget(s.timeout), errCallTimeout)
		defer cancel()
		tok, err := s.refresh(ctx, keepAlive)
		s.mu.Lock()
		if err == nil {
			s.setLocked(tok)
			s.keepAliveErr = "" // whoever renewed it, the grant works again
		}
		s.inflight = nil
		f.tok, f.err = tok, err
		s.mu.Unlock()
		if err == nil {
			s.noteExpiry(tok)
		}
		close(f.done)
	}()
	return f
}

// setLocked makes tok the token in use.
func (s *tokenSource) setLocked(tok *token) {
	s.cur = tok
	s.lastExpiry = tok.refreshExpiry // zero included: a grant that did not say replaces one that did
}

// drain is Client.Drain. A grant still unsaved when ctx ends is lost with the process: the
// error says so.
func (s *tokenSource) drain(ctx context.Context) error {
	defer s.stopBG()
	s.mu.Lock()
	f := s.inflight
	s.mu.Unlock()
	if f != nil {
		select {
		case <-f.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	wait := s.retryMin
	for {
		g := s.unsavedGrant()
		if g == nil {
			return nil
		}
		if _, _, err := s.commit(ctx, g); err == nil {
			continue
		}
		if !sleep(ctx, wait) {
			return errors.New("concur: a renewed refresh token could not be stored before shutdown")
		}
		wait = min(2*wait, s.retryMax)
	}
}

func (s *tokenSource) unsavedGrant() *grant {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unsaved
}

// redeemWithin makes a token request (form, a grant of kind) at endpoint through the token
// endpoint's breaker, within the Concur time-out and within what the refresh budget has
// left before the commit reserve.
func (s *tokenSource) redeemWithin(ctx context.Context, endpoint string, form url.Values, kind grantKind) (tokenAnswer, error) {
	d := s.timeout
	if deadline, ok := ctx.Deadline(); ok {
		d = min(d, time.Until(deadline)-commitReserve(s.timeout))
	}
	if d <= 0 {
		return tokenAnswer{}, &batch.Error{Code: batch.CodeStoreUnavailable,
			Detail: "the credential store's lock was held too long to renew the Concur access token in time"}
	}
	start := time.Now()
	done, err := s.breaker.allow()
	if err != nil {
		observeTry(s.obs, context.Background(), OpToken, start, false, err)
		return tokenAnswer{}, err // nothing was sent: the grant is still good
	}
	ctx, cancel := context.WithTimeoutCause(ctx, d, errCallTimeout)
	defer cancel()
	v := errNeutral
	defer func() { done(v) }() // also if exchange panics: a half-open breaker must not wait forever
	ans, err := s.exchange(ctx, endpoint, form, kind)
	observeTry(s.obs, context.Background(), OpToken, start, true, err)
	// The refresh is detached: no caller's end is involved. A time-out counts against Concur
	// only when the call had the whole Concur time-out, not what a slow lock wait left it.
	v = verdictOf(context.Background(), true, err)
	if v == errFailing && d < s.timeout && batch.ErrorCode(err) == batch.CodeUpstreamTimeout {
		v = errNeutral
	}
	return ans, err
}

// tokenAnswer is the token endpoint's JSON, success and error alike.
type tokenAnswer struct {
	AccessToken      string          `json:"access_token"`
	ExpiresIn        json.RawMessage `json:"expires_in"` // "3600" or 3600
	RefreshToken     string          `json:"refresh_token"`
	RefreshExpiresIn json.RawMessage `json:"refresh_expires_in"` // epoch seconds, string or number
	Scope            string          `json:"scope"`              // space-separated
	Geolocation      string          `json:"geolocation"`
	Error            string          `json:"error"`
	Description      string          `json:"error_description"`
	Code             json.RawMessage `json:"code"` // 108 or "108"
}

// exchange posts form at endpoint and, when Concur answers that the grant lives at another
// geolocation (code 16), once more at that geolocation's token endpoint: a code 16 refuses
// the grant without redeeming it, so presenting it again is safe.
func (s *tokenSource) exchange(ctx context.Context, endpoint string, form url.Values, kind grantKind) (tokenAnswer, error) {
	ans, err := s.post(ctx, endpoint, form, kind)
	moved, ok := errors.AsType[*livesElsewhere](err)
	if !ok {
		return ans, err
	}
	base, gerr := geoBase(moved.geolocation, s.base)
	if gerr != nil {
		return tokenAnswer{}, gerr
	}
	if base+tokenEndpointPath == endpoint {
		return tokenAnswer{}, err // sent back where it was: do not loop
	}
	return s.post(ctx, base+tokenEndpointPath, form, kind)
}

// post makes one token request. An error means there is nothing to store: Concur refused
// the grant, did not answer, or sent no readable answer.
func (s *tokenSource) post(ctx context.Context, endpoint string, form url.Values, kind grantKind) (tokenAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
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
	id := correlationID(resp.Header)
	batch.NoteCorrelation(ctx, id) // the refresh keeps the values of the call that started it
	body, readErr := readAll(resp.Body, maxTokenBody)
	var ans tokenAnswer
	jsonErr := json.Unmarshal(body, &ans)
	switch {
	case resp.StatusCode != http.StatusOK:
		e := tokenStatusError(resp, ans, kind)
		e.CorrelationID = id
		return tokenAnswer{}, e
	case errors.Is(readErr, errTooLarge):
		return tokenAnswer{}, badToken("the token answer is too large", readErr)
	case readErr != nil:
		return tokenAnswer{}, tokenTransportError(ctx, readErr)
	case jsonErr != nil:
		return tokenAnswer{}, badToken("the token answer is not JSON", jsonErr)
	}
	return ans, nil
}

// refreshForm is the refresh_token grant of rt.
func (s *tokenSource) refreshForm(rt string) url.Values {
	return url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {rt},
		"client_id":     {s.clientID},
		"client_secret": {s.clientSecret},
	}
}

// tokenEndpointPath is where Concur's token endpoint lives on every one of its hosts.
const tokenEndpointPath = "/oauth2/v0/token" // #nosec G101 -- a path, not a credential

// tokenEndpoint is where a grant of geolocation geo is renewed: the token endpoint of the
// geolocation's origin (only the origin counts: a geolocation may carry a path), or
// Config.TokenURL when there is none or it is not one this client may use.
func (s *tokenSource) tokenEndpoint(geo string) string {
	if g := strings.TrimSpace(geo); g != "" {
		if base, err := geoBase(g, s.base); err == nil {
			return base + tokenEndpointPath
		}
	}
	return s.tokenURL
}

// buildToken validates a successful answer (base: Config.BaseURL's origin, for geoBase).
// geo is the validated geolocation or "" (also when the rest of the answer is invalid, so
// that it can be stored with the refresh token).
func buildToken(ans tokenAnswer, now time.Time, base string) (*token, string, error) {
	var geo, apiBase string
	if g := strings.TrimSpace(ans.Geolocation); g != "" {
		b, err := geoBase(g, base)
		if err != nil {
			return nil, "", err
		}
		geo, apiBase = g, b
	}
	if ans.AccessToken == "" {
		return nil, geo, badToken("the token answer has no access_token", nil)
	}
	tok := &token{access: ans.AccessToken, apiBase: apiBase, issued: now}
	if len(ans.ExpiresIn) > 0 && string(ans.ExpiresIn) != "null" {
		secs, err := strconv.ParseInt(unquote(ans.ExpiresIn), 10, 64)
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

// geoBase turns a geolocation into the API origin, given base, Config.BaseURL's origin.
// When base is https, the geolocation must be https (bearer tokens never travel in
// cleartext) and one of Concur's hosts (*.concursolutions.com) or base itself: it is stored
// beside the encrypted tokens, not inside them, and calls and renewals go to it with the
// tokens and the client secret, so whoever can write the store must not be able to send
// them elsewhere. An http base (development, the simulator) allows any http(s) origin.
func geoBase(geo, base string) (string, error) {
	o, err := parseOrigin(geo)
	if err != nil {
		return "", badToken("the token answer has an invalid geolocation", err)
	}
	switch {
	case strings.HasPrefix(base, "http://"), o == base:
		return o, nil
	case !strings.HasPrefix(o, "https://"):
		return "", badToken("the token answer has a geolocation that is not https", nil)
	case !isConcurHost(o):
		return "", badToken("the token answer has a geolocation that is not one of Concur's hosts (*.concursolutions.com)", nil)
	}
	return o, nil
}

// isConcurHost reports whether the origin o names a host under concursolutions.com.
func isConcurHost(o string) bool {
	u, err := url.Parse(o)
	return err == nil && strings.HasSuffix(strings.ToLower(u.Hostname()), ".concursolutions.com")
}

// refreshExpiry reads refresh_expires_in (epoch seconds; a JSON number or a string holding
// one, possibly with a fraction). It is informational: anything implausible (before 2000 or
// after 9999) gives the zero time.
func refreshExpiry(raw json.RawMessage) time.Time {
	f, err := strconv.ParseFloat(unquote(raw), 64)
	if err != nil || math.IsNaN(f) || f < 946684800 || f > 253402300799 {
		return time.Time{}
	}
	return time.Unix(int64(f), 0).UTC()
}

// unquote is the trimmed text of a JSON number or of a string holding one.
func unquote(raw json.RawMessage) string {
	s := strings.TrimSpace(string(raw))
	if uq, err := strconv.Unquote(s); err == nil {
		s = strings.TrimSpace(uq)
	}
	return s
}
