package concursim

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const maxFormBytes = 64 << 10

// handleToken is POST /oauth2/v0/token: the refresh_token grant with Concur's rotation and
// the company's password grant (grant.go). An injected [TokenError] answers first.
func (s *Sim) handleToken(w http.ResponseWriter, r *http.Request) {
	s.count(func(st *Stats) { st.TokenRequests++ })
	if te, ok := s.takeTokenError(); ok {
		s.writeTokenError(w, r, te)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{
			"error": "invalid_request", "error_description": "The request body is not a valid form.",
		})
		return
	}
	id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if id == "" && secret == "" {
		id, secret, _ = r.BasicAuth()
	}
	if !equal(id, s.opts.ClientID) || !equal(secret, s.opts.ClientSecret) {
		writeJSON(w, http.StatusUnauthorized, map[string]any{
			"error": "invalid_client", "error_description": "Client authentication failed.",
		})
		return
	}
	switch gt := r.PostForm.Get("grant_type"); {
	case gt == "refresh_token":
		s.refreshGrant(w, r)
	case gt == "password" && s.opts.RequestToken != "":
		s.passwordGrant(w, r)
	default:
		writeJSON(w, http.StatusBadRequest, map[string]any{
			"error":             "unsupported_grant_type",
			"error_description": "The grant type " + strconv.Quote(gt) + " is not supported by this simulator.",
		})
	}
}

// refreshGrant redeems a refresh token: refused when unknown, spent or expired (code 108),
// sent elsewhere once per grant at GLZ (code 16), else a new access token and, unless
// NoRotate, a new refresh token; either way the refresh token lives RefreshTokenTTL more.
func (s *Sim) refreshGrant(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	rt := r.PostForm.Get("refresh_token")
	s.mu.Lock()
	if len(s.stats.PresentedTokens) < maxIssuedKept {
		s.stats.PresentedTokens = append(s.stats.PresentedTokens, rt)
	}
	st, ok := s.refresh[rt]
	if ok && !now.Before(st.exp) {
		delete(s.refresh, rt) // expired: dead for good
		ok = false
	}
	if !ok {
		s.stats.InvalidGrants++
		s.mu.Unlock()
		s.writeTokenError(w, r, tokenErrorFor(108))
		return
	}
	if s.atGLZ(r) && !s.opts.NoRedirectRefresh && !st.grant.redirected {
		st.grant.redirected = true
		s.stats.WrongHostRefreshes++
		s.mu.Unlock()
		s.writeTokenError(w, r, tokenErrorFor(16))
		return
	}
	if len(s.stats.RedeemedTokens) < maxIssuedKept {
		s.stats.RedeemedTokens = append(s.stats.RedeemedTokens, rt)
	}
	s.stats.TokenRefreshes++
	iss := s.issueLocked(now, rt, st.grant)
	edit := s.edit
	s.mu.Unlock()
	s.writeTokenAnswer(w, r, iss, edit)
}

// issued is what one successful grant hands out.
type issued struct {
	access, refresh string
	now, refreshExp time.Time
}

// issueLocked mints an access token and, for a new grant (rt "") or with rotation, a new
// refresh token that replaces rt; the refresh token lives RefreshTokenTTL from now.
// s.mu must be held.
func (s *Sim) issueLocked(now time.Time, rt string, g *grant) issued {
	s.issued++
	iss := issued{access: s.newToken("at"), refresh: rt, now: now, refreshExp: now.Add(s.opts.RefreshTokenTTL)}
	if rt == "" || !s.opts.NoRotate {
		delete(s.refresh, rt)
		iss.refresh = s.newToken("rt")
	}
	s.refresh[iss.refresh] = refreshState{exp: iss.refreshExp, grant: g}
	s.stats.RefreshTokenExpiry = iss.refreshExp.Unix()
	for t, exp := range s.access { // drop expired tokens so the map stays small
		if !now.Before(exp) {
			delete(s.access, t)
		}
	}
	s.access[iss.access] = now.Add(s.opts.AccessTokenTTL)
	if len(s.stats.IssuedTokens) < maxIssuedKept {
		s.stats.IssuedTokens = append(s.stats.IssuedTokens, iss.access, iss.refresh)
	}
	return iss
}

// writeTokenAnswer sends a successful token answer, through edit if set.
func (s *Sim) writeTokenAnswer(w http.ResponseWriter, r *http.Request, iss issued, edit func(map[string]any)) {
	answer := map[string]any{
		"access_token":       iss.access,
		"token_type":         "Bearer",
		"expires_in":         s.number(int64(s.opts.AccessTokenTTL / time.Second)),
		"scope":              s.opts.Scope,
		"refresh_token":      iss.refresh,
		"refresh_expires_in": s.number(iss.refreshExp.Unix()),
		"id_token":           "",
	}
	if !s.opts.NoGeolocation {
		answer["geolocation"] = s.geolocation(r)
	}
	if edit != nil {
		edit(answer)
	}
	writeJSON(w, http.StatusOK, answer)
}

// newToken returns an opaque random token, or prefix-n under CountedTokens. It is called
// under the lock.
func (s *Sim) newToken(prefix string) string {
	if s.opts.CountedTokens {
		return prefix + "-" + strconv.Itoa(s.issued)
	}
	return rand.Text() + rand.Text()
}

// number renders n as Concur's docs disagree: a string by default, a number by option.
func (s *Sim) number(n int64) any {
	if s.opts.ExpiresInNumber {
		return n
	}
	return strconv.FormatInt(n, 10)
}

// authed requires a live access token: 401 when the header is missing or malformed,
// RefusedStatus (403 by default: Concur's own split) when the token is unknown or expired.
// A scheme other than AuthScheme, when set, is malformed.
func (s *Sim) authed(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, tok, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
		tok = strings.TrimSpace(tok)
		if !ok || tok == "" || !s.acceptsScheme(scheme) {
			s.count(func(st *Stats) { st.Unauthorized++ })
			s.writeError(w, http.StatusUnauthorized, "Authorization header is missing or malformed.")
			return
		}
		now := s.now()
		s.mu.Lock()
		exp, known := s.access[tok]
		live := known && now.Before(exp)
		if !live {
			s.stats.Unauthorized++
		}
		s.mu.Unlock()
		if !live {
			s.writeError(w, s.opts.RefusedStatus, "Invalid, expired or revoked access token.")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Sim) acceptsScheme(scheme string) bool {
	if s.opts.AuthScheme != "" {
		return strings.EqualFold(scheme, s.opts.AuthScheme)
	}
	return strings.EqualFold(scheme, "Bearer") || strings.EqualFold(scheme, "OAuth")
}

// ExpireAccessTokens invalidates every access token issued so far; the refresh token
// stays valid.
func (s *Sim) ExpireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.access)
}

// count updates the statistics under the lock.
func (s *Sim) count(f func(*Stats)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.stats)
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
