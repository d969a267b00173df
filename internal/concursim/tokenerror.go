package concursim

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// TokenError makes the next Count token answers (0: every one until cleared) one of
// Concur's token errors, {error, error_description, code}, before the request is looked
// at: nothing is redeemed or rotated. Status, OAuthError and Description default to the
// code's entry in tokenCodes; code 16 also carries a geolocation (Geolocation, or the one
// a token answer would name). PUT /_sim/token-error takes it as JSON.
type TokenError struct {
	Code         int    `json:"code"`                  // one of tokenCodes
	Status       int    `json:"status,omitempty"`      // 400..599; default per code
	OAuthError   string `json:"error,omitempty"`       // the "error" member; default per code
	Description  string `json:"description,omitempty"` // error_description; default per code
	Geolocation  string `json:"geolocation,omitempty"` // code 16 only; default the simulator's
	CodeAsString bool   `json:"codeAsString,omitempty"`
	Count        int    `json:"count,omitempty"` // next N token answers; 0 = until cleared
}

// tokenCodes are Concur's token error codes (API-NOTES section 7). Concur documents the
// codes, not their statuses: the statuses follow OAuth2 (400 for the grant and the request,
// 401 for the client), a choice of this simulator.
var tokenCodes = map[int]TokenError{
	5:   {Status: 400, OAuthError: "invalid_grant", Description: "Incorrect Credentials. Please Retry"},
	16:  {Status: 400, OAuthError: "invalid_grant", Description: "user lives elsewhere"},
	20:  {Status: 401, OAuthError: "unauthorized_client", Description: "The request's IP address is not allowed for this client."},
	21:  {Status: 401, OAuthError: "unauthorized_client", Description: "This client may only sign in with SSO."},
	53:  {Status: 401, OAuthError: "unauthorized_client", Description: "The company is not enabled for this client."},
	54:  {Status: 400, OAuthError: "invalid_scope", Description: "The requested scope was not granted."},
	59:  {Status: 401, OAuthError: "invalid_client", Description: "The client is disabled."},
	107: {Status: 400, OAuthError: "unauthorized_client", Description: "Refresh is not allowed for this client."},
	108: {Status: 400, OAuthError: "invalid_grant", Description: "Refresh token is invalid, expired, revoked or already used."},
	120: {Status: 400, OAuthError: "invalid_request", Description: "Invalid credtype: want authtoken."},
	123: {Status: 401, OAuthError: "invalid_grant", Description: "The principal is disabled."},
	134: {Status: 400, OAuthError: "temporarily_unavailable", Description: "The company is under scheduled maintenance."},
	136: {Status: 400, OAuthError: "invalid_grant", Description: "The request token was not issued for this client."},
}

// tokenErrorFor is code's error with its defaults.
func tokenErrorFor(code int) TokenError {
	te := tokenCodes[code]
	te.Code = code
	return te
}

func (te TokenError) validate() error {
	var errs []error
	if _, ok := tokenCodes[te.Code]; !ok {
		codes := slices.Sorted(maps.Keys(tokenCodes))
		errs = append(errs, fmt.Errorf("code %d: want one of %v", te.Code, codes))
	}
	if te.Status != 0 && (te.Status < 400 || te.Status > 599) {
		errs = append(errs, fmt.Errorf("status %d: want 400..599", te.Status))
	}
	if te.Count < 0 {
		errs = append(errs, errors.New("count must not be negative"))
	}
	if te.Geolocation != "" {
		if _, err := originOf(te.Geolocation, true); err != nil {
			errs = append(errs, fmt.Errorf("geolocation: %w", err))
		}
	}
	if strings.ContainsAny(te.OAuthError+te.Description, "\r\n") {
		errs = append(errs, errors.New("error and description must be one line"))
	}
	return errors.Join(errs...)
}

// withDefaults fills in the code's status, error and description.
func (te TokenError) withDefaults() TokenError {
	def := tokenCodes[te.Code]
	if te.Status == 0 {
		te.Status = def.Status
	}
	if te.OAuthError == "" {
		te.OAuthError = def.OAuthError
	}
	if te.Description == "" {
		te.Description = def.Description
	}
	return te
}

// SetTokenError validates te, fills in its defaults and installs it, replacing any. It
// returns what was installed.
func (s *Sim) SetTokenError(te TokenError) (TokenError, error) {
	if err := te.validate(); err != nil {
		return TokenError{}, err
	}
	te = te.withDefaults()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenErr = &te
	return te, nil
}

// ClearTokenError removes the injected token error.
func (s *Sim) ClearTokenError() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenErr = nil
}

// takeTokenError returns the injected error, consuming one use, and counts it.
func (s *Sim) takeTokenError() (TokenError, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	te := s.tokenErr
	if te == nil {
		return TokenError{}, false
	}
	taken := *te
	if te.Count > 0 {
		te.Count--
		if te.Count == 0 {
			s.tokenErr = nil
		}
	}
	s.stats.TokenErrors++
	return taken, true
}

// writeTokenError sends te as Concur's JSON error.
func (s *Sim) writeTokenError(w http.ResponseWriter, r *http.Request, te TokenError) {
	te = te.withDefaults()
	var code any = te.Code
	if te.CodeAsString {
		code = strconv.Itoa(te.Code)
	}
	body := map[string]any{"error": te.OAuthError, "error_description": te.Description, "code": code}
	if te.Code == 16 {
		body["geolocation"] = cmp.Or(te.Geolocation, s.geolocation(r))
	}
	writeJSON(w, te.Status, body)
}

func (s *Sim) handleGetTokenError(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	var te *TokenError
	if s.tokenErr != nil {
		c := *s.tokenErr
		te = &c
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, te)
}

// handlePutTokenError installs the TokenError in the JSON body and echoes it, defaults
// filled in.
func (s *Sim) handlePutTokenError(w http.ResponseWriter, r *http.Request) {
	te, ok := readAdminJSON[TokenError](w, r, "token error")
	if !ok {
		return
	}
	te, err := s.SetTokenError(te)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, te)
}

func (s *Sim) handleDeleteTokenError(w http.ResponseWriter, _ *http.Request) {
	s.ClearTokenError()
	w.WriteHeader(http.StatusNoContent)
}
