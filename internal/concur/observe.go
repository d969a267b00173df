package concur

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// Operations, as an Observer and Operation name them.
const (
	OpToken = "token" // the OAuth2 token endpoint
	OpList  = "list"  // a batch list
	OpClose = "close" // a close, v1.1 or v1.2
	OpFile  = "file"  // a payment file download
)

// Outcomes an Observer is told besides "ok" and the error codes of internal/batch.
const (
	OutcomeOK          = "ok"
	OutcomeCircuitOpen = "circuit_open" // refused by an open or half-open breaker: nothing was sent
	OutcomeNoTurn      = "no_turn"      // no slot or rate turn within the time-out: nothing was sent
	OutcomeCallerGone  = "caller_gone"  // the caller's request ended first
)

// Observer is told what the Client does, for metrics. Its methods run on the calling
// goroutine: they must be quick and safe for concurrent use, and must not call the Client.
type Observer interface {
	// ConcurRequest is told of every try of a call to Concur, the token endpoint's
	// included. operation is OpToken, OpList, OpClose or OpFile; status is the HTTP status
	// Concur answered this request with (200 on success), 0 when no answer could be read
	// or the try failed before or beside it (breaker, slot, token); outcome is
	// OutcomeOK, an Outcome* constant, or the *batch.Error code the try failed with. took
	// is the whole try: its wait for a slot, its token and Concur's answer (for a file,
	// until the headers).
	ConcurRequest(operation string, status int, outcome string, took time.Duration)
	// TokenRefreshed is told of the end of every renewal of the access token (one per
	// refresh, however many calls waited for it): ok is false when no new token came of
	// it, whatever the reason (Concur, the credential store, the breaker).
	TokenRefreshed(ok bool)
}

// nopObserver is the Observer of a Client configured without one.
type nopObserver struct{}

func (nopObserver) ConcurRequest(string, int, string, time.Duration) {}
func (nopObserver) TokenRefreshed(bool)                              {}

func observerOr(o Observer) Observer {
	if o == nil {
		return nopObserver{}
	}
	return o
}

// observeTry tells o about one try of op that began at start and failed with err (nil:
// it succeeded). caller is the caller's context; fromOp is false when the failure came
// before or beside the operation's own request (the breaker, a slot, the token), whose
// status is then not the operation's.
func observeTry(o Observer, caller context.Context, op string, start time.Time, fromOp bool, err error) {
	if o == nil {
		return
	}
	status := 0
	if fromOp {
		status = statusOf(err)
	}
	o.ConcurRequest(op, status, outcomeOf(caller, err), time.Since(start))
}

func statusOf(err error) int {
	if err == nil {
		return http.StatusOK
	}
	if e, ok := errors.AsType[*batch.Error](err); ok && e.Upstream != nil {
		return e.Upstream.Status
	}
	return 0
}

func outcomeOf(caller context.Context, err error) string {
	switch {
	case err == nil:
		return OutcomeOK
	case errors.Is(err, ErrCircuitOpen):
		return OutcomeCircuitOpen
	case errors.Is(err, errQueueTimeout):
		return OutcomeNoTurn
	case caller.Err() != nil:
		return OutcomeCallerGone
	}
	return string(batch.ErrorCode(err))
}

func (o operation) label() string {
	return [...]string{OpList, OpClose, OpFile}[o]
}

// Operation names the Concur call req is: OpList, OpClose or OpFile for the Payment Batch
// API, OpToken for anything else (the token endpoint). For span names: it reads only the
// path, never the query or the host.
func Operation(req *http.Request) string {
	p := req.URL.Path
	switch {
	case !strings.HasPrefix(p, apiPrefix):
		return OpToken
	case strings.HasSuffix(p, "/close"):
		return OpClose
	case strings.HasSuffix(p, "/file"):
		return OpFile
	}
	return OpList
}

// DefaultTransport is the transport a Client uses when Config.Transport is nil: a clone of
// http.DefaultTransport with a 10s dial and TLS handshake time-out and a response header
// time-out of timeout. Wrap it (tracing) and pass it as Config.Transport to keep them.
func DefaultTransport(timeout time.Duration) *http.Transport {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return defaultTransport(timeout)
}

// Ready reports whether the Client can authenticate to Concur: nil when it holds an
// access token that is not about to expire (no request is sent) or obtains one now
// (starting or joining the one refresh, waiting no longer than ctx). A static token is
// always ready. For readiness probes.
func (c *Client) Ready(ctx context.Context) error {
	_, err := c.tokens.get(ctx)
	return err
}

// observeRefresh tells o how a renewal of the access token ended.
func observeRefresh(o Observer, err error) {
	if o != nil {
		o.TokenRefreshed(err == nil)
	}
}
