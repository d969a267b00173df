package concursim

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Deprecation is what Concur sends on a deprecated endpoint since 2026: a Sunset header
// (RFC 9745, an HTTP-date such as "Sat, 31 Oct 2027 23:59:59 GMT") and an x-api-warn
// header of free text. When set, every Payment Batch API answer (list, close, file; errors
// and faults too) carries them; the token endpoint does not. Options.Sunset and
// Options.APIWarn set them from the start, PUT /_sim/deprecation at run time.
type Deprecation struct {
	Sunset  string `json:"sunset,omitempty"`
	APIWarn string `json:"apiWarn,omitempty"`
}

// Deprecation headers.
const (
	HeaderSunset  = "Sunset"
	HeaderAPIWarn = "x-api-warn"
)

// maxAPIWarn bounds Deprecation.APIWarn.
const maxAPIWarn = 1024

// Validate reports a Sunset that is not an HTTP-date (IMF-fixdate) and an APIWarn that
// cannot be a header value.
func (d Deprecation) Validate() error {
	var errs []error
	if d.Sunset != "" {
		if _, err := time.Parse(http.TimeFormat, d.Sunset); err != nil {
			errs = append(errs, fmt.Errorf("sunset %q: want an HTTP-date such as \"Sat, 31 Oct 2027 23:59:59 GMT\"", d.Sunset))
		}
	}
	if len(d.APIWarn) > maxAPIWarn || strings.ContainsFunc(d.APIWarn, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		errs = append(errs, fmt.Errorf("apiWarn: want at most %d bytes of text without control characters", maxAPIWarn))
	}
	return errors.Join(errs...)
}

// SetDeprecation validates and installs d (the zero Deprecation clears it).
func (s *Sim) SetDeprecation(d Deprecation) error {
	if err := d.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.depr = d
	return nil
}

// Deprecation returns the deprecation headers sent, or the zero Deprecation.
func (s *Sim) Deprecation() Deprecation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.depr
}

// deprecated sets the deprecation headers, if any, on every answer of next.
func (s *Sim) deprecated(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := s.Deprecation()
		if d.Sunset != "" {
			w.Header().Set(HeaderSunset, d.Sunset)
		}
		if d.APIWarn != "" {
			w.Header().Set(HeaderAPIWarn, d.APIWarn)
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Sim) handleGetDeprecation(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Deprecation())
}

// handlePutDeprecation installs the Deprecation in the JSON body and echoes it.
func (s *Sim) handlePutDeprecation(w http.ResponseWriter, r *http.Request) {
	d, ok := readAdminJSON[Deprecation](w, r, "deprecation")
	if !ok {
		return
	}
	if err := s.SetDeprecation(d); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Sim) handleDeleteDeprecation(w http.ResponseWriter, _ *http.Request) {
	_ = s.SetDeprecation(Deprecation{})
	w.WriteHeader(http.StatusNoContent)
}
