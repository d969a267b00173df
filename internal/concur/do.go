package concur

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

const (
	maxSmallBody = 1 << 20   // close answers and error bodies
	maxListBody  = 128 << 20 // the batch list, decoded as a stream
)

// request is one Concur call.
type request struct {
	op        operation
	method    string
	path, url string // one is set: path is relative to the token's API base, url absolute (parseConcurURL)
	limit     int64  // body cap of a 200 XML answer
	// decode decodes a 200 XML answer; nil for the file download, whose answer do returns
	// open. It runs whatever it hands the caller through consume, which stops the clock.
	decode func(body io.Reader, consume func(func() error) error) error
}

// tried is what one try tells the retry policy besides its error.
type tried struct {
	api      bool          // the failure came from Concur's API, not from a token or a turn
	consumer bool          // the error is the list consumer's own: returned as is
	wait     time.Duration // the Retry-After Concur sent with a failure; 0: none
}

// do performs r, trying the list and the file download again while the retry policy allows
// and a close once (closing a closed batch regenerates its payment file). The error says
// the strongest Delivery of all tries. The file's answer comes back with its body open, a
// decoded answer ended (for its correlation id).
func (c *Client) do(ctx context.Context, r request) (*attempt, error) {
	deadline := time.Now().Add(c.retry.budget)
	strongest := batch.NotSent
	for n := 1; ; n++ {
		timeout := c.timeout
		if n > 1 {
			timeout = min(timeout, time.Until(deadline))
		}
		start := time.Now()
		a, t, err := c.try(ctx, r, timeout)
		observeTry(c.obs, ctx, r.op.label(), start, t.api || err == nil, err)
		if err == nil || t.consumer {
			return a, err
		}
		strongest = stronger(strongest, batch.DeliveryOf(err))
		if r.op == opClose {
			return nil, withDelivery(err, strongest) // never retried
		}
		wait, ok := c.retry.next(ctx, n, t, err, deadline, c.timeout)
		if !ok || !sleep(ctx, wait) {
			return nil, withDelivery(err, strongest)
		}
	}
}

// try is one try: a slot, the rate limit and the breaker, in that order (see the package
// doc), then the request and the decoding of its answer within one time-out. Every admitted
// try reports its verdict to the breaker, also when it panics.
func (c *Client) try(ctx context.Context, r request, timeout time.Duration) (_ *attempt, t tried, err error) {
	if err := c.api.refuseIfOpen(); err != nil {
		return nil, t, err
	}
	release, err := c.limits.acquire(ctx)
	if err != nil {
		return nil, t, err
	}
	defer release()
	if err := c.limits.pace(ctx); err != nil {
		return nil, t, err
	}
	done, err := c.api.allow()
	if err != nil {
		return nil, t, err
	}
	v := errNeutral
	defer func() { done(v) }()

	a, t, err := c.send(ctx, r, timeout)
	if err == nil && r.decode != nil {
		err = c.read(ctx, a, r) // a is ended now; its correlation id stays
		if ce, ok := errors.AsType[*consumerError](err); ok {
			return nil, tried{consumer: true}, ce.err // not Concur's failure: neither retried nor counted
		}
	}
	v = verdictOf(ctx, t.api, err)
	if err != nil {
		a = nil
	}
	return a, t, err
}

// send sends r with credentials and returns a 200 answer, its body open and its attempt
// running (the caller ends it). On 401/403 it renews the token once and sends again. The
// correlation id of every answer is noted in ctx's batch.Correlations.
func (c *Client) send(ctx context.Context, r request, timeout time.Duration) (*attempt, tried, error) {
	var t tried
	tok, err := c.tokens.get(ctx)
	if err != nil {
		return nil, t, withDelivery(err, batch.NotSent)
	}
	for renewed := false; ; renewed = true {
		req, err := http.NewRequestWithContext(ctx, r.method, cmp.Or(r.url, cmp.Or(tok.apiBase, c.baseOrigin)+r.path), http.NoBody)
		if err != nil {
			return nil, t, &batch.Error{Code: batch.CodeUpstreamBadResponse, Delivery: batch.NotSent,
				Detail: "cannot build a request to Concur's URL", Err: err}
		}
		if !tok.trusts(c.baseOrigin, originOf(req.URL)) {
			return nil, t, hostRefused() // nothing was sent
		}
		req.Header.Set("Accept", "application/xml")
		if r.op == opFile {
			req.Header.Set("Accept", "*/*")
		}
		req.Header.Set("User-Agent", c.userAgent)
		if renewed { // the first request was paced by try, before the breaker admitted it
			if err := c.limits.pace(ctx); err != nil {
				return nil, t, err
			}
		}
		if ctx.Err() != nil {
			return nil, t, withDelivery(callerGone(ctx), batch.NotSent)
		}

		t.api = true
		a := newAttempt(withToken(ctx, tok), timeout)
		var rc reach
		resp, err := c.httpc.Do(req.WithContext(rc.trace(a.ctx)))
		if err != nil {
			a.end()
			return nil, t, sendError(ctx, a.ctx, r.op, &rc, err)
		}
		a.correlationID = correlationID(resp.Header)
		batch.NoteCorrelation(ctx, a.correlationID)
		if resp.StatusCode == http.StatusOK {
			a.resp = resp
			return a, t, nil
		}
		up := readUpstreamError(resp)
		a.end()
		if ctx.Err() != nil {
			e := callerGone(ctx)
			e.Delivery, e.CorrelationID = statusDelivery(r.op, up), a.correlationID // Concur answered
			return nil, t, e
		}
		if (up.Status == http.StatusUnauthorized || up.Status == http.StatusForbidden) && !renewed && c.tokens.static == nil {
			t.api = false // a failure from here on is the renewal's, unless the second request fails
			// The refused request did not act, and its retry is not sent without a token.
			if tok, err = c.tokens.renew(ctx, tok); err != nil {
				return nil, t, withDelivery(err, batch.NotSent)
			}
			continue
		}
		t.wait = retryAfter(resp.Header.Get("Retry-After"), 0)
		if up.Status == http.StatusTooManyRequests {
			t.wait = throttleWait(resp.Header.Get("Retry-After"), 0) // a throttle's "now" still waits
		}
		return nil, t, statusError(r.op, resp.Header, up)
	}
}

// read decodes a 200 answer through r.limit and r.decode, then ends it. Concur answered
// 200: whatever went wrong, it acted, and the failure carries the answer's correlation id.
func (c *Client) read(ctx context.Context, a *attempt, r request) error {
	defer a.end()
	defer a.resp.Body.Close()
	if !isXML(a.resp.Header.Get("Content-Type")) {
		return unreadable(r.op, &batch.Error{Code: batch.CodeUpstreamBadResponse, CorrelationID: a.correlationID,
			Detail: "Concur answered " + r.op.String() + " with a non-XML content type"}, "its content type is not XML")
	}
	body := &capReader{r: a.resp.Body, n: r.limit}
	err := r.decode(body, a.consume)
	if _, ok := errors.AsType[*consumerError](err); ok || err == nil {
		return err
	}
	if body.err == nil {
		return unreadable(r.op, &batch.Error{Code: batch.CodeUpstreamBadResponse, CorrelationID: a.correlationID,
			Detail: "Concur's answer to " + r.op.String() + " is not the expected XML", Err: err}, "it is not the expected XML")
	}
	e, why := readError(ctx, a.ctx, body.err) // a time-out, a cut connection, over the limit
	e.CorrelationID = a.correlationID
	return unreadable(r.op, e, why)
}

// consumerError carries the error of the list's consumer through the decoder.
type consumerError struct{ err error }

func (e *consumerError) Error() string { return e.err.Error() }

// attempt is one try: its context, cancelled with errCallTimeout when its timer fires, and
// Concur's 200 answer, whose body is still to be read.
type attempt struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
	due    time.Time // when the timer fires, while it runs
	resp   *http.Response
	// correlationID is the answer's concur-correlationid (correlationID), "" before one came.
	correlationID string
}

func newAttempt(parent context.Context, d time.Duration) *attempt {
	ctx, cancel := context.WithCancelCause(parent)
	return &attempt{ctx: ctx, cancel: cancel, due: time.Now().Add(d),
		timer: time.AfterFunc(d, func() { cancel(errCallTimeout) })}
}

// consume runs the caller's consumer (the store writing the list) with the attempt's clock
// stopped: that time is not Concur's. An attempt already out of time stays so.
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

// fileOf hands over a file download's answer: from now on its timer is an idle timer,
// armed per Read. An undeclared content type is sniffed: zip or CSV.
func fileOf(ctx context.Context, a *attempt, timeout time.Duration) (*batch.File, error) {
	a.timer.Stop()
	body := &idleBody{body: a.resp.Body, a: a, caller: ctx, timeout: timeout}
	f := &batch.File{
		Body:               body,
		ContentType:        a.resp.Header.Get("Content-Type"),
		ContentLength:      a.resp.ContentLength,
		ContentDisposition: a.resp.Header.Get("Content-Disposition"),
	}
	if mt, _, _ := mime.ParseMediaType(f.ContentType); mt == "" || mt == "application/octet-stream" {
		br := bufio.NewReader(body)
		head, err := br.Peek(4)
		if err != nil && !errors.Is(err, io.EOF) {
			_ = body.Close()
			return nil, err
		}
		f.ContentType = "text/csv"
		if bytes.Equal(head, []byte("PK\x03\x04")) {
			f.ContentType = "application/zip"
		}
		f.Body = &struct {
			io.Reader
			io.Closer
		}{br, body} // the peeked bytes stay in the stream
	}
	return f, nil
}

// idleBody fails a Read that makes no progress within timeout. The timer runs only during
// a Read, so a slow consumer is not mistaken for a stalled Concur.
type idleBody struct {
	body    io.ReadCloser
	a       *attempt
	caller  context.Context
	timeout time.Duration
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.a.timer.Reset(b.timeout)
	n, err := b.body.Read(p)
	b.a.timer.Stop()
	if err != nil && err != io.EOF {
		e := transportError(b.caller, b.a.ctx, err)
		if e.Code == batch.CodeUpstreamTimeout && b.caller.Err() == nil {
			e.Detail = "Concur stopped sending the payment file"
		}
		e.CorrelationID = b.a.correlationID // the file's answer came: its stream broke
		return n, e
	}
	return n, err
}

func (b *idleBody) Close() error {
	err := b.body.Close()
	b.a.end()
	return err
}
