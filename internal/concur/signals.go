package concur

import (
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode"
)

// What Concur tells its clients beside its answers, that an operator must hear: a
// deprecated endpoint answers with Sunset (RFC 8594: the date it stops) and x-api-warn
// headers (since 2026; Concur's policy keeps a deprecated API at least 12 months), and the
// grant's refresh token has an expiry that the keep-alive must keep ahead of.

// The kinds of Signal.
const (
	SignalSunset          = "sunset"           // a Sunset header; At is its date when it parses
	SignalAPIWarn         = "api_warn"         // an x-api-warn header
	SignalRefreshExpiring = "refresh_expiring" // the refresh token expires within the keep-alive margin; At is when
	SignalKeepAliveFailed = "keepalive_failed" // a renewal of the keep-alive failed; Value is why
)

// Signal is told to Config.OnSignal once per distinct kind and value (a value told again
// after it was gone for sunsetForget is told again), and for a header at most one new
// value a minute.
type Signal struct {
	Kind      string
	Operation string    // OpToken, OpList, OpClose or OpFile: whose answer carried it ("" for the grant's)
	Value     string    // the header's value, cleaned; or the refresh's failure
	At        time.Time // Sunset's date; the refresh token's expiry; zero when none
}

// Signals is what the Client last heard, for /readyz and metrics.
type Signals struct {
	// RefreshExpiry is when the refresh token of the grant in use expires; zero when
	// unknown (no grant yet, or Concur did not say).
	RefreshExpiry time.Time
	// RefreshExpiring: RefreshExpiry is within the keep-alive margin, so the keep-alive has
	// not managed to renew it (or Concur did not extend it): a person must look.
	RefreshExpiring bool
	// KeepAliveError is why the keep-alive's last renewal failed, as a caller may see it
	// (its code and detail); "" after a success.
	KeepAliveError  string
	Sunset          time.Time // the earliest Sunset date Concur announced; zero when none
	SunsetValue     string    // that Sunset header as sent ("" when none)
	SunsetOperation string    // the operation whose answer announced it
	APIWarn         string    // the latest x-api-warn; "" when none
	APIWarnOp       string
}

const (
	maxSignalValue  = 256            // a header value is cut to this before it is kept or told
	maxSignalsTold  = 64             // distinct values remembered as told; beyond, the oldest are forgotten
	sunsetForget    = 24 * time.Hour // a header not seen again for this long is dropped (a Sunset: once its date passed too)
	headerTellEvery = time.Minute    // at most one new value of a header told per this
)

// signals keeps what Concur's answers said. Safe for concurrent use.
type signals struct {
	on  func(Signal)
	now func() time.Time

	mu          sync.Mutex
	told        map[string]time.Time // kind+"\x00"+value -> last seen
	toldKind    map[string]time.Time // kind -> when a header of it was last told
	sunset      time.Time
	sunsetValue string
	sunsetOp    string
	sunsetSeen  time.Time
	apiWarn     string
	apiWarnOp   string
	apiWarnSeen time.Time
}

func newSignals(on func(Signal)) *signals {
	return &signals{on: on, now: time.Now, told: map[string]time.Time{}, toldKind: map[string]time.Time{}}
}

// answered reads the deprecation headers of an answer to op.
func (s *signals) answered(op string, h http.Header) {
	sunset, warn := cleanSignal(h.Get("Sunset")), cleanSignal(h.Get("X-Api-Warn"))
	if sunset == "" && warn == "" {
		return
	}
	now := s.now()
	var tell []Signal
	s.mu.Lock()
	if sunset != "" {
		at, err := http.ParseTime(sunset)
		if err != nil {
			at = time.Time{}
		}
		stale := s.sunsetValue == "" || now.Sub(s.sunsetSeen) > sunsetForget
		earlier := !at.IsZero() && (s.sunset.IsZero() || at.Before(s.sunset))
		if stale || earlier || sunset == s.sunsetValue { // the earliest date announced wins
			s.sunset, s.sunsetValue, s.sunsetOp, s.sunsetSeen = at.UTC(), sunset, op, now
		}
		if s.newsLocked(SignalSunset, sunset, now) {
			tell = append(tell, Signal{Kind: SignalSunset, Operation: op, Value: sunset, At: at})
		}
	}
	if warn != "" {
		s.apiWarn, s.apiWarnOp, s.apiWarnSeen = warn, op, now
		if s.newsLocked(SignalAPIWarn, warn, now) {
			tell = append(tell, Signal{Kind: SignalAPIWarn, Operation: op, Value: warn})
		}
	}
	s.mu.Unlock()
	s.tell(tell...)
}

// firstLocked records kind and value as seen now and reports whether they are news: never
// told, or gone for longer than sunsetForget.
func (s *signals) firstLocked(kind, value string, now time.Time) bool {
	key := kind + "\x00" + value
	last, seen := s.told[key]
	s.told[key] = now
	if !seen && len(s.told) > maxSignalsTold {
		var oldest string
		for k, t := range s.told {
			if oldest == "" || t.Before(s.told[oldest]) {
				oldest = k
			}
		}
		delete(s.told, oldest)
	}
	return !seen || now.Sub(last) > sunsetForget
}

// newsLocked reports whether a header's value is to be told now, and if so records it as
// told: it is news (firstLocked) and no other value of the header was told within
// headerTellEvery, so that a header whose value changes at every answer (an id or a time in
// it) does not become a log line per answer. A value held back is not recorded: it is told
// when it comes again after the minute. Signals shows the latest either way.
func (s *signals) newsLocked(kind, value string, now time.Time) bool {
	key := kind + "\x00" + value
	if last, seen := s.told[key]; seen && now.Sub(last) <= sunsetForget {
		s.told[key] = now // still seen: not news
		return false
	}
	if last, ok := s.toldKind[kind]; ok && now.Sub(last) < headerTellEvery {
		return false
	}
	s.toldKind[kind] = now
	return s.firstLocked(kind, value, now)
}

// once tells sig unless its kind and value were told already (and seen since).
func (s *signals) once(sig Signal) {
	s.mu.Lock()
	first := s.firstLocked(sig.Kind, sig.Value, s.now())
	s.mu.Unlock()
	if first {
		s.tell(sig)
	}
}

// forget makes the next once of kind tell again, whatever its value: the condition ended.
func (s *signals) forget(kind string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.told {
		if strings.HasPrefix(k, kind+"\x00") {
			delete(s.told, k)
		}
	}
}

func (s *signals) tell(sigs ...Signal) {
	if s.on == nil {
		return
	}
	for _, sig := range sigs {
		s.on(sig)
	}
}

// snapshot is the deprecation part of Signals.
func (s *signals) snapshot() Signals {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out Signals
	if s.sunsetValue != "" && (now.Sub(s.sunsetSeen) <= sunsetForget || now.Before(s.sunset)) { // kept until its date
		out.Sunset, out.SunsetValue, out.SunsetOperation = s.sunset, s.sunsetValue, s.sunsetOp
	}
	if s.apiWarn != "" && now.Sub(s.apiWarnSeen) <= sunsetForget {
		out.APIWarn, out.APIWarnOp = s.apiWarn, s.apiWarnOp
	}
	return out
}

// cleanSignal is a header value fit for a log line and an answer: printable, trimmed,
// at most maxSignalValue bytes.
func cleanSignal(v string) string {
	v = strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, v)
	v = strings.TrimSpace(v)
	if len(v) > maxSignalValue {
		v = strings.ToValidUTF8(v[:maxSignalValue], "")
	}
	return v
}

// signalTransport reads the deprecation headers of every answer.
type signalTransport struct {
	base http.RoundTripper
	sig  *signals
}

func (t *signalTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if resp != nil {
		t.sig.answered(Operation(req), resp.Header)
	}
	return resp, err
}
