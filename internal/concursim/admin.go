package concursim

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
)

// Stats counts what the simulator has seen since New.
type Stats struct {
	Requests        map[string]int `json:"requests"`        // per operation (token, list, close, file): every request, faulted and refused ones too
	TokenRequests   int            `json:"tokenRequests"`   // calls the token endpoint handled (not those a fault or chaos answered)
	TokenRefreshes  int            `json:"tokenRefreshes"`  // successful refreshes
	InvalidGrants   int            `json:"invalidGrants"`   // unknown, reused or old refresh tokens
	ListCalls       int            `json:"listCalls"`       // authorised batch-list calls
	Unauthorized    int            `json:"unauthorized"`    // API calls answered 401 or 403 for want of a live token
	ChunkedRejected int            `json:"chunkedRejected"` // close calls refused for chunked bodies
	FilesServed     int            `json:"filesServed"`     // payment files sent

	PasswordGrants     int `json:"passwordGrants"`     // successful request-token exchanges
	PasswordRefusals   int `json:"passwordRefusals"`   // refused ones (codes 5, 108, 120, 136)
	TokenErrors        int `json:"tokenErrors"`        // token answers an injected TokenError made
	WrongHostRefreshes int `json:"wrongHostRefreshes"` // refreshes at GLZ answered code 16
	WrongHostCalls     int `json:"wrongHostCalls"`     // API calls refused at GLZ (also in Unauthorized)
	// RefreshTokenExpiry is the expiry, in epoch seconds, of the newest refresh token issued
	// (refresh_expires_in of the last grant; at first the configured one's); 0: none.
	RefreshTokenExpiry int64 `json:"refreshTokenExpiry"`
	// CorrelationIDs are the last 100 concur-correlationid values sent, newest last.
	CorrelationIDs []Correlation `json:"correlationIds"`

	Chaos ChaosStats `json:"chaos"` // what chaos did (see [Chaos])

	Closes        map[string]int `json:"closes"`        // per BatchID: successful v1.1 closes, regenerations included
	Regenerations map[string]int `json:"regenerations"` // per BatchID: v1.1 closes of an already closed batch
	AsyncCloses   map[string]int `json:"asyncCloses"`   // per BatchID: v1.2 closes accepted

	// IssuedTokens lists the access and refresh tokens issued (the first maxIssuedKept),
	// so tests can prove none of them leaks into a client's logs or answers.
	IssuedTokens []string `json:"issuedTokens"`
	// PresentedTokens lists the refresh tokens clients presented, redeemed or refused, and
	// RedeemedTokens those redeemed, in order (the first maxIssuedKept of each): a client
	// that presents a spent token shows in the difference.
	PresentedTokens []string `json:"presentedTokens"`
	RedeemedTokens  []string `json:"redeemedTokens"`
}

// maxIssuedKept bounds IssuedTokens, so a long-running simulator does not grow.
const maxIssuedKept = 1000

func newStats() Stats {
	return Stats{Requests: map[string]int{}, Closes: map[string]int{}, Regenerations: map[string]int{}, AsyncCloses: map[string]int{}}
}

// Stats returns a copy of the counters.
func (s *Sim) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Closes = maps.Clone(s.stats.Closes)
	st.Regenerations = maps.Clone(s.stats.Regenerations)
	st.AsyncCloses = maps.Clone(s.stats.AsyncCloses)
	st.Requests = maps.Clone(s.stats.Requests)
	st.IssuedTokens = slices.Clone(s.stats.IssuedTokens)
	st.PresentedTokens = slices.Clone(s.stats.PresentedTokens)
	st.RedeemedTokens = slices.Clone(s.stats.RedeemedTokens)
	st.CorrelationIDs = slices.Clone(s.stats.CorrelationIDs)
	st.Chaos.ByOp = maps.Clone(s.stats.Chaos.ByOp)
	return st
}

// maxFaultBytes bounds the body of PUT /_sim/fault.
const maxFaultBytes = 16 << 10

func (s *Sim) handleStats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Stats())
}

// handleGetFault answers the current fault, or null.
func (s *Sim) handleGetFault(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	var f *Fault
	if s.fault != nil {
		c := *s.fault
		f = &c
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, f)
}

// readAdminJSON decodes an admin request's JSON body (bounded, unknown fields refused) as
// a T, or answers 400 naming what it should have been and reports false.
func readAdminJSON[T any](w http.ResponseWriter, r *http.Request, what string) (T, bool) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxFaultBytes))
	dec.DisallowUnknownFields()
	var v T
	if err := dec.Decode(&v); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid " + what + " JSON: " + err.Error()})
		return v, false
	}
	return v, true
}

// handlePutFault installs the Fault in the JSON body and echoes it.
func (s *Sim) handlePutFault(w http.ResponseWriter, r *http.Request) {
	f, ok := readAdminJSON[Fault](w, r, "fault")
	if !ok {
		return
	}
	if err := f.validate(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	s.SetFault(f)
	writeJSON(w, http.StatusOK, f)
}

func (s *Sim) handleDeleteFault(w http.ResponseWriter, _ *http.Request) {
	s.ClearFault()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Sim) handleExpireTokens(w http.ResponseWriter, _ *http.Request) {
	s.ExpireAccessTokens()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Sim) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok"))
}

// maxChaosBytes bounds the body of PUT /_sim/chaos.
const maxChaosBytes = 16 << 10

// handleGetChaos answers the installed chaos (with its seed), or null.
func (s *Sim) handleGetChaos(w http.ResponseWriter, _ *http.Request) {
	var c *Chaos
	if cfg := s.Chaos(); cfg.Seed != 0 {
		c = &cfg
	}
	writeJSON(w, http.StatusOK, c)
}

// handlePutChaos installs the Chaos in the JSON body and echoes it, defaults filled in.
func (s *Sim) handlePutChaos(w http.ResponseWriter, r *http.Request) {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, maxChaosBytes)); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid chaos JSON: " + err.Error()})
		return
	}
	c, err := ParseChaos(buf.Bytes())
	if err == nil {
		c, err = s.SetChaos(c)
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (s *Sim) handleDeleteChaos(w http.ResponseWriter, _ *http.Request) {
	s.ClearChaos()
	w.WriteHeader(http.StatusNoContent)
}
