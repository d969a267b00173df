package concur

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/store"
)

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

// unsavedGrant is a grant Concur issued that the store failed to commit. Its refresh token
// may be the only live one (the stored one is spent), so it is offered to the store again
// at the next refresh, unless the store was written since (then the commit went through
// after all, or a person re-authorised the gateway).
type unsavedGrant struct {
	creds store.Credentials
	over  int64 // the stored Version it supersedes
}

// refresh runs under the store's credentials lock, so that across all replicas one at a
// time decides: adopt the stored access token (another replica renewed it, or this process
// restarted), or redeem the newest refresh token and store what Concur issued, committed
// before the new access token is used. Once Concur has redeemed a token, fn does not fail:
// failing would roll back, and lose the only refresh token left.
func (s *tokenSource) refresh(ctx context.Context) (_ *token, err error) {
	defer func() { observeRefresh(s.obs, err) }()
	var (
		tok    *token             // the token to use: adopted or new
		fail   error              // why the refresh fails, even when fn stores something
		minted *store.Credentials // what fn stores: Concur's new grant, or the unsaved one
		over   int64              // the stored Version minted supersedes
	)
	s.mu.Lock()
	unsaved := s.unsaved
	s.mu.Unlock()
	_, err = s.store.UpdateCredentials(ctx, func(cur store.Credentials, found bool) (*store.Credentials, error) {
		if minted != nil { // the store runs fn again (a retried transaction): never redeem twice
			return minted, nil
		}
		tok, fail, over = nil, nil, cur.Version
		pending := unsaved != nil && unsaved.over == cur.Version
		if pending {
			cur, found = unsaved.creds, true
		}
		s.mu.Lock()
		denied := s.denied // read now: a caller may have reported it during the lock wait
		s.mu.Unlock()
		if found && cur.AccessToken != "" && cur.AccessToken != denied {
			if t, ok := s.storedToken(cur); ok && s.fresh(t) {
				tok = t
				if pending {
					minted = &cur
				}
				return minted, nil
			}
		}
		rt := s.seed // first start, or a person configured a new refresh token
		if found && cur.RefreshToken != "" && cur.SeedHash == s.seedHash {
			rt = cur.RefreshToken
		}
		ans, err := s.redeemWithin(ctx, rt)
		if err != nil {
			fail = err
			return nil, err // nothing redeemed, or Concur refused rt: nothing to store
		}
		minted, tok, fail = s.successor(ans, rt, cur)
		return minted, nil
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err == nil:
		s.unsaved = nil
		if fail != nil {
			return nil, fail
		}
		return tok, nil
	case minted != nil:
		s.unsaved = &unsavedGrant{creds: *minted, over: over}
		return nil, &batch.Error{Code: batch.CodeInternal,
			Detail: "could not store the renewed Concur refresh token", Err: err}
	case fail != nil:
		return nil, fail // fn's own error, which the store returned (perhaps wrapped)
	}
	return nil, storeError(ctx, err)
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
func (s *tokenSource) successor(ans tokenAnswer, rt string, cur store.Credentials) (*store.Credentials, *token, error) {
	t, geo, err := buildToken(ans, s.now(), s.allowHTTPGeo)
	next := &store.Credentials{
		RefreshToken:  cmp.Or(ans.RefreshToken, rt), // Concur may or may not rotate it
		RefreshExpiry: refreshExpiry(ans.RefreshExpiresIn),
		Geolocation:   geo,
		SeedHash:      s.seedHash,
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

// storeError classifies a failure of the credential store before anything was redeemed.
func storeError(ctx context.Context, err error) *batch.Error {
	e := &batch.Error{Code: batch.CodeStoreUnavailable,
		Detail: "the credential store is unavailable: cannot renew the Concur access token", Err: err}
	switch {
	case errors.Is(err, store.ErrUndecryptable):
		e.Code, e.Detail = batch.CodeInternal, "the stored Concur credentials cannot be decrypted with the configured key"
	case errors.Is(context.Cause(ctx), errCallTimeout):
		e.Detail = "the credential store did not answer in time: cannot renew the Concur access token"
	}
	return e
}
