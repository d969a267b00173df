package concur

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/concursim"
)

// roundTripFunc is a base transport that never touches the network.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// outcomeUnknown reports whether detail tells the caller that the close may or may not
// have happened, to check the batch list first, and why (regeneration).
func outcomeUnknown(detail string) bool {
	d := strings.ToLower(detail)
	return strings.Contains(d, "may or may not have closed the batch") &&
		strings.Contains(d, "check the batch list") && strings.Contains(d, "regenerates its payment file")
}

// acceptedUnreadable reports whether detail tells the caller that Concur accepted the
// close (200), the batch is probably closed, the answer could not be read, and not to
// close again blindly (regeneration).
func acceptedUnreadable(detail string) bool {
	d := strings.ToLower(detail)
	return strings.Contains(d, "accepted the close (http 200)") && strings.Contains(d, "probably closed") &&
		strings.Contains(d, "could not be read") && strings.Contains(d, "do not close it again blindly") &&
		strings.Contains(d, "regenerates its payment file")
}

// A close that may have reached Concur without an answer keeps its code, but says that the
// batch may or may not be closed; a close that certainly was not sent keeps plain wording.
func TestCloseOutcomeUnknown(t *testing.T) {
	t.Parallel()
	slow := &concursim.Fault{Mode: "slow", Delay: concursim.Duration(2 * time.Second)}
	cut := &concursim.Fault{Mode: "reset"} // reads the request, then drops the connection
	// The transport goes on dialling after the request gave up (the connection would serve
	// the next one), so the dial must end with the test, or it outlives it (goleak).
	stopDials := make(chan struct{})
	t.Cleanup(func() { close(stopDials) })
	blockDial := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-stopDials:
			return nil, errors.New("test over")
		}
	}}
	tests := []struct {
		name      string
		op        operation
		fault     *concursim.Fault                         // on the API, once the token is there
		base      func(t *testing.T, f *fakeConcur) string // Config.BaseURL (and the Batch-URL's host); default the fake
		transport http.RoundTripper                        // Config.Transport; with it the token is static
		cancel    time.Duration                            // the caller gives up after this
		code      batch.Code
		unknown   bool // the outcome-unknown wording, else the plain one
	}{
		{name: "time-out after connecting", op: opClose, fault: slow, code: batch.CodeUpstreamTimeout, unknown: true},
		{name: "connection cut after sending", op: opClose, fault: cut, code: batch.CodeUpstreamUnreachable, unknown: true},
		{name: "caller gives up after connecting", op: opClose, fault: slow, cancel: 50 * time.Millisecond,
			code: batch.CodeUpstreamTimeout, unknown: true},
		{name: "opaque transport failure", op: opClose, transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
			return nil, errors.New("stream reset by peer")
		}), code: batch.CodeUpstreamUnreachable, unknown: true},
		{name: "connection refused", op: opClose, base: func(t *testing.T, _ *fakeConcur) string { return closedURL(t) },
			code: batch.CodeUpstreamUnreachable},
		{name: "time-out while connecting", op: opClose, transport: blockDial, code: batch.CodeUpstreamTimeout},
		{name: "dns failure", op: opClose, transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "concur.invalid", IsNotFound: true}}
		}), code: batch.CodeUpstreamUnreachable},
		{name: "list time-out after connecting", op: opList, fault: slow, code: batch.CodeUpstreamTimeout},
		{name: "list connection cut", op: opList, fault: cut, code: batch.CodeUpstreamUnreachable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.AddAccessToken("static-1")
			base := f.srv.URL
			if tt.base != nil {
				base = tt.base(t, f)
			}
			c, _ := newClient(t, f, func(c *Config) {
				c.BaseURL = base
				if tt.code == batch.CodeUpstreamTimeout && tt.cancel == 0 {
					c.Timeout = 500 * time.Millisecond // the case is our own time-out
				}
				if tt.transport != nil {
					c.Transport, c.AccessToken, c.TokenURL, c.RefreshToken = tt.transport, "static-1", "", ""
				}
			})
			c.tokens.get(t.Context()) // take the token endpoint out of the picture
			if tt.fault != nil {
				f.SetFault(*tt.fault)
			}
			ctx := t.Context()
			if tt.cancel != 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				time.AfterFunc(tt.cancel, cancel)
			}
			var err error
			if tt.op == opClose {
				_, err = c.CloseBatch(ctx, batchURL(base))
			} else {
				_, err = listOf(ctx, c, batch.ListOpen)
			}
			e := wantCode(t, err, tt.code)
			if got := outcomeUnknown(e.Detail); got != tt.unknown {
				t.Errorf("Detail = %q; outcome-unknown wording %v, want %v", e.Detail, got, tt.unknown)
			}
			if tt.cancel != 0 && !errors.Is(err, context.Canceled) {
				t.Errorf("errors.Is(err, context.Canceled) = false (%v)", err)
			}
		})
	}
}

// rootFor is the root element of a 200 answer to r.
func rootFor(r *http.Request) string {
	if strings.Contains(r.URL.Path, "/batchlist/") {
		return "BatchList"
	}
	return "BatchStatus"
}

// Concur answered the close with 200 but its answer cannot be read: the code stays, and the
// Detail says that the batch is probably closed and must not be closed again blindly.
func TestCloseAcceptedButUnreadable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		api  http.HandlerFunc
		code batch.Code
	}{
		{"non-XML content type", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, "<html>closed</html>")
		}, batch.CodeUpstreamBadResponse},
		{"malformed XML", serveXML("<BatchStatus><Status>SUCC"), batch.CodeUpstreamBadResponse},
		{"error document", serveXML("<Error><Message>x</Message></Error>"), batch.CodeUpstreamBadResponse},
		{"over the limit", serveXML("<BatchStatus><Status>" + strings.Repeat("x", maxSmallBody) + "</Status></BatchStatus>"),
			batch.CodeUpstreamBadResponse},
		{"body stalls", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/xml")
			fmt.Fprint(w, "<"+rootFor(r)+"><Status>")
			w.(http.Flusher).Flush()
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
		}, batch.CodeUpstreamTimeout},
		{"body cut", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/xml")
			w.Header().Set("Content-Length", "1000")
			fmt.Fprint(w, "<"+rootFor(r)+"><Status>")
		}, batch.CodeUpstreamUnreachable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.serve(tt.api)
			c, _ := newClient(t, f, func(c *Config) {
				if tt.code == batch.CodeUpstreamTimeout {
					c.Timeout = 500 * time.Millisecond // the case is our own time-out
				}
			})
			e := wantCode(t, call(t.Context(), c, f, opClose), tt.code)
			if !acceptedUnreadable(e.Detail) {
				t.Errorf("Detail = %q, want the accepted-but-unreadable wording", e.Detail)
			}
			if outcomeUnknown(e.Detail) {
				t.Errorf("Detail = %q: Concur did answer 200", e.Detail)
			}
			// The same answers to the batch list keep their plain wording.
			e = wantCode(t, call(t.Context(), c, f, opList), tt.code)
			if acceptedUnreadable(e.Detail) || strings.Contains(e.Detail, "close") {
				t.Errorf("list: Detail = %q mentions the close", e.Detail)
			}
		})
	}
}

func TestStatusClassification(t *testing.T) {
	t.Parallel()
	xmlErr := func(msg string) string {
		return "<Error><Message>" + msg + "</Message><Server-Time>2024-03-05T14:02:11</Server-Time><Id>ID-1</Id></Error>"
	}
	html := "<!DOCTYPE html><html><body>Service Unavailable</body></html>"
	tests := []struct {
		name        string
		op          operation
		status      int
		header      map[string]string
		body        string
		code        batch.Code
		retryAfter  time.Duration // checked to the second when non-zero
		message     string        // Upstream.Message
		detail      string        // Detail, when set
		tokenCalls  int64         // when non-zero
		noUpstream  bool
		contentType string // of a 200
	}{
		{name: "400 batch id invalid", op: opClose, status: 400, body: xmlErr("Batch ID 123 is invalid."),
			code: batch.CodeBatchNotFound, message: "Batch ID 123 is invalid."},
		{name: "400 invalid batch id", op: opClose, status: 400, body: xmlErr("INVALID BATCH ID"),
			code: batch.CodeBatchNotFound, message: "INVALID BATCH ID"},
		{name: "400 request limit", op: opClose, status: 400, body: xmlErr("Request limit exceeded"),
			code: batch.CodeUpstreamRejected, message: "Request limit exceeded"},
		{name: "400 empty body", op: opList, status: 400, code: batch.CodeUpstreamRejected},
		{name: "401 after renewal", op: opList, status: 401, body: xmlErr("No auth"),
			code: batch.CodeUpstreamAuthFailed, message: "No auth", tokenCalls: 2},
		{name: "403 after renewal", op: opClose, status: 403, body: xmlErr("Forbidden"),
			code: batch.CodeUpstreamAuthFailed, message: "Forbidden", tokenCalls: 2},
		{name: "404 close", op: opClose, status: 404, body: xmlErr("Not found"), code: batch.CodeBatchNotFound,
			message: "Not found"},
		{name: "404 file", op: opFile, status: 404, code: batch.CodeFileNotFound},
		{name: "404 list", op: opList, status: 404, code: batch.CodeUpstreamBadResponse},
		{name: "409", op: opClose, status: 409, body: xmlErr("Conflict"), code: batch.CodeUpstreamConflict,
			message: "Conflict"},
		{name: "429 default wait", op: opList, status: 429, code: batch.CodeUpstreamRateLimited, retryAfter: time.Minute},
		{name: "429 seconds", op: opClose, status: 429, header: map[string]string{"Retry-After": "7"},
			code: batch.CodeUpstreamRateLimited, retryAfter: 7 * time.Second},
		{name: "429 http date", op: opFile, status: 429,
			header: map[string]string{"Retry-After": time.Now().Add(2 * time.Minute).UTC().Format(http.TimeFormat)},
			code:   batch.CodeUpstreamRateLimited, retryAfter: 2 * time.Minute},
		{name: "503 default wait html", op: opClose, status: 503, body: html,
			code: batch.CodeUpstreamUnavailable, retryAfter: 5 * time.Minute},
		{name: "503 seconds", op: opList, status: 503, header: map[string]string{"Retry-After": "30"},
			code: batch.CodeUpstreamUnavailable, retryAfter: 30 * time.Second},
		{name: "503 Retry-After zero", op: opClose, status: 503, header: map[string]string{"Retry-After": "0"},
			code: batch.CodeUpstreamUnavailable, retryAfter: 5 * time.Minute},
		{name: "503 Retry-After negative", op: opList, status: 503, header: map[string]string{"Retry-After": "-1"},
			code: batch.CodeUpstreamUnavailable, retryAfter: 5 * time.Minute},
		{name: "503 Retry-After past date", op: opFile, status: 503,
			header: map[string]string{"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"},
			code:   batch.CodeUpstreamUnavailable, retryAfter: 5 * time.Minute},
		// Concur's throttle may say retry-after: 0 ("now"): honoured, with a floor of a second.
		{name: "429 Retry-After zero", op: opClose, status: 429, header: map[string]string{"Retry-After": "0"},
			code: batch.CodeUpstreamRateLimited, retryAfter: time.Second},
		{name: "429 Retry-After negative", op: opList, status: 429, header: map[string]string{"Retry-After": "-3"},
			code: batch.CodeUpstreamRateLimited, retryAfter: time.Second},
		{name: "429 Retry-After past date", op: opList, status: 429,
			header: map[string]string{"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"},
			code:   batch.CodeUpstreamRateLimited, retryAfter: time.Second},
		{name: "429 Retry-After garbage", op: opFile, status: 429, header: map[string]string{"Retry-After": "soon"},
			code: batch.CodeUpstreamRateLimited, retryAfter: time.Minute},
		{name: "500 close with message", op: opClose, status: 500, body: xmlErr(notClosableMsg),
			code: batch.CodeBatchNotClosable, message: notClosableMsg, detail: notClosableMsg},
		{name: "500 close empty", op: opClose, status: 500, code: batch.CodeUpstreamBadResponse},
		{name: "500 close html", op: opClose, status: 500, body: html, code: batch.CodeUpstreamBadResponse},
		{name: "500 list with message", op: opList, status: 500, body: xmlErr("Boom"),
			code: batch.CodeUpstreamBadResponse, message: "Boom"},
		{name: "502", op: opClose, status: 502, code: batch.CodeUpstreamBadResponse},
		{name: "418", op: opClose, status: 418, code: batch.CodeUpstreamRejected},
		{name: "302", op: opClose, status: 302, header: map[string]string{"Location": "/elsewhere"},
			code: batch.CodeUpstreamBadResponse},
		{name: "204", op: opClose, status: 204, code: batch.CodeUpstreamBadResponse},
		{name: "202 with body", op: opClose, status: 202, body: "<BatchStatus/>", code: batch.CodeUpstreamBadResponse},
		{name: "200 html", op: opClose, status: 200, contentType: "text/html", body: html,
			code: batch.CodeUpstreamBadResponse, noUpstream: true},
		{name: "200 no content type", op: opList, status: 200, contentType: "-", body: "<BatchList/>",
			code: batch.CodeUpstreamBadResponse, noUpstream: true},
		{name: "200 garbage", op: opList, status: 200, contentType: "application/xml", body: "{\"not\":\"xml\"}",
			code: batch.CodeUpstreamBadResponse, noUpstream: true},
		{name: "200 error document", op: opClose, status: 200, contentType: "application/xml", body: xmlErr("x"),
			code: batch.CodeUpstreamBadResponse, noUpstream: true},
		{name: "200 billion laughs", op: opClose, status: 200, contentType: "application/xml",
			body: billionLaughs("BatchStatus"), code: batch.CodeUpstreamBadResponse, noUpstream: true},
		{name: "200 deep nesting", op: opList, status: 200, contentType: "application/xml",
			body: deepNesting("BatchList", 100_000), code: batch.CodeUpstreamBadResponse, noUpstream: true},
		{name: "200 close over 1 MiB", op: opClose, status: 200, contentType: "application/xml",
			body: "<BatchStatus><Status>" + strings.Repeat("x", maxSmallBody) + "</Status></BatchStatus>",
			code: batch.CodeUpstreamBadResponse, noUpstream: true},
		{name: "503 error body over 1 MiB", op: opClose, status: 503, body: strings.Repeat("x", maxSmallBody+10),
			code: batch.CodeUpstreamUnavailable, retryAfter: 5 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.serve(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				switch {
				case tt.contentType == "-":
					w.Header()["Content-Type"] = nil
				case tt.contentType != "":
					w.Header().Set("Content-Type", tt.contentType)
				case strings.HasPrefix(tt.body, "<Error"):
					w.Header().Set("Content-Type", "application/xml")
				}
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
			})
			c, _ := newClient(t, f, nil)
			e := wantCode(t, call(t.Context(), c, f, tt.op), tt.code)
			if tt.noUpstream {
				if e.Upstream != nil {
					t.Errorf("Upstream = %+v, want nil", e.Upstream)
				}
			} else {
				if e.Upstream == nil || e.Upstream.Status != tt.status || e.Upstream.Message != tt.message {
					t.Fatalf("Upstream = %+v, want status %d message %q", e.Upstream, tt.status, tt.message)
				}
				if tt.message != "" && (e.Upstream.ID != "ID-1" || e.Upstream.ServerTime != "2024-03-05T14:02:11") {
					t.Errorf("Upstream = %+v, want Id and Server-Time", e.Upstream)
				}
			}
			want, slack := tt.retryAfter, 2*time.Second
			if date, err := http.ParseTime(tt.header["Retry-After"]); err == nil && date.After(time.Now()) {
				want = time.Until(date) // the date was made with the table, perhaps long ago under load
			}
			if want == time.Second {
				slack = 0 // the floor is exact
			}
			if tt.retryAfter != 0 && (e.RetryAfter < want-slack || e.RetryAfter > want+slack) {
				t.Errorf("RetryAfter = %v, want %v", e.RetryAfter, want)
			}
			if tt.detail != "" && e.Detail != tt.detail {
				t.Errorf("Detail = %q, want %q", e.Detail, tt.detail)
			}
			if tt.tokenCalls != 0 && f.tokenCalls() != tt.tokenCalls {
				t.Errorf("token calls = %d, want %d", f.tokenCalls(), tt.tokenCalls)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want time.Duration
	}{
		{"empty", "", time.Minute},
		{"seconds", "120", 2 * time.Minute},
		{"zero", "0", time.Minute},
		{"zero padded", " 000 ", time.Minute},
		{"negative", "-5", time.Minute},
		{"over a day", "86401", time.Minute},
		{"garbage", "soon", time.Minute},
		{"past date", "Wed, 21 Oct 2015 07:28:00 GMT", time.Minute},
		{"date now", time.Now().UTC().Format(http.TimeFormat), time.Minute},
		{"future date", time.Now().Add(3 * time.Minute).UTC().Format(http.TimeFormat), 3 * time.Minute},
		{"date over a day away", time.Now().Add(25 * time.Hour).UTC().Format(http.TimeFormat), time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := retryAfter(tt.in, time.Minute)
			if tt.name == "future date" { // built with the table, perhaps long ago under load
				date, _ := http.ParseTime(tt.in)
				if want := time.Until(date); got < want-2*time.Second || got > want+2*time.Second {
					t.Errorf("retryAfter(%q) = %v, want about %v", tt.in, got, want)
				}
				return
			}
			if got != tt.want {
				t.Errorf("retryAfter(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

// throttleWait is a 429's Retry-After: like retryAfter's, but a wait of zero or less is
// Concur's "now", floored at a second, never 0.
func TestThrottleWait(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want time.Duration
	}{
		{"empty", "", time.Minute},
		{"seconds", "7", 7 * time.Second},
		{"zero", "0", time.Second},
		{"zero padded", " 000 ", time.Second},
		{"negative", "-5", time.Second},
		{"over a day", "86401", time.Minute},
		{"garbage", "soon", time.Minute},
		{"past date", "Wed, 21 Oct 2015 07:28:00 GMT", time.Second},
		{"date now", time.Now().UTC().Format(http.TimeFormat), time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := throttleWait(tt.in, time.Minute); got != tt.want {
				t.Errorf("throttleWait(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestClip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want int // length of the result in bytes
	}{
		{"short", "hello", 5},
		{"at the limit", strings.Repeat("x", maxMessage), maxMessage},
		{"long", strings.Repeat("x", 5000), maxMessage + len("…")},
		{"cut inside a rune", "x" + strings.Repeat("é", 1000), maxMessage - 1 + len("…")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := clip(tt.in)
			if len(got) != tt.want || !utf8.ValidString(got) {
				t.Errorf("clip: %d bytes (valid UTF-8 %v), want %d", len(got), utf8.ValidString(got), tt.want)
			}
		})
	}
}

// The calls whose failures say how far they got.
const (
	doList  = "list"
	doClose = "close" // v1.1
	doAsync = "async" // v1.2
	doFile  = "file"
)

var allCalls = []string{doList, doClose, doAsync, doFile}

// callsOr is calls, or allCalls when nil.
func callsOr(calls []string) []string {
	if calls == nil {
		return allCalls
	}
	return calls
}

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
		for _, which := range callsOr(tt.calls) {
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
			f.failTokens("empty", 500, "")
			c, _ := newClient(t, f, nil)
			err := invokeCall(t.Context(), c, f.srv.URL, which)
			if n := f.apiCalls(); n != 0 {
				t.Errorf("Concur's API received %d requests", n)
			}
			return err
		}, nil},
		{"refresh token refused", func(t *testing.T, which string) error {
			f := newFake(t)
			f.RevokeRefreshTokens()
			c, _ := newClient(t, f, nil)
			return invokeCall(t.Context(), c, f.srv.URL, which)
		}, nil},
	}
	for _, tt := range tests {
		for _, which := range callsOr(tt.calls) {
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
			f.RevokeRefreshTokens() // the renewal gets invalid_grant
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
			f.serve(serveStall)
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

func TestUnreachable(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	c, _ := newClient(t, f, func(c *Config) { c.BaseURL = closedURL(t) })
	wantCode(t, call(t.Context(), c, f, opList), batch.CodeUpstreamUnreachable)
}

// A failure to reach Concur keeps the encrypted keys of its URLs out of the error, whose
// text the access log writes: a Batch-URL's key and a File-Url's job key never leave the
// gateway (net/http's *url.Error quotes the whole URL).
func TestUnreachableKeepsKeysOut(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	base := closedURL(t)
	c, _ := newClient(t, f, func(c *Config) { c.BaseURL = base })
	const key, job = "S3cretBatchK3y$abc", "S3cretJ0bK3y$def"
	_, closeErr := c.CloseBatch(t.Context(), base+"/api/expense/paymentbatch/v1.1/batch/"+key)
	_, fileErr := c.OpenFile(t.Context(), base+"/api/expense/paymentbatch/v1.1/batch/"+job+"/file?k="+job)
	_, badErr := c.CloseBatch(t.Context(), base+"/api/expense/paymentbatch/v1.1/batch/"+key+"%zz") // unparseable
	wantCode(t, closeErr, batch.CodeUpstreamUnreachable)
	wantCode(t, fileErr, batch.CodeUpstreamUnreachable)
	wantCode(t, badErr, batch.CodeUpstreamBadResponse)
	for _, err := range []error{closeErr, fileErr, badErr} {
		if msg := err.Error(); strings.Contains(msg, key) || strings.Contains(msg, job) || !strings.Contains(msg, "/batch/{key}") {
			t.Errorf("error %q: want the key replaced by {key}", msg)
		}
	}
}
