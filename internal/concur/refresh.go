package concur

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

const (
	maxSpentSeeds  = 32 // seeds kept in SpentSeeds: every chain the gateway ever started, in practice
	maxSpentTokens = 64 // redeemed refresh tokens kept in SpentTokens
	pollMin        = 10 * time.Millisecond
	pollMax        = 500 * time.Millisecond
)

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

// grant is what Concur issued for a redeemed refresh token, to be committed.
type grant struct {
	next     Credentials // tokens, expiries, geolocation, SeedHash
	tok      *token      // nil when the answer held no usable access token (fail says why)
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
	endpoint  string      // the token endpoint to present it at
	cur       Credentials // as read
	until     time.Time   // our marker's lease
}

// refresh renews the access token, across replicas (issue 12, scenarios 4 and 13):
//
//  1. Plan, in one short transaction under the credentials lock: adopt the stored access
//     token if it is fresh; else, if another replica's redeeming marker is live (its lease,
//     on the database's clock, has not ended), wait and plan again; else commit a marker
//     naming the hash of the refresh token about to be presented, leased for refreshBudget.
//  2. Present it to Concur, holding no lock.
//  3. Commit the grant in a second short transaction; that clears the marker and records
//     the redeemed token (and, for a new chain, its seed) as spent. If the stored chain
//     moved on meanwhile, the grant is not stored and the stored one is adopted.
//
// A grant whose commit failed is the only live refresh token: it is kept in memory and
// committed again in the background, at the next refresh and at Drain; its marker keeps
// the other replicas waiting meanwhile.
//
// On invalid_grant the store is read again: if its chain moved on (another replica stored a
// grant, perhaps this one's lost commit), the new token is used; the refusal is remembered
// only for the very token Concur refused.
//
// The configured refresh token (the seed) starts a new chain only when nobody has presented
// it yet, as after a person re-authorised the gateway: its hash is neither the stored
// chain's SeedHash nor in SpentSeeds nor in SpentTokens. A replica still configured with an
// old seed finds it spent and uses the stored newest token instead.
func (s *tokenSource) refresh(ctx context.Context, keepAlive bool) (_ *token, err error) {
	defer func() {
		if s.obs != nil {
			s.obs.TokenRefreshed(err == nil)
		}
	}()
	if g := s.unsavedGrant(); g != nil {
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
		p, err := s.plan(ctx, keepAlive)
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
		ans, err := s.redeemWithin(ctx, p.endpoint, s.refreshForm(p.rt), grantRefresh)
		if err != nil {
			movedOn := s.release(ctx, p)
			if errors.Is(err, errGrantRefused) {
				if movedOn && moved < 3 {
					moved++
					continue // the store has a newer grant: use it
				}
				s.mu.Lock()
				s.refusedHash, s.refusedErr, s.refusedUntil = p.hash, err, time.Time{}
				s.mu.Unlock()
			}
			if errors.Is(err, errNeedsPerson) {
				s.mu.Lock()
				s.refusedHash, s.refusedErr, s.refusedUntil = p.hash, err, s.now().Add(refusalHoldOff)
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

// errNoGrant is the refusal of a gateway configured with no refresh token whose store
// holds no grant: nobody ran `gateway authorize` yet.
var errNoGrant = &batch.Error{Code: batch.CodeUpstreamAuthFailed,
	Detail: "the gateway holds no Concur grant: run `gateway authorize` with a company request token " +
		"(see the README, \"Connecting to your Concur company\")"}

// plan runs step 1 in one transaction. keepAlive: a stored token is adopted only if its
// grant is not due for the keep-alive (keepAliveDue) either.
func (s *tokenSource) plan(ctx context.Context, keepAlive bool) (plan, error) {
	var p plan
	out, err := s.store.UpdateCredentials(ctx, func(cur Credentials, found bool) (*Credentials, error) {
		p = plan{cur: cur}
		s.mu.Lock()
		denied, refusedHash, refusedErr := s.denied, s.refusedHash, s.refusedErr
		if !s.refusedUntil.IsZero() && !s.now().Before(s.refusedUntil) {
			refusedHash = "" // the hold-off is over: ask Concur again
		}
		s.mu.Unlock()
		if found && cur.AccessToken != "" && cur.AccessToken != denied {
			if t, ok := s.storedToken(cur); ok && s.fresh(t) && !(keepAlive && s.keepAliveDue(t)) {
				p.tok = t
				return nil, nil
			}
		}
		if cur.Redeeming.TokenHash != "" && cur.Redeeming.Live {
			p.wait = true
			return nil, nil
		}
		spent := hasHash(cur.SpentSeeds, s.seedHash) || hasHash(cur.SpentTokens, s.seedHash)
		p.rt, p.chainSeed, p.newChain, p.endpoint = s.seed, s.seedHash, true, s.tokenURL
		switch {
		case found && cur.RefreshToken != "" && (s.seed == "" || spent || cur.SeedHash == s.seedHash):
			p.rt, p.chainSeed, p.newChain = cur.RefreshToken, cur.SeedHash, false
			p.endpoint = s.tokenEndpoint(cur.Geolocation)
		case s.seed == "":
			p.refuse = errNoGrant
			return nil, nil
		case spent:
			p.refuse = &batch.Error{Code: batch.CodeUpstreamAuthFailed, Err: errGrantRefused,
				Detail: "the configured Concur refresh token was already redeemed and the store holds no newer one: " +
					"a person must re-authorise the gateway with Concur"}
			return nil, nil
		}
		p.hash = seedHash(p.rt)
		if refusedHash != "" && refusedHash == p.hash {
			p.refuse = replayed(refusedErr) // Concur is not asked: no answer's correlation id
			return nil, nil
		}
		next := cur
		next.Redeeming = Redemption{TokenHash: p.hash, Lease: refreshBudget(s.timeout)} // the token call and the commit
		return &next, nil
	})
	if err != nil {
		return plan{}, storeError(ctx, err)
	}
	p.until = out.Redeeming.Until
	return p, nil
}

// storedToken is the stored access token, its geolocation checked as if Concur had just
// sent it; ok is false when this client may not use it.
func (s *tokenSource) storedToken(c Credentials) (t *token, ok bool) {
	t = &token{access: c.AccessToken, expiry: c.AccessExpiry, lifetime: c.AccessLifetime, refreshExpiry: c.RefreshExpiry}
	if !c.AccessExpiry.IsZero() {
		t.issued = c.AccessExpiry.Add(-c.AccessLifetime)
	} // else unknown, so due for the keep-alive once per process: UpdatedAt moves with every marker

	if g := strings.TrimSpace(c.Geolocation); g != "" {
		base, err := geoBase(g, s.base)
		if err != nil {
			return nil, false
		}
		t.apiBase = base
	}
	return t, true
}

// successor is what to store after Concur redeemed rt: always the newest refresh token,
// and the new access token when the rest of the answer is valid (else err says why not).
func (s *tokenSource) successor(ans tokenAnswer, rt, chainSeed string, cur Credentials) (*Credentials, *token, error) {
	t, geo, err := buildToken(ans, s.now(), s.base)
	next := &Credentials{
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
	t.refreshExpiry = next.RefreshExpiry
	return next, t, nil
}

// release clears this refresh's marker after a failed token call, so that the token can be
// presented again, and reports whether the stored chain moved on meanwhile.
func (s *tokenSource) release(ctx context.Context, p plan) (movedOn bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitReserve(s.timeout))
	defer cancel()
	_, err := s.store.UpdateCredentials(ctx, func(cur Credentials, found bool) (*Credentials, error) {
		movedOn = found && cur.RefreshToken != p.cur.RefreshToken
		if cur.Redeeming.TokenHash != p.hash || !cur.Redeeming.Until.Equal(p.until) {
			return nil, nil // not ours any more
		}
		next := cur
		next.Redeeming = Redemption{}
		return &next, nil
	})
	return err == nil && movedOn
}

// commit stores g (step 3); done is false when the stored chain moved on without g. On a
// store failure g is kept and committed again in the background.
func (s *tokenSource) commit(ctx context.Context, g *grant) (tok *token, done bool, err error) {
	var superseded bool
	_, err = s.store.UpdateCredentials(ctx, func(cur Credentials, _ bool) (*Credentials, error) {
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
	for wait := s.retryMin; ; wait = min(2*wait, s.retryMax) {
		slept := sleep(s.bg, wait)
		s.mu.Lock()
		g := s.unsaved
		if !slept || g == nil {
			s.retrying = false // under the lock that commit starts this under
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		ctx, cancel := context.WithTimeout(s.bg, s.timeout)
		if tok, done, err := s.commit(ctx, g); err == nil && done && tok != nil && g.fail == nil {
			s.mu.Lock()
			if s.cur == nil || !s.fresh(s.cur) {
				s.setLocked(tok)
			}
			s.mu.Unlock()
		}
		cancel()
	}
}

func hasHash(list, h string) bool { return slices.Contains(strings.Fields(list), h) }

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

// memCredentials is the CredentialStore when Config.Credentials is nil (tests, tools). Like
// the real store, it runs fn under a lock, waited for no longer than the context allows.
type memCredentials struct {
	lock  chan struct{} // one slot: held while fn runs
	cur   Credentials
	found bool
}

func newMemCredentials() *memCredentials {
	return &memCredentials{lock: make(chan struct{}, 1)}
}

// UpdateCredentials follows store.Store's contract: fn's non-nil answer is stored (Version
// incremented, UpdatedAt set); nil or an error changes nothing.
func (m *memCredentials) UpdateCredentials(ctx context.Context, fn func(cur Credentials, found bool) (*Credentials, error)) (Credentials, error) {
	if err := ctx.Err(); err != nil {
		return Credentials{}, err
	}
	select {
	case m.lock <- struct{}{}:
	case <-ctx.Done():
		return Credentials{}, ctx.Err()
	}
	defer func() { <-m.lock }()
	next, err := fn(m.read(), m.found)
	if err != nil {
		return Credentials{}, err
	}
	if next != nil {
		c := *next
		c.Version, c.UpdatedAt = m.cur.Version+1, time.Now()
		switch r := &c.Redeeming; {
		case r.TokenHash == "":
			*r = Redemption{}
		case r.Lease > 0:
			r.Until, r.Lease = time.Now().Add(r.Lease), 0
		}
		m.cur, m.found = c, true
	}
	return m.read(), nil
}

// read is the stored credentials, the marker's liveness on this process's clock.
func (m *memCredentials) read() Credentials {
	c := m.cur
	c.Redeeming.Live = c.Redeeming.TokenHash != "" && time.Now().Before(c.Redeeming.Until)
	return c
}

// replayed is a remembered refusal as told again without asking Concur: a copy without the
// correlation id of the answer it came from, which belongs to another call.
func replayed(err error) error {
	e, ok := errors.AsType[*batch.Error](err)
	if !ok || e.CorrelationID == "" {
		return err
	}
	c := *e
	c.CorrelationID = ""
	return &c
}
