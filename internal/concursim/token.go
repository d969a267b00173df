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

// refreshTokenLifetime is how long Concur refresh tokens live (about six months).
const refreshTokenLifetime = 180 * 24 * time.Hour

const maxFormBytes = 64 << 10

// handleToken is POST /oauth2/v0/token: the refresh_token grant with Concur's rotation.
func (s *Sim) handleToken(w http.ResponseWriter, r *http.Request) {
	s.count(func(st *Stats) { st.TokenRequests++ })
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
	if gt := r.PostForm.Get("grant_type"); gt != "refresh_token" {
		writeJSON(w, http.StatusBadRequest, map[string]any{
			"error":             "unsupported_grant_type",
			"error_description": "The grant type " + strconv.Quote(gt) + " is not supported by this simulator.",
		})
		return
	}

	now := s.now()
	rt := r.PostForm.Get("refresh_token")
	s.mu.Lock()
	if len(s.stats.PresentedTokens) < maxIssuedKept {
		s.stats.PresentedTokens = append(s.stats.PresentedTokens, rt)
	}
	if !s.refresh[rt] {
		s.stats.InvalidGrants++
		s.mu.Unlock()
		writeJSON(w, http.StatusBadRequest, map[string]any{
			"error":             "invalid_grant",
			"error_description": "Refresh token is invalid, expired, revoked or already used.",
			"code":              108,
		})
		return
	}
	if len(s.stats.RedeemedTokens) < maxIssuedKept {
		s.stats.RedeemedTokens = append(s.stats.RedeemedTokens, rt)
	}
	s.issued++
	refresh, access := rt, s.newToken("at")
	if !s.opts.NoRotate {
		delete(s.refresh, rt)
		refresh = s.newToken("rt")
		s.refresh[refresh] = true
	}
	for t, exp := range s.access { // drop expired tokens so the map stays small
		if !now.Before(exp) {
			delete(s.access, t)
		}
	}
	s.access[access] = now.Add(s.opts.AccessTokenTTL)
	s.stats.TokenRefreshes++
	if len(s.stats.IssuedTokens) < maxIssuedKept {
		s.stats.IssuedTokens = append(s.stats.IssuedTokens, access, refresh)
	}
	edit := s.edit
	s.mu.Unlock()

	answer := map[string]any{
		"access_token":       access,
		"token_type":         "Bearer",
		"expires_in":         s.number(int64(s.opts.AccessTokenTTL / time.Second)),
		"scope":              "openid EXPRPT PAYBAT company.read",
		"refresh_token":      refresh,
		"refresh_expires_in": s.number(now.Add(refreshTokenLifetime).Unix()),
		"id_token":           "",
	}
	if !s.opts.NoGeolocation {
		answer["geolocation"] = s.origin(r)
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
