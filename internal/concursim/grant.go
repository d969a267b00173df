package concursim

import (
	"net/http"
	"strings"
	"time"
)

// A company's first grant: a Concur administrator generates a request token for the app,
// which exchanges it at the token endpoint (GLZ for a real company) with
// grant_type=password, username=<company UUID>, password=<request token>,
// credtype=authtoken and its client credentials. The request token stays valid
// Options.RequestTokenTTL from New and may be exchanged again within it (Concur allows it
// after a network failure); each exchange starts a new grant, with its own refresh token.
//
// Refusals, as Concur's JSON {error, error_description, code}, checked in this order:
// credtype other than authtoken: 400 code 120; unknown company or wrong request token: 400
// code 5 "Incorrect Credentials. Please Retry"; request token expired: 400 code 108 (a
// person must generate a new one, as for a dead refresh token); request token issued for
// another client (Options.RequestTokenClientID): 400 code 136.

// grant is one authorisation: what one request-token exchange (or the configured refresh
// token) started, through all its rotations. Guarded by Sim.mu.
type grant struct {
	redirected bool // two hosts: code 16 was answered at GLZ for it
}

// refreshState is one redeemable refresh token.
type refreshState struct {
	exp   time.Time
	grant *grant
}

// passwordGrant is the company request-token exchange.
func (s *Sim) passwordGrant(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	f := r.PostForm
	var refused int
	switch {
	case f.Get("credtype") != "authtoken":
		refused = 120
	case !strings.EqualFold(strings.TrimSpace(f.Get("username")), s.opts.CompanyUUID) ||
		!equal(f.Get("password"), s.opts.RequestToken):
		refused = 5
	case !now.Before(s.start.Add(s.opts.RequestTokenTTL)):
		refused = 108
	case s.opts.RequestTokenClientID != s.opts.ClientID:
		refused = 136
	}
	s.mu.Lock()
	if refused != 0 {
		s.stats.PasswordRefusals++
		s.mu.Unlock()
		te := tokenErrorFor(refused)
		if refused == 108 {
			te.Description = "The request token has expired."
		}
		s.writeTokenError(w, r, te)
		return
	}
	s.stats.PasswordGrants++
	iss := s.issueLocked(now, "", &grant{})
	edit := s.edit
	s.mu.Unlock()
	s.writeTokenAnswer(w, r, iss, edit)
}
