package concur

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// The calls whose failures say how far they got.
const (
	doList  = "list"
	doClose = "close" // v1.1
	doAsync = "async" // v1.2
	doFile  = "file"
)

var allCalls = []string{doList, doClose, doAsync, doFile}

// invokeCall runs one of the calls against the Concur at base.
func invokeCall(ctx context.Context, c *Client, base, which string) error {
	switch which {
	case doClose:
		return invoke(ctx, c, base, opClose)
	case doAsync:
		_, err := c.CloseBatchAsync(ctx, base+"/api/expense/paymentbatch/v1.1/batch/K3y$1")
		return err
	case doFile:
		return invoke(ctx, c, base, opFile)
	}
	return invoke(ctx, c, base, opList)
}

func wantDelivery(t *testing.T, err error, want batch.Delivery) {
	t.Helper()
	if err == nil {
		t.Fatal("the call succeeded: want an error")
	}
	if _, ok := errors.AsType[*batch.Error](err); !ok {
		t.Fatalf("error %v (%T) is not a *batch.Error", err, err)
	}
	if got := batch.DeliveryOf(err); got != want {
		t.Errorf("Delivery = %s, want %s (error: %v)", got, want, err)
	}
}

// Every answer of Concur's API, and every failure to get one, says whether the request
// can have reached Concur and made it act: one try, against a scripted Concur.
func TestDeliveryOfEachFailure(t *testing.T) {
	t.Parallel()
	businessMsg := func(msg string) step {
		return func(w http.ResponseWriter, r *http.Request) { writeXMLError(w, http.StatusInternalServerError, msg) }
	}
	tests := []struct {
		name   string
		calls  []string // default: all
		step   step
		mutate func(*Config)
		want   batch.Delivery
	}{
		{name: "400", step: serveStatus(400), want: batch.Answered},
		{name: "401", step: serveStatus(401), want: batch.Answered},
		{name: "403", step: serveStatus(403), want: batch.Answered},
		{name: "404", step: serveStatus(404), want: batch.Answered},
		{name: "409", step: serveStatus(409), want: batch.Answered},
		{name: "429", step: serveStatus(429, "Retry-After", "0"), want: batch.Answered},
		{name: "503 maintenance", step: serveStatus(503), want: batch.Answered},
		{name: "503 from a proxy", step: serveHTML(503), want: batch.Answered},
		{name: "close 500 no reports", calls: []string{doClose, doAsync}, step: serveNoReports, want: batch.Answered},
		{name: "close 500 could not be closed", calls: []string{doClose, doAsync},
			step: businessMsg("The specified batch could not be closed."), want: batch.Answered},
		{name: "close 500 other message", calls: []string{doClose, doAsync},
			step: businessMsg("Object reference not set to an instance of an object."), want: batch.MaybeDelivered},
		{name: "500 empty", step: serveEmpty(500), want: batch.MaybeDelivered},
		{name: "500 HTML", step: serveHTML(500), want: batch.MaybeDelivered},
		{name: "502", step: serveHTML(502), want: batch.MaybeDelivered},
		{name: "504", step: serveHTML(504), want: batch.MaybeDelivered},
		{name: "202 without a body", step: serveEmpty(202), want: batch.MaybeDelivered},
		{name: "302", step: serveStatus(302, "Location", "/elsewhere"), want: batch.MaybeDelivered},
		{name: "time-out", step: serveStall, mutate: func(c *Config) { c.Timeout = 200 * time.Millisecond },
			want: batch.MaybeDelivered},
		{name: "connection cut", step: serveReset, want: batch.MaybeDelivered},
		{name: "200 not XML", calls: []string{doList, doClose, doAsync}, step: serveGarbage, want: batch.MaybeDelivered},
		{name: "200 cut", calls: []string{doList, doClose, doAsync}, step: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/xml")
			w.Header().Set("Content-Length", "1000")
			fmt.Fprint(w, "<"+rootFor(r)+"><Status>")
		}, want: batch.MaybeDelivered},
		{name: "dns failure", step: serveOK, mutate: func(c *Config) {
			c.Transport = roundTripFunc(func(*http.Request) (*http.Response, error) {
				return nil, &net.OpError{Op: "dial", Net: "tcp",
					Err: &net.DNSError{Err: "no such host", Name: "concur.invalid", IsNotFound: true}}
			})
		}, want: batch.NotSent},
	}
	for _, tt := range tests {
		calls := tt.calls
		if calls == nil {
			calls = allCalls
		}
		for _, which := range calls {
			t.Run(tt.name+"/"+which, func(t *testing.T) {
				t.Parallel()
				s := newScripted(t, tt.step)
				c, _ := newResilient(t, s.srv.URL, tt.mutate)
				err := invokeCall(t.Context(), c, s.srv.URL, which)
				wantDelivery(t, err, tt.want)
				if which == doClose || which == doAsync {
					if n := s.count(opClose); n > 1 {
						t.Errorf("Concur received %d closes, want at most 1", n)
					}
				}
			})
		}
	}
}

// The failures before anything is sent say NotSent.
func TestDeliveryNotSent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// run makes the call fail.
		run   func(t *testing.T, which string) error
		calls []string // default: all
	}{
		{"connection refused", func(t *testing.T, which string) error {
			base := closedURL(t)
			c, _ := newResilient(t, base, nil)
			return invokeCall(t.Context(), c, base, which)
		}, nil},
		{"caller gone before sending", func(t *testing.T, which string) error {
			s := newScripted(t, serveOK)
			c, _ := newResilient(t, s.srv.URL, nil)
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			return invokeCall(ctx, c, s.srv.URL, which)
		}, nil},
		{"host refused", func(t *testing.T, which string) error {
			s := newScripted(t, serveOK)
			rec := newRecorder(t)
			c, _ := newResilient(t, s.srv.URL, nil)
			err := invokeCall(t.Context(), c, rec.srv.URL, which)
			if n := rec.calls.Load(); n != 0 {
				t.Errorf("the foreign host received %d requests", n)
			}
			return err
		}, []string{doClose, doAsync, doFile}}, // a list goes to the configured host
		{"URL outside the API", func(t *testing.T, which string) error {
			s := newScripted(t, serveOK)
			c, _ := newResilient(t, s.srv.URL, nil)
			switch which {
			case doClose:
				_, err := c.CloseBatch(t.Context(), s.srv.URL+"/other/K3y$1")
				return err
			case doAsync:
				_, err := c.CloseBatchAsync(t.Context(), s.srv.URL+"/other/K3y$1")
				return err
			case doFile:
				_, err := c.OpenFile(t.Context(), s.srv.URL+"/other/file")
				return err
			}
			return c.ListBatches(t.Context(), batch.ListStatus("BOGUS"), func(batch.Summary) error { return nil })
		}, nil},
		{"breaker open", func(t *testing.T, which string) error {
			s := newScripted(t, serveOK, serveHTML(502))
			c, _ := newResilient(t, s.srv.URL, func(c *Config) { c.BreakerThreshold = 1 })
			_ = invokeCall(t.Context(), c, s.srv.URL, doList) // opens the breaker
			err := invokeCall(t.Context(), c, s.srv.URL, which)
			wantRefused(t, err)
			return err
		}, nil},
		{"no slot", func(t *testing.T, which string) error {
			arrived, release := make(chan struct{}), make(chan struct{})
			s := newScripted(t, serveOK, serveHeld(arrived, release, serveOK))
			c, _ := newResilient(t, s.srv.URL, func(c *Config) { c.MaxConcurrent = 1 })
			held := make(chan error, 1)
			go func() { held <- invokeCall(t.Context(), c, s.srv.URL, doList) }()
			awaitArrival(t, arrived, held)
			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			defer cancel()
			err := invokeCall(ctx, c, s.srv.URL, which)
			close(release)
			if e := <-held; e != nil {
				t.Errorf("the held call: %v", e)
			}
			return err
		}, nil},
		{"no rate turn", func(t *testing.T, which string) error {
			s := newScripted(t, serveOK)
			c, _ := newResilient(t, s.srv.URL, func(c *Config) { c.RateLimit = 0.001 })
			if err := invokeCall(t.Context(), c, s.srv.URL, doList); err != nil {
				t.Fatal(err) // takes the one turn
			}
			return invokeCall(t.Context(), c, s.srv.URL, which)
		}, nil},
		{"token endpoint fails", func(t *testing.T, which string) error {
			f := newFake(t)
			f.set(func(f *fakeConcur) { f.tokenFail = func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) } })
			c, _ := newClient(t, f, nil)
			err := invokeCall(t.Context(), c, f.srv.URL, which)
			if n := f.apiCalls.Load(); n != 0 {
				t.Errorf("Concur's API received %d requests", n)
			}
			return err
		}, nil},
		{"refresh token refused", func(t *testing.T, which string) error {
			f := newFake(t)
			f.set(func(f *fakeConcur) { clear(f.refresh) })
			c, _ := newClient(t, f, nil)
			return invokeCall(t.Context(), c, f.srv.URL, which)
		}, nil},
	}
	for _, tt := range tests {
		calls := tt.calls
		if calls == nil {
			calls = allCalls
		}
		for _, which := range calls {
			t.Run(tt.name+"/"+which, func(t *testing.T) {
				t.Parallel()
				wantDelivery(t, tt.run(t, which), batch.NotSent)
			})
		}
	}
}

// A 401/403 is answered; when the renewal that follows fails, the retry was never sent:
// the call did not act, whatever it was.
func TestDeliveryRefusedThenRenewalFails(t *testing.T) {
	t.Parallel()
	for _, which := range allCalls {
		t.Run(which, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			c, _ := newClient(t, f, nil)
			list(t, c)
			f.revokeAccess()
			f.set(func(f *fakeConcur) { clear(f.refresh) }) // the renewal gets invalid_grant
			err := invokeCall(t.Context(), c, f.srv.URL, which)
			wantCode(t, err, batch.CodeUpstreamAuthFailed)
			if d := batch.DeliveryOf(err); d == batch.MaybeDelivered {
				t.Errorf("Delivery = %s: the refused request did not act and the retry was not sent", d)
			}
		})
	}
}

// A call tried more than once says the strongest delivery of its tries: a close renewed
// after a 403 whose retry times out may have acted; a list whose first try may have
// reached Concur says so even when the last try was answered or refused.
func TestDeliveryStrongestOfTries(t *testing.T) {
	t.Parallel()
	t.Run("close retried after 403 times out", func(t *testing.T) {
		t.Parallel()
		for _, which := range []string{doClose, doAsync} {
			f := newFake(t)
			c, _ := newClient(t, f, func(c *Config) { c.Timeout = 300 * time.Millisecond })
			list(t, c)
			f.revokeAccess()
			f.set(func(f *fakeConcur) { f.api = serveStall })
			wantDelivery(t, invokeCall(t.Context(), c, f.srv.URL, which), batch.MaybeDelivered)
		}
	})
	tests := []struct {
		name   string
		steps  []step
		mutate func(*Config)
		want   batch.Delivery
	}{
		{"cut, then 503", []step{serveReset, serveStatus(503)}, nil, batch.MaybeDelivered},
		{"502, then 404", []step{serveHTML(502), serveStatus(404)}, nil, batch.MaybeDelivered},
		{"503, then 503", []step{serveStatus(503), serveStatus(503)}, nil, batch.Answered},
		{"503, then the breaker opens", []step{serveStatus(503)},
			func(c *Config) { c.BreakerThreshold = 1 }, batch.Answered},
		{"cut, then the breaker opens", []step{serveReset},
			func(c *Config) { c.BreakerThreshold = 1 }, batch.MaybeDelivered},
	}
	for _, tt := range tests {
		for _, which := range []string{doList, doFile} {
			t.Run(tt.name+"/"+which, func(t *testing.T) {
				t.Parallel()
				s := newScripted(t, serveStatus(503), tt.steps...)
				c, _ := newResilient(t, s.srv.URL, func(c *Config) {
					c.MaxAttempts = 2
					if tt.mutate != nil {
						tt.mutate(c)
					}
				})
				wantDelivery(t, invokeCall(t.Context(), c, s.srv.URL, which), tt.want)
			})
		}
	}
}
