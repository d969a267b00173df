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
