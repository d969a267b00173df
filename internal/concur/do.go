package concur

import (
	"cmp"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

const (
	maxSmallBody = 1 << 20   // close answers and error bodies
	maxListBody  = 128 << 20 // the batch list, decoded as a stream
)

// request is one Concur call. Exactly one of path (relative to the API base of the token
// in use) and url (absolute, already host-checked for shape) is set.
type request struct {
	op     operation
	method string
	path   string
	url    string
	limit  int64 // body cap for a 200 XML answer
	// decode decodes a 200 XML answer (nil for the file download); it runs whatever it hands
	// the caller through consume, which stops the call's clock meanwhile.
	decode func(body io.Reader, consume func(func() error) error) error
}

// attempt is one try's context: cancelled with errCallTimeout when its timer fires.
type attempt struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
	due    time.Time // when the timer fires, while it runs
}

func newAttempt(parent context.Context, d time.Duration) *attempt {
	ctx, cancel := context.WithCancelCause(parent)
	return &attempt{ctx: ctx, cancel: cancel, due: time.Now().Add(d),
		timer: time.AfterFunc(d, func() { cancel(errCallTimeout) })}
}

// consume runs the caller's consumer of what the answer holds (the directory, writing to
// the store) with the attempt's clock stopped: time spent there is not Concur's, and must
// neither time the call out nor, through the time-out, count against Concur in the
// breaker and be retried. An attempt already out of time stays so.
func (a *attempt) consume(fn func() error) error {
	if !a.timer.Stop() {
		return fn()
	}
	left := time.Until(a.due)
	err := fn()
	a.due = time.Now().Add(left)
	a.timer.Reset(left)
	return err
}

func (a *attempt) end() {
	a.timer.Stop()
	a.cancel(context.Canceled)
}

// do performs an XML call: send, then decode the 200 body through r.limit within the
// same time-out, classifying every failure; a list is retried as the policy allows (see
// call). A close whose 200 answer cannot be read says that the batch is probably closed.
func (c *Client) do(ctx context.Context, r request) error {
	return c.call(ctx, r.op, func(ctx context.Context, timeout time.Duration) (tried, error) {
		resp, a, t, err := c.send(ctx, r, timeout)
		if err != nil {
			return t, err
		}
		defer a.end()
		defer resp.Body.Close()
		e, why, consumer := decodeAnswer(ctx, a, resp, r)
		if consumer != nil {
			return tried{consumer: true}, consumer // not Concur's failure: neither retried nor counted by the breaker
		}
		if e == nil {
			return t, nil
		}
		e.Delivery = batch.MaybeDelivered // Concur answered 200: it acted, whatever its answer said
		if r.op == opClose {
			e.Detail = closeUnreadable(why)
		}
		return t, e
	})
}

// consumerError carries the error of the function that a decoder hands what it reads to
// (a batch list's consumer): the call ends with that error, as it is.
type consumerError struct{ err error }

func (e *consumerError) Error() string { return e.err.Error() }

// decodeAnswer reads a 200 answer through r.decode; on failure it also says, for
// closeUnreadable, what went wrong with the answer. When the decoder's consumer failed,
// consumer is its error, whatever else went wrong.
func decodeAnswer(ctx context.Context, a *attempt, resp *http.Response, r request) (e *batch.Error, why string, consumer error) {
	if !isXML(resp.Header.Get("Content-Type")) {
		return &batch.Error{Code: batch.CodeUpstreamBadResponse,
			Detail: "Concur answered " + r.op.String() + " with a non-XML content type"}, "its content type is not XML", nil
	}
	body := &capReader{r: resp.Body, n: r.limit}
	err := r.decode(body, a.consume)
	if err == nil {
		return nil, "", nil
	}
	if ce, ok := errors.AsType[*consumerError](err); ok {
		return nil, "", ce.err
	}
	if body.err == nil {
		return &batch.Error{Code: batch.CodeUpstreamBadResponse,
			Detail: "Concur's answer to " + r.op.String() + " is not the expected XML", Err: err}, "it is not the expected XML", nil
	}
	// The read failed: time-out, cut connection, over the limit.
	e = transportError(ctx, a.ctx, body.err)
	switch {
	case errors.Is(body.err, errTooLarge):
		return e, "it is over the size limit", nil
	case e.Code == batch.CodeUpstreamTimeout && ctx.Err() != nil:
		return e, "the request ended while it was being read", nil
	case e.Code == batch.CodeUpstreamTimeout:
		return e, "it did not arrive within the time-out", nil
	default:
		return e, "the connection failed while it was being read", nil
	}
}

// send performs r with credentials within timeout and returns a 200 answer, its body open
// and its attempt running (the caller ends it). On 401/403 it renews the token once and
// retries once. t.api says whether a failure came from Concur's API.
func (c *Client) send(ctx context.Context, r request, timeout time.Duration) (*http.Response, *attempt, tried, error) {
	var t tried
	tok, err := c.tokens.get(ctx)
	if err != nil {
		return nil, nil, t, withDelivery(err, batch.NotSent)
	}
	for try := 0; ; try++ {
		target := r.url
		if target == "" {
			target = cmp.Or(tok.apiBase, c.baseOrigin) + r.path
		}
		req, err := http.NewRequestWithContext(ctx, r.method, target, http.NoBody)
		if err != nil {
			return nil, nil, t, &batch.Error{Code: batch.CodeUpstreamBadResponse, Delivery: batch.NotSent,
				Detail: "cannot build a request to Concur's URL", Err: err}
		}
		if !tok.trusts(c.baseOrigin, originOf(req.URL)) {
			return nil, nil, t, hostRefused() // nothing was sent
		}
		accept := "application/xml"
		if r.op == opFile {
			accept = "*/*"
		}
		req.Header.Set("Accept", accept)
		req.Header.Set("User-Agent", c.userAgent)

		if try > 0 { // the first request was paced by call, before the breaker admitted it
			if err := c.limits.pace(ctx); err != nil {
				return nil, nil, t, err // nothing was sent
			}
		}
		if ctx.Err() != nil {
			return nil, nil, t, withDelivery(callerGone(ctx), batch.NotSent) // nothing was sent
		}
		t.api = true
		a := newAttempt(withToken(ctx, tok), timeout)
		var rc reach
		resp, err := c.httpc.Do(req.WithContext(rc.trace(a.ctx)))
		if err != nil {
			a.end()
			e := transportError(ctx, a.ctx, err)
			sent := rc.mayHaveSent(err)
			if !sent {
				e.Delivery = batch.NotSent
			}
			if r.op == opClose && (e.Code == batch.CodeUpstreamTimeout || e.Code == batch.CodeUpstreamUnreachable) && sent {
				e.Detail = closeOutcomeUnknown
			}
			return nil, nil, t, e
		}
		if resp.StatusCode == http.StatusOK {
			return resp, a, t, nil
		}
		up := readUpstreamError(resp)
		a.end()
		if ctx.Err() != nil {
			return nil, nil, t, withDelivery(callerGone(ctx), statusDelivery(r.op, up)) // Concur answered
		}
		if (up.Status == http.StatusUnauthorized || up.Status == http.StatusForbidden) &&
			try == 0 && c.tokens.static == nil {
			t.api = false // a failure from here on is the renewal's, unless the second request fails
			// The refused request did not act, and its retry is not sent without a token.
			if tok, err = c.tokens.renew(ctx, tok); err != nil {
				return nil, nil, t, withDelivery(err, batch.NotSent)
			}
			continue
		}
		t.wait = retryAfter(resp.Header.Get("Retry-After"), 0)
		return nil, nil, t, statusError(r.op, resp.Header, up)
	}
}

// readUpstreamError reads an error answer (through the small limit) and closes it. The body
// may be Concur's <Error>, empty or HTML: only the status is certain.
func readUpstreamError(resp *http.Response) *batch.UpstreamError {
	defer resp.Body.Close()
	up := &batch.UpstreamError{Status: resp.StatusCode}
	body, err := readAll(resp.Body, maxSmallBody)
	if err != nil {
		return up // cut or oversized: classify by status alone
	}
	if e, err := decodeErrorBody(bytesReader(body)); err == nil {
		up.Message, up.ID, up.ServerTime = clip(e.Message), clip(e.ID), clip(e.ServerTime)
	}
	return up
}

// maxMessage bounds what an error keeps of Concur's text: it ends up in logs and Details.
const maxMessage = 1024

func clip(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	return strings.ToValidUTF8(s[:maxMessage], "") + "…"
}
