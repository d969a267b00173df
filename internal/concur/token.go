package concur

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	"github.com/finplat/payment-batch-gateway/internal/store"
)

const (
	// maxTokenLifetime caps expires_in (Concur's tokens live an hour), so an absurd value
	// cannot overflow into an expiry in the past.
	maxTokenLifetime = 24 * time.Hour
	maxTokenBody     = 64 << 10         // token endpoint answers
	refreshEarly     = 60 * time.Second // renew a token that expires within this, or within half its lifetime if shorter
)

// token is one access token. It is immutable once built. The same access token can be built
// twice (this process's, and adopted from the store), so tokens are compared by access.
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

// tokenSource owns the credentials. The grant itself (newest refresh token, newest access
// token) lives in the credential store shared by every replica; the source keeps the access
// token in use in this process. Refreshes are single-flight in the process and serialised
// across processes by the store (see refresh), and run detached from any one caller, so a
// refresh token that Concur has redeemed is never lost to a cancelled request.
type tokenSource struct {
	static       *token // set in static AccessToken mode: never refresh
	store        CredentialStore
	seed         string // Config.RefreshToken: redeemed when the store holds no chain started from it
	seedHash     string // hex SHA-256 of seed
	tokenURL     string
	clientID     string
	clientSecret string
	allowHTTPGeo bool // Config.BaseURL is http:// (development, simulator): an http geolocation is accepted
	timeout      time.Duration
	userAgent    string
	httpc        *http.Client
	now          func() time.Time
	breaker      *breaker // BreakerToken: around every request to the token endpoint
	obs          Observer // told of every token request and renewal

	// Background commits of an unsaved grant (see commit): they run under bg, which Drain ends.
	bg                 context.Context
	stopBG             context.CancelFunc
	retryMin, retryMax time.Duration // their back-off

	mu       sync.Mutex
	cur      *token
	denied   string // the access token Concur refused last: never adopted from the store again
	inflight *flight
	// refusedHash is the hash of the refresh token Concur refused (invalid_grant), and
	// refusedErr its error: while the store still holds that token, it is not presented again.
	refusedHash string
	refusedErr  error
	unsaved     *grant // a grant the store failed to commit; committed again in the background
	retrying    bool   // retryUnsaved is running
}

// errGrantRefused marks Concur's invalid_grant: the refresh token is dead until a person
// re-authorises the gateway (a later change that reloads the token must clear refused).
var errGrantRefused = errors.New("concur: refresh token refused (invalid_grant)")

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
	return s.acquire(ctx, nil)
}

// renew is called after Concur refused failed. If another caller (or replica) already
// replaced it, the replacement is returned; otherwise one refresh is made (or joined).
func (s *tokenSource) renew(ctx context.Context, failed *token) (*token, error) {
	return s.acquire(ctx, failed)
}

// acquire returns the current token unless it is stale or is failed (nil for none), else
// starts or joins the one refresh.
func (s *tokenSource) acquire(ctx context.Context, failed *token) (*token, error) {
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
		f := s.startLocked(ctx)
		s.mu.Unlock()
		tok, err := s.wait(ctx, f)
		// A refresh that was already running may have adopted the refused token from the
		// store before this caller said it was refused: then run one more.
		if err != nil || failed == nil || tok.access != failed.access || try > 0 {
			return tok, err
		}
	}
}

// fresh reports whether t may still be used: it is renewed once less than
// min(refreshEarly, half its lifetime) remains, so a short-lived token (expires_in of a
// minute or less) is not renewed on every call.
func (s *tokenSource) fresh(t *token) bool {
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
		// Lock wait, token call and commit: the token call gets s.timeout of it (see refresh).
		ctx, cancel := context.WithTimeoutCause(context.WithoutCancel(ctx), refreshBudget(s.timeout), errCallTimeout)
		defer cancel()
		tok, err := s.refresh(ctx)
		s.mu.Lock()
		if err == nil {
			s.cur = tok
		}
		s.inflight = nil
		f.tok, f.err = tok, err
		s.mu.Unlock()
		close(f.done)
	}()
	return f
}

// drain waits for the refresh in flight, if any, to end (commit or fail), then commits an
// unsaved grant, trying again with back-off until ctx ends, and stops the background
// commits. A grant still unsaved then is lost with the process: the error says so.
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
		s.mu.Lock()
		g := s.unsaved
		s.mu.Unlock()
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

func (s *tokenSource) wait(ctx context.Context, f *flight) (*token, error) {
	select {
	case <-f.done:
		return f.tok, f.err
	case <-ctx.Done():
		return nil, callerGone(ctx)
	}
}

// CredentialStore keeps the OAuth grant across restarts and replicas (internal/store implements it).
type CredentialStore interface {
	UpdateCredentials(ctx context.Context, fn func(cur store.Credentials, found bool) (*store.Credentials, error)) (store.Credentials, error)
}

// refreshBudget bounds a whole refresh: the wait for the credential store's lock (another
// replica may be renewing), the token call (at most the Concur time-out) and the commit.
func refreshBudget(timeout time.Duration) time.Duration { return 2 * timeout }

// commitReserve is what the token call leaves of the refresh budget for the commit, so that
// a refresh token Concur has redeemed is not lost to the deadline after a slow lock wait.
func commitReserve(timeout time.Duration) time.Duration { return timeout / 4 }

func seedHash(refreshToken string) string {
	h := sha256.Sum256([]byte(refreshToken))
	return hex.EncodeToString(h[:])
}

// redeemWithin redeems rt within the Concur time-out, and within what the refresh budget
// has left before the commit reserve, through the token endpoint's breaker.
func (s *tokenSource) redeemWithin(ctx context.Context, rt string) (tokenAnswer, error) {
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
		return tokenAnswer{}, err // nothing was sent: rt is still good
	}
	ctx, cancel := context.WithTimeoutCause(ctx, d, errCallTimeout)
	defer cancel()
	v := neutral
	defer func() { done(v) }() // also if redeem panics: a half-open breaker must not wait forever
	ans, err := s.redeem(ctx, rt)
	observeTry(s.obs, context.Background(), OpToken, start, true, err)
	// The refresh is detached from its callers: no caller's end is involved. A time-out
	// counts when the call had the whole Concur time-out.
	v = verdictOf(context.Background(), true, err)
	if v == failing && d < s.timeout && batch.ErrorCode(err) == batch.CodeUpstreamTimeout {
		v = neutral // the lock wait left the call less than the time-out: not Concur's failure alone
	}
	return ans, err
}

// successor is what to store after Concur redeemed rt: always the newest refresh token,
// and the new access token when the rest of the answer is valid (else err says why not).
func (s *tokenSource) successor(ans tokenAnswer, rt, chainSeed string, cur store.Credentials) (*store.Credentials, *token, error) {
	t, geo, err := buildToken(ans, s.now(), s.allowHTTPGeo)
	next := &store.Credentials{
		RefreshToken:  cmp.Or(ans.RefreshToken, rt), // Concur may or may not rotate it
		RefreshExpiry: refreshExpiry(ans.RefreshExpiresIn),
		Geolocation:   geo,
		SeedHash:      chainSeed,
	}
	if next.RefreshExpiry.IsZero() && next.RefreshToken == cur.RefreshToken {
		next.RefreshExpiry = cur.RefreshExpiry // not rotated, and the expiry not repeated
	}
	if err != nil {
		return next, nil, err
	}
	next.AccessToken, next.AccessExpiry, next.AccessLifetime = t.access, t.expiry, t.lifetime
	return next, t, nil
}

// storedToken is the stored access token, its geolocation checked as if Concur had just
// sent it; ok is false when this client may not use it.
func (s *tokenSource) storedToken(c store.Credentials) (t *token, ok bool) {
	t = &token{access: c.AccessToken, expiry: c.AccessExpiry, lifetime: c.AccessLifetime}
	if g := strings.TrimSpace(c.Geolocation); g != "" {
		base, err := geoBase(g, s.allowHTTPGeo)
		if err != nil {
			return nil, false
		}
		t.apiBase = base
	}
	return t, true
}

const (
	maxSpentSeeds  = 32 // seeds kept in SpentSeeds: every chain the gateway ever started, in practice
	maxSpentTokens = 64 // redeemed refresh tokens kept in SpentTokens
	pollMin        = 10 * time.Millisecond
	pollMax        = 500 * time.Millisecond
)

// grant is what Concur issued for a redeemed refresh token, to be committed.
type grant struct {
	next     store.Credentials // tokens, expiries, geolocation, SeedHash
	tok      *token            // nil when the answer held no usable access token (fail says why)
	fail     error
	saw      string // the stored refresh token when the marker was committed
	redeemed string // hash of the token presented
	newChain bool   // the configured seed was presented: a new chain
}

// plan is what the planning transaction decided.
type plan struct {
	tok       *token // adopt it
	refuse    error  // the stored token is the one Concur refused
	wait      bool   // another replica is redeeming
	rt        string // else: present this token
	hash      string
	chainSeed string
	newChain  bool
	cur       store.Credentials // as read
	until     time.Time         // our marker's lease
}

// refresh renews the access token, across replicas (issue 12, scenarios 4 and 13):
//
//  1. Plan, in one short transaction under the credentials lock: adopt the stored access
//     token if it is fresh; else, if another replica's redeeming marker is live (its lease,
//     on the database's clock, has not ended), wait and plan again; else commit a marker
//     naming the hash of the refresh token about to be presented, with a lease of
//     refreshBudget.
//  2. Present it to Concur, holding no lock.
//  3. Commit the grant in a second short transaction; that clears the marker and records
//     the redeemed token (and, for a new chain, its seed) as spent. If the stored chain
//     moved on meanwhile, the grant is not stored and the stored one is adopted.
//
// A grant Concur issued whose commit failed is the only live refresh token: it is kept in
// memory and committed again in the background with back-off, at the next refresh, and at
// Drain. Its marker keeps the other replicas waiting meanwhile.
//
// On invalid_grant the store is read again: if its chain moved on (another replica stored a
// grant, perhaps this one's lost commit), the new token is used; the refusal is remembered
// only for the very token Concur refused, so it sticks only while the store still holds it.
//
// Which token to present. The configured refresh token (the seed) starts a new chain only
// when it was never redeemed: its hash is neither the stored chain's SeedHash nor in
// SpentSeeds (every seed that started a chain) nor in SpentTokens (the latest redeemed
// refresh tokens). That is what a person re-authorising the gateway looks like: a token
// nobody has presented yet. A replica still configured with an old seed finds it spent and
// uses the stored newest token instead, whatever chain that is.
func (s *tokenSource) refresh(ctx context.Context) (_ *token, err error) {
	defer func() { observeRefresh(s.obs, err) }()
	s.mu.Lock()
	g := s.unsaved
	s.mu.Unlock()
	if g != nil {
		tok, done, err := s.commit(ctx, g)
		if err != nil {
			return nil, err
		}
		if done && (tok != nil || g.fail != nil) {
			return tok, g.fail
		}
	}
	wait := pollMin
	for moved := 0; ; {
		p, err := s.plan(ctx)
		switch {
		case err != nil:
			return nil, err
		case p.tok != nil:
			return p.tok, nil
		case p.refuse != nil:
			return nil, p.refuse
		case p.wait:
			if !sleep(ctx, wait) {
				return nil, &batch.Error{Code: batch.CodeUpstreamUnavailable, RetryAfter: time.Second,
					Detail: "another gateway replica is renewing the Concur access token and did not finish in time",
					Err:    context.Cause(ctx)}
			}
			wait = min(2*wait, pollMax)
			continue
		}
		ans, err := s.redeemWithin(ctx, p.rt)
		if err != nil {
			movedOn := s.release(ctx, p)
			if errors.Is(err, errGrantRefused) {
				if movedOn && moved < 3 {
					moved++
					continue // the store has a newer grant: use it
				}
				s.mu.Lock()
				s.refusedHash, s.refusedErr = p.hash, err
				s.mu.Unlock()
			}
			return nil, err
		}
		next, tok, fail := s.successor(ans, p.rt, p.chainSeed, p.cur)
		g := &grant{next: *next, tok: tok, fail: fail, saw: p.cur.RefreshToken, redeemed: p.hash, newChain: p.newChain}
		tok, done, err := s.commit(ctx, g)
		if err != nil {
			return nil, err
		}
		if !done { // superseded: another grant is stored
			continue
		}
		return tok, g.fail
	}
}

// plan runs step 1 in one transaction.
func (s *tokenSource) plan(ctx context.Context) (plan, error) {
	var p plan
	out, err := s.store.UpdateCredentials(ctx, func(cur store.Credentials, found bool) (*store.Credentials, error) {
		p = plan{cur: cur}
		s.mu.Lock()
		denied, refusedHash, refusedErr := s.denied, s.refusedHash, s.refusedErr
		s.mu.Unlock()
		if found && cur.AccessToken != "" && cur.AccessToken != denied {
			if t, ok := s.storedToken(cur); ok && s.fresh(t) {
				p.tok = t
				return nil, nil
			}
		}
		if cur.Redeeming.TokenHash != "" && cur.Redeeming.Live {
			p.wait = true
			return nil, nil
		}
		spent := hasHash(cur.SpentSeeds, s.seedHash) || hasHash(cur.SpentTokens, s.seedHash)
		p.rt, p.chainSeed, p.newChain = s.seed, s.seedHash, true
		switch {
		case found && cur.RefreshToken != "" && (spent || cur.SeedHash == s.seedHash):
			p.rt, p.chainSeed, p.newChain = cur.RefreshToken, cur.SeedHash, false
		case spent:
			p.refuse = &batch.Error{Code: batch.CodeUpstreamAuthFailed, Err: errGrantRefused,
				Detail: "the configured Concur refresh token was already redeemed and the store holds no newer one: " +
					"a person must re-authorise the gateway with Concur"}
			return nil, nil
		}
		p.hash = seedHash(p.rt)
		if refusedHash != "" && refusedHash == p.hash {
			p.refuse = refusedErr
			return nil, nil
		}
		next := cur
		next.Redeeming = store.Redemption{TokenHash: p.hash, Lease: refreshBudget(s.timeout)} // the token call and the commit
		return &next, nil
	})
	if err != nil {
		return plan{}, storeError(ctx, err)
	}
	p.until = out.Redeeming.Until
	return p, nil
}

// release clears this refresh's marker after a failed token call, so that the token can be
// presented again, and reports whether the stored chain moved on meanwhile.
func (s *tokenSource) release(ctx context.Context, p plan) (movedOn bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitReserve(s.timeout))
	defer cancel()
	_, err := s.store.UpdateCredentials(ctx, func(cur store.Credentials, found bool) (*store.Credentials, error) {
		movedOn = found && cur.RefreshToken != p.cur.RefreshToken
		if cur.Redeeming.TokenHash != p.hash || !cur.Redeeming.Until.Equal(p.until) {
			return nil, nil // not ours any more
		}
		next := cur
		next.Redeeming = store.Redemption{}
		return &next, nil
	})
	return err == nil && movedOn
}

// commit stores g (step 3). done is false when the stored chain moved on without g (then
// tok is nil). On a store failure g is kept and committed again in the background.
func (s *tokenSource) commit(ctx context.Context, g *grant) (tok *token, done bool, err error) {
	var superseded bool
	_, err = s.store.UpdateCredentials(ctx, func(cur store.Credentials, _ bool) (*store.Credentials, error) {
		superseded = false
		switch {
		case g.next.AccessToken != "" && cur.AccessToken == g.next.AccessToken,
			g.next.AccessToken == "" && cur.RefreshToken == g.next.RefreshToken && cur.RefreshToken != g.saw:
			return nil, nil // an earlier commit went through; its acknowledgement was lost
		case cur.RefreshToken != g.saw:
			superseded = true
			return nil, nil
		}
		next := g.next
		next.SpentTokens = addHash(cur.SpentTokens, g.redeemed, maxSpentTokens)
		next.SpentSeeds = cur.SpentSeeds
		if g.newChain {
			next.SpentSeeds = addHash(cur.SpentSeeds, next.SeedHash, maxSpentSeeds)
		}
		return &next, nil // the marker is cleared
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		start := !s.retrying
		s.unsaved, s.retrying = g, true
		if start {
			go s.retryUnsaved()
		}
		return nil, false, &batch.Error{Code: batch.CodeInternal,
			Detail: "could not store the renewed Concur refresh token", Err: err}
	}
	if s.unsaved == g {
		s.unsaved = nil
	}
	if superseded {
		return nil, false, nil
	}
	return g.tok, true, nil
}

// retryUnsaved commits the unsaved grant with back-off until it is stored or superseded,
// or Drain ends the background work.
func (s *tokenSource) retryUnsaved() {
	wait := s.retryMin
	for {
		if !sleep(s.bg, wait) {
			s.mu.Lock()
			s.retrying = false
			s.mu.Unlock()
			return
		}
		s.mu.Lock()
		g := s.unsaved
		if g == nil {
			s.retrying = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		ctx, cancel := context.WithTimeout(s.bg, s.timeout)
		if tok, done, err := s.commit(ctx, g); err == nil && done && tok != nil && g.fail == nil {
			s.mu.Lock()
			if s.cur == nil || !s.fresh(s.cur) {
				s.cur = tok
			}
			s.mu.Unlock()
		}
		cancel()
		wait = min(2*wait, s.retryMax)
	}
}

func hasHash(list, h string) bool {
	for f := range strings.FieldsSeq(list) {
		if f == h {
			return true
		}
	}
	return false
}

// addHash puts h first in the space-separated list, keeping at most n entries.
func addHash(list, h string, n int) string {
	out := []string{h}
	for f := range strings.FieldsSeq(list) {
		if f != h && len(out) < n {
			out = append(out, f)
		}
	}
	return strings.Join(out, " ")
}

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

// memCredentials is the CredentialStore used when Config.Credentials is nil: the grant lives
// in this process only (tests, tools). Like the real store, it runs fn under a lock, which
// a caller waits for no longer than its context allows.
type memCredentials struct {
	lock  chan struct{} // one slot: held while fn runs
	cur   store.Credentials
	found bool
}

func newMemCredentials() *memCredentials {
	return &memCredentials{lock: make(chan struct{}, 1)}
}

// UpdateCredentials follows store.Store's contract: fn's non-nil answer is stored (Version
// incremented, UpdatedAt set), nil leaves the credentials as they are, an error changes nothing.
func (m *memCredentials) UpdateCredentials(ctx context.Context, fn func(cur store.Credentials, found bool) (*store.Credentials, error)) (store.Credentials, error) {
	if err := ctx.Err(); err != nil {
		return store.Credentials{}, err
	}
	select {
	case m.lock <- struct{}{}:
	case <-ctx.Done():
		return store.Credentials{}, ctx.Err()
	}
	defer func() { <-m.lock }()
	next, err := fn(m.read(), m.found)
	if err != nil {
		return store.Credentials{}, err
	}
	if next != nil {
		c := *next
		c.Version, c.UpdatedAt = m.cur.Version+1, time.Now()
		switch r := &c.Redeeming; {
		case r.TokenHash == "":
			*r = store.Redemption{}
		case r.Lease > 0:
			r.Until, r.Lease = time.Now().Add(r.Lease), 0
		}
		m.cur, m.found = c, true
	}
	return m.read(), nil
}

// read is the stored credentials with the marker's liveness as of now (this process's
// clock: the only one there is).
func (m *memCredentials) read() store.Credentials {
	c := m.cur
	c.Redeeming.Live = c.Redeeming.TokenHash != "" && time.Now().Before(c.Redeeming.Until)
	return c
}
