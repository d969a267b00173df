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

	"github.com/finplat/payment-batch-gateway/internal/batch"
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
	slow := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
	}
	cut := func(w http.ResponseWriter, r *http.Request) { // reads the request, then drops the connection
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		conn.Close()
	}
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
		api       http.HandlerFunc
		base      func(t *testing.T, f *fakeConcur) string // Config.BaseURL (and the Batch-URL's host); default the fake
		transport http.RoundTripper                        // Config.Transport; with it the token is static
		cancel    time.Duration                            // the caller gives up after this
		code      batch.Code
		unknown   bool // the outcome-unknown wording, else the plain one
	}{
		{name: "time-out after connecting", op: opClose, api: slow, code: batch.CodeUpstreamTimeout, unknown: true},
		{name: "connection cut after sending", op: opClose, api: cut, code: batch.CodeUpstreamUnreachable, unknown: true},
		{name: "caller gives up after connecting", op: opClose, api: slow, cancel: 50 * time.Millisecond,
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
		{name: "list time-out after connecting", op: opList, api: slow, code: batch.CodeUpstreamTimeout},
		{name: "list connection cut", op: opList, api: cut, code: batch.CodeUpstreamUnreachable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.set(func(f *fakeConcur) { f.api, f.access["static-1"] = tt.api, true })
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
		{"malformed XML", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/xml")
			fmt.Fprint(w, "<BatchStatus><Status>SUCC")
		}, batch.CodeUpstreamBadResponse},
		{"error document", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/xml")
			fmt.Fprint(w, "<Error><Message>x</Message></Error>")
		}, batch.CodeUpstreamBadResponse},
		{"over the limit", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/xml")
			fmt.Fprint(w, "<BatchStatus><Status>"+strings.Repeat("x", maxSmallBody)+"</Status></BatchStatus>")
		}, batch.CodeUpstreamBadResponse},
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
			f.set(func(f *fakeConcur) { f.api = tt.api })
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
