package concursim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Chaos makes a random share of the token and API requests fail, for load and resilience
// tests, where [Fault] makes every matching request fail the same way. Each request an
// op applies to draws once: with probability Reset the connection is dropped without an
// answer, with Status5xx Concur answers with an outage, with Slow it answers only after
// SlowFor; otherwise normally. A [Fault] that matches a request takes precedence.
//
// What each outcome does, and why (Concur's side of a failure decides whether the client
// can recover, so the simulator stays faithful and the tests stay deterministic):
//
//   - Reset on the token endpoint drops the request before Concur processes it: the refresh
//     token is not rotated, the client may redeem it again. (A reset after the rotation
//     loses the grant for good, as it would at Concur: no client can recover without a
//     person. That case is the explicit fault {"op":"token","mode":"lost"}, not chaos.)
//   - Reset on a close: half of them (by the same random source) drop the request before
//     the close, the other half close the batch and then drop the answer, as when the
//     network fails on the way back. The latter are counted in ChaosStats.LostCloses.
//   - Reset on the batch list or a file: dropped before anything is done.
//   - Status5xx: an outage, never a business answer and never acted upon: 503 with
//     Concur's XML error (maintenance), 502 or 504 with an HTML page (a proxy in front of
//     Concur), or 500 with an empty body. Never a 500 with an XML message, which on a
//     close is Concur's "no reports" business answer. The token endpoint answers 503 or
//     500 with an OAuth JSON error, or 502 with HTML; nothing is rotated.
//   - Slow on a close: Concur closes the batch at once and the answer comes SlowFor
//     later; if the client gives up first, the answer is lost (counted in LostCloses, when
//     the close succeeded). So a batch list read after a timed-out close already shows
//     the batch CLOSED, as the gateway's unknown-outcome check expects of Concur.
//   - Slow on the token endpoint, the list and files: the request waits SlowFor before it
//     is processed, and is dropped unprocessed if the client gives up first, so a refresh
//     token is never rotated behind a client's back. SlowFor should be well beyond the
//     client's time-out (a client that gives up exactly as SlowFor ends may or may not
//     have its request processed, as with any server).
//
// The draws come from a PCG source seeded with Seed (a random seed when 0, shown by GET
// /_sim/chaos): the sequence of outcomes is reproducible, their assignment to concurrent
// requests is not.
type Chaos struct {
	Reset     float64  `json:"reset"`             // share of requests dropped without an answer, 0..1
	Status5xx float64  `json:"status5xx"`         // share answered with an outage 5xx, 0..1
	Slow      float64  `json:"slow"`              // share answered after SlowFor, 0..1
	SlowFor   Duration `json:"slowFor,omitempty"` // default 5s
	Seed      uint64   `json:"seed,omitempty"`    // 0: a random seed
	// Ops are the operations chaos applies to: "token", "list", "close", "file"; default all.
	Ops []string `json:"ops,omitempty"`
}

// defaultSlowFor is Chaos.SlowFor when unset.
const defaultSlowFor = 5 * time.Second

// maxSlowFor bounds Chaos.SlowFor: a slow answer holds a connection and a goroutine.
const maxSlowFor = 10 * time.Minute

var chaosOps = []string{"token", "list", "close", "file"}

// ChaosCounts counts what chaos did to requests.
type ChaosCounts struct {
	Requests  int `json:"requests"`  // requests that drew an outcome while chaos was on
	Resets    int `json:"resets"`    // connections dropped without an answer
	Status5xx int `json:"status5xx"` // outage answers
	Slow      int `json:"slow"`      // slow answers (or requests dropped because the client left)
}

// ChaosStats is Stats.Chaos: totals, per operation, and the closes whose answer was lost.
type ChaosStats struct {
	ChaosCounts
	// LostCloses counts closes Concur made whose answer the client never got: a reset
	// after the close, or a slow answer the client did not wait for. Each is also in
	// Stats.Closes.
	LostCloses int                    `json:"lostCloses"`
	ByOp       map[string]ChaosCounts `json:"byOp"` // null until chaos first drew
}

// ParseChaos reads a Chaos from JSON (unknown fields refused), validates it and fills in
// its defaults, as PUT /_sim/chaos and CONCURSIM_CHAOS do.
func ParseChaos(b []byte) (Chaos, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c Chaos
	if err := dec.Decode(&c); err != nil {
		return Chaos{}, fmt.Errorf("invalid chaos JSON: %w", err)
	}
	if dec.More() {
		return Chaos{}, errors.New("invalid chaos JSON: more than one value")
	}
	if err := c.validate(); err != nil {
		return Chaos{}, err
	}
	return c.withDefaults(), nil
}

func (c Chaos) validate() error {
	var errs []error
	for _, p := range []struct {
		name string
		v    float64
	}{{"reset", c.Reset}, {"status5xx", c.Status5xx}, {"slow", c.Slow}} {
		if math.IsNaN(p.v) || p.v < 0 || p.v > 1 {
			errs = append(errs, fmt.Errorf("%s %v: want a probability from 0 to 1", p.name, p.v))
		}
	}
	if sum := c.Reset + c.Status5xx + c.Slow; sum > 1+1e-9 {
		errs = append(errs, fmt.Errorf("reset + status5xx + slow = %v: want at most 1", sum))
	}
	if c.SlowFor < 0 || time.Duration(c.SlowFor) > maxSlowFor {
		errs = append(errs, fmt.Errorf("slowFor %v: want 0 (default %v) to %v", time.Duration(c.SlowFor), defaultSlowFor, maxSlowFor))
	}
	for _, op := range c.Ops {
		if !slices.Contains(chaosOps, op) {
			errs = append(errs, fmt.Errorf("op %q: want one of %s", op, strings.Join(chaosOps, ", ")))
		}
	}
	return errors.Join(errs...)
}

// withDefaults fills in SlowFor, Seed and Ops (sorted, every op when none).
func (c Chaos) withDefaults() Chaos {
	if c.SlowFor == 0 {
		c.SlowFor = Duration(defaultSlowFor)
	}
	for c.Seed == 0 {
		c.Seed = rand.Uint64() // #nosec G404 -- simulator chaos seed, not a secret
	}
	ops := c.Ops
	if len(ops) == 0 {
		ops = chaosOps
	}
	c.Ops = slices.Compact(slices.Sorted(slices.Values(ops))) // a new slice, sorted: idempotent
	return c
}

// chaosState is the installed chaos and its random source; guarded by Sim.mu.
type chaosState struct {
	cfg Chaos
	rng *rand.Rand
}

// SetChaos validates c, fills in its defaults and installs it, replacing any chaos (and
// restarting its random sequence). It returns what was installed.
func (s *Sim) SetChaos(c Chaos) (Chaos, error) {
	if err := c.validate(); err != nil {
		return Chaos{}, err
	}
	c = c.withDefaults()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.chaos = &chaosState{cfg: c, rng: rand.New(rand.NewPCG(c.Seed, c.Seed^0x9e3779b97f4a7c15))} // #nosec G404 -- chaos replayable from its seed, by design
	return c, nil
}

// ClearChaos turns chaos off. Its counters stay in Stats.
func (s *Sim) ClearChaos() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.chaos = nil
}

// Chaos returns the installed chaos, with its defaults and seed, or the zero Chaos.
func (s *Sim) Chaos() Chaos {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.chaos == nil {
		return Chaos{}
	}
	c := s.chaos.cfg
	c.Ops = slices.Clone(c.Ops)
	return c
}

// chaosOutcome is what one request drew.
type chaosOutcome int

const (
	chaosNone chaosOutcome = iota
	chaosReset
	chaos5xx
	chaosSlow
)

// chaosDraw is one request's draw: its outcome, a second draw that picks a variant (which
// 5xx; for a reset of a close, before or after it), and SlowFor.
type chaosDraw struct {
	outcome chaosOutcome
	variant float64
	slowFor time.Duration
}

// drawChaos draws an outcome for a request of op and counts it.
func (s *Sim) drawChaos(op string) chaosDraw {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.chaos
	if c == nil || !slices.Contains(c.cfg.Ops, op) {
		return chaosDraw{}
	}
	u, variant := c.rng.Float64(), c.rng.Float64()
	d := chaosDraw{variant: variant, slowFor: time.Duration(c.cfg.SlowFor)}
	switch {
	case u < c.cfg.Reset:
		d.outcome = chaosReset
	case u < c.cfg.Reset+c.cfg.Status5xx:
		d.outcome = chaos5xx
	case u < c.cfg.Reset+c.cfg.Status5xx+c.cfg.Slow:
		d.outcome = chaosSlow
	}
	s.countChaosLocked(op, d.outcome)
	return d
}

func (s *Sim) countChaosLocked(op string, o chaosOutcome) {
	st := &s.stats.Chaos
	if st.ByOp == nil {
		st.ByOp = map[string]ChaosCounts{}
	}
	per := st.ByOp[op]
	for _, c := range []*ChaosCounts{&st.ChaosCounts, &per} {
		c.Requests++
		switch o {
		case chaosReset:
			c.Resets++
		case chaos5xx:
			c.Status5xx++
		case chaosSlow:
			c.Slow++
		}
	}
	st.ByOp[op] = per
}

// serveChaos serves r through next, unless chaos picks another outcome for it.
func (s *Sim) serveChaos(op string, next http.Handler, w http.ResponseWriter, r *http.Request) {
	d := s.drawChaos(op)
	switch d.outcome {
	case chaosNone:
		next.ServeHTTP(w, r)
	case chaosReset:
		if op == "close" && d.variant < 0.5 {
			rec := &capture{h: http.Header{}}
			next.ServeHTTP(rec, r) // Concur closes the batch; the answer is lost on the way
			s.countLostClose(rec)
		}
		reset(w)
	case chaos5xx:
		s.writeOutage(w, op, d.variant)
	case chaosSlow:
		if op == "close" {
			s.slowClose(next, w, r, d.slowFor)
			return
		}
		bufferBody(r)
		if waitOrLeave(r, d.slowFor) {
			next.ServeHTTP(w, r)
		}
	}
}

// bufferBody reads r's body (the token form) into memory and puts it back. The server
// watches for the client leaving only once the body has been read; unread, a slow token
// request would be processed, and its refresh token rotated, after the client gave up.
func bufferBody(r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody {
		return
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxFormBytes+1))
	if err != nil {
		b = nil // the client is gone or sent garbage: the handler sees an empty form
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
}

// slowClose closes at once and answers after delay, unless the client left first.
func (s *Sim) slowClose(next http.Handler, w http.ResponseWriter, r *http.Request, delay time.Duration) {
	rec := &capture{h: http.Header{}}
	next.ServeHTTP(rec, r)
	if !waitOrLeave(r, delay) {
		s.countLostClose(rec)
		return
	}
	for k, v := range rec.h {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.statusOr200())
	_, _ = w.Write(rec.body.Bytes())
}

func (s *Sim) countLostClose(rec *capture) {
	if rec.statusOr200() == http.StatusOK {
		s.count(func(st *Stats) { st.Chaos.LostCloses++ })
	}
}

// waitOrLeave waits d; it reports false if the client left first.
func waitOrLeave(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return r.Context().Err() == nil
	case <-r.Context().Done():
		return false
	}
}

// writeOutage answers with one of the outage statuses; variant (0..1) picks which.
func (s *Sim) writeOutage(w http.ResponseWriter, op string, variant float64) {
	if op == "token" {
		switch {
		case variant < 1.0/3:
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{
				"error": "temporarily_unavailable", "error_description": "The service is temporarily unavailable."})
		case variant < 2.0/3:
			writeJSON(w, http.StatusInternalServerError, map[string]any{
				"error": "server_error", "error_description": "An unexpected error occurred."})
		default:
			writeHTMLStatus(w, http.StatusBadGateway)
		}
		return
	}
	switch {
	case variant < 0.25:
		s.writeError(w, http.StatusServiceUnavailable, "The service is temporarily unavailable for maintenance.")
	case variant < 0.5:
		writeHTMLStatus(w, http.StatusBadGateway)
	case variant < 0.75:
		writeHTMLStatus(w, http.StatusGatewayTimeout)
	default:
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusInternalServerError)
	}
}

// writeHTMLStatus answers like a proxy in front of Concur: an HTML page.
func writeHTMLStatus(w http.ResponseWriter, code int) {
	page := fmt.Sprintf("<!DOCTYPE html>\n<html><head><title>%d %s</title></head>"+
		"<body><h1>%[1]d %[2]s</h1><p>The gateway could not reach the server.</p></body></html>\n",
		code, http.StatusText(code))
	writeRaw(w, code, "text/html; charset=utf-8", []byte(page))
}

// capture is a ResponseWriter that keeps the answer, to send it later or never.
type capture struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (c *capture) Header() http.Header { return c.h }
func (c *capture) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
}

func (c *capture) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	return c.body.Write(b)
}

func (c *capture) statusOr200() int {
	if c.status == 0 {
		return http.StatusOK
	}
	return c.status
}
