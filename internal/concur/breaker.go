package concur

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// Breaker names, as Config.OnBreakerStateChange receives them.
const (
	BreakerAPI   = "concur-api"   // list, close and file calls
	BreakerToken = "concur-token" // the OAuth2 token endpoint
)

// Breaker states, as Config.OnBreakerStateChange receives them.
const (
	BreakerClosed   = "closed"
	BreakerOpen     = "open"
	BreakerHalfOpen = "half-open"
)

// ErrCircuitOpen is the cause (errors.Is) of every call refused by an open or half-open
// breaker: nothing was sent to Concur. Its code is upstream_unavailable.
var ErrCircuitOpen = errors.New("concur: circuit open")

// halfOpenWait is the Retry-After of a call refused while the one probe is in flight.
const halfOpenWait = time.Second

// verdict is what one admitted call says about Concur's health.
type verdict int

const (
	healthy verdict = iota // Concur answered as designed (200, a 4xx, the no-reports 500)
	failing                // an outage: 5xx, time-out, connection failure
	neutral                // says nothing: the caller left, throttling, nothing sent
)

// verdict errors, as gobreaker wants them: nil is a success, errNeutral is excluded.
var (
	errFailing = errors.New("failing")
	errNeutral = errors.New("neutral")
)

// breaker is a gobreaker two-step breaker that remembers when it opened and after how many
// failures, so that a refused call can say both.
type breaker struct {
	name     string
	what     string // "Concur" or "Concur's token endpoint", for Details
	interval time.Duration
	cb       *gobreaker.TwoStepCircuitBreaker[struct{}]

	mu       sync.Mutex
	openedAt time.Time
	streak   int // consecutive failures behind the current open state
}

func newBreaker(name, what string, threshold int, interval time.Duration, hook func(name, from, to string)) *breaker {
	b := &breaker{name: name, what: what, interval: interval}
	limit := uint32(1) // New keeps threshold within [1, maxBreakerThreshold]; this tells gosec
	if threshold > 1 && threshold <= maxBreakerThreshold {
		limit = uint32(threshold)
	}
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        name,
		MaxRequests: 1, // one probe when half-open
		Timeout:     interval,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= limit },
		IsExcluded:  func(err error) bool { return errors.Is(err, errNeutral) },
		// Called under gobreaker's lock: record, then tell the caller's hook.
		OnStateChange: func(_ string, from, to gobreaker.State) {
			b.mu.Lock()
			switch {
			case to == gobreaker.StateOpen && from == gobreaker.StateClosed:
				b.openedAt, b.streak = time.Now(), threshold
			case to == gobreaker.StateOpen: // the half-open probe failed
				b.openedAt, b.streak = time.Now(), b.streak+1
			}
			b.mu.Unlock()
			if hook != nil {
				hook(name, from.String(), to.String())
			}
		},
	})
	return b
}

// allow admits a call or refuses it with an upstream_unavailable *batch.Error. An admitted
// call must report its verdict through done exactly once.
func (b *breaker) allow() (done func(verdict), err error) {
	report, err := b.cb.Allow()
	if err != nil {
		return nil, b.refused(errors.Is(err, gobreaker.ErrTooManyRequests))
	}
	var once sync.Once
	return func(v verdict) {
		once.Do(func() {
			switch v {
			case healthy:
				report(nil)
			case failing:
				report(errFailing)
			default:
				report(errNeutral)
			}
		})
	}, nil
}

// refuseIfOpen refuses a call at once while the breaker is open, before it waits for a
// slot. It admits nothing: a call that passes must still be admitted by allow.
func (b *breaker) refuseIfOpen() error {
	if b.cb.State() == gobreaker.StateOpen {
		return b.refused(false)
	}
	return nil
}

func (b *breaker) refused(halfOpen bool) *batch.Error {
	b.mu.Lock()
	openedAt, streak := b.openedAt, b.streak
	b.mu.Unlock()
	e := &batch.Error{Code: batch.CodeUpstreamUnavailable, Delivery: batch.NotSent, Err: ErrCircuitOpen}
	if halfOpen {
		e.RetryAfter = halfOpenWait
		e.Detail = fmt.Sprintf("%s has failed %d times in a row; the gateway is letting one request through "+
			"to see whether it is back (circuit half-open), and did not send this one", b.what, streak)
		return e
	}
	e.RetryAfter = max(time.Until(openedAt.Add(b.interval)), time.Millisecond)
	e.Detail = fmt.Sprintf("%s has failed %d times in a row; the gateway stopped calling it for a while (circuit open)",
		b.what, streak)
	return e
}

// State is the breaker's state: BreakerClosed, BreakerOpen or BreakerHalfOpen.
func (b *breaker) state() string { return b.cb.State().String() }

// verdictOf judges a finished call. caller is the caller's context (a call it cancelled
// says nothing about Concur); fromAPI is false when the call failed before Concur's API
// was asked (credentials, the wait for a slot), which says nothing either.
//
// Failures: 503 and every other 5xx except the close's no-reports 500 (a business answer),
// our own time-outs, connection failures, and an unreadable answer when the reading failed
// (cut or stalled). Not failures: every 4xx (401/403 have the token path; 429 is neutral:
// Concur is up but throttling, and the retry honours its Retry-After), a 200 that cannot
// be parsed (neutral: a shape problem, not an outage), the caller's own cancellation.
func verdictOf(caller context.Context, fromAPI bool, err error) verdict {
	if err == nil {
		return healthy
	}
	e, ok := errors.AsType[*batch.Error](err)
	if !fromAPI || !ok || caller.Err() != nil {
		return neutral
	}
	switch e.Code {
	case batch.CodeUpstreamTimeout, batch.CodeUpstreamUnreachable:
		return failing
	case batch.CodeUpstreamUnavailable:
		if e.Upstream != nil {
			return failing
		}
		return neutral
	case batch.CodeUpstreamBadResponse:
		if e.Upstream != nil && e.Upstream.Status >= 500 {
			return failing
		}
	case batch.CodeUpstreamRateLimited, batch.CodeUpstreamHostRefused:
		return neutral
	}
	if e.Upstream != nil {
		return healthy // Concur answered: a 4xx, a redirect, the no-reports 500
	}
	return neutral
}

// BreakerState reports the state of the named breaker (BreakerAPI or BreakerToken):
// BreakerClosed, BreakerOpen or BreakerHalfOpen; "" for an unknown name.
func (c *Client) BreakerState(name string) string {
	switch name {
	case BreakerAPI:
		return c.api.state()
	case BreakerToken:
		return c.tokens.breaker.state()
	}
	return ""
}
