package concursim

import (
	"net/http"
	"slices"
)

// The hooks below change the simulator while it runs, as a test needs: what an
// administrator does at Concur (authorise the app again, revoke it, hand out a static
// token), and answers no faithful Concur gives, for the client's tests of its edges.

// AddRefreshToken makes rt redeemable too, for RefreshTokenTTL, as when a person
// authorises the app again: a new grant.
func (s *Sim) AddRefreshToken(rt string) {
	if rt == "" {
		return
	}
	exp := s.now().Add(s.opts.RefreshTokenTTL)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refresh[rt] = refreshState{exp: exp, grant: &grant{}}
	s.stats.RefreshTokenExpiry = exp.Unix()
}

// RevokeRefreshTokens makes every refresh token invalid (invalid_grant, code 108), as when
// the user's authorisation is revoked; access tokens stay valid until they expire.
func (s *Sim) RevokeRefreshTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.refresh)
}

// RefreshTokens returns the refresh tokens the token endpoint would redeem, sorted.
func (s *Sim) RefreshTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for rt := range s.refresh {
		out = append(out, rt)
	}
	slices.Sort(out)
	return out
}

// AddAccessToken makes tok a live access token for AccessTokenTTL, as a static (legacy)
// token handed out by an administrator, or one issued by another data centre.
func (s *Sim) AddAccessToken(tok string) {
	if tok == "" {
		return
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.access[tok] = now.Add(s.opts.AccessTokenTTL)
}

// EditTokenAnswers installs fn, which edits each successful token answer (after the refresh
// token was redeemed) before it is sent: a test's way to an answer Concur might give, such
// as a missing member or an odd value. nil removes it.
func (s *Sim) EditTokenAnswers(fn func(answer map[string]any)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.edit = fn
}

// InterceptAPI installs mw around the simulator's list, close and file handlers, after
// faults and authentication: mw sees every authorised API request and may answer it itself
// or pass it to next, the simulator's own answer. nil removes it.
func (s *Sim) InterceptAPI(mw func(next http.Handler) http.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wrap = mw
}

// intercepted serves h, through the installed interceptor if any.
func (s *Sim) intercepted(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		wrap := s.wrap
		s.mu.Unlock()
		if wrap == nil {
			h(w, r)
			return
		}
		wrap(h).ServeHTTP(w, r)
	})
}
