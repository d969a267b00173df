package concur

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptrace"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

const (
	defaultRateLimitWait   = 60 * time.Second
	defaultUnavailableWait = 5 * time.Minute
	timeoutWait            = 5 * time.Minute // Concur: after a time-out, wait 5 minutes before retrying
	maxRetryAfter          = 24 * time.Hour  // a longer Retry-After is not believed
)

var (
	// errCallTimeout is the cancel cause of our own per-call (or idle) time-out.
	errCallTimeout = errors.New("concur: time-out")
	// errTooLarge is returned by capReader past its limit.
	errTooLarge = errors.New("concur: answer exceeds the size limit")
)

// operation names the call, for the 404 row and for messages.
type operation int

const (
	opList operation = iota
	opClose
	opFile
)

func (o operation) String() string {
	return [...]string{"list batches", "close batch", "download file"}[o]
}

// invalidBatchID recognises Concur's 400 for a bad batch id ("Batch ID ... invalid", "invalid batch id").
var invalidBatchID = regexp.MustCompile(`(?is)\bbatch[\s_-]*id\b.{0,120}?\binvalid\b|\binvalid\s+batch[\s_-]*id\b`)

// How far a failed call got (batch.Delivery), decided here for every failure the client
// returns. A close that may have acted must never be reported as one that did not: closing
// a closed batch regenerates its payment file. So only what proves that Concur did not act
// says so:
//
//	failure                                                         Delivery
//	no token (fetch or renewal failed), breaker open, no slot or
//	rate turn, untrusted host or bad URL, request not buildable,
//	the caller gone before sending, dial or DNS failure              NotSent
//	401/403 answered, then the renewal failed (the retry never left)  NotSent
//	4xx (400, 401, 403, 404, 409, 429, ...)                          Answered
//	503 (maintenance, or a proxy with no Concur behind it)            Answered
//	500 to a close whose Message is one of Concur's business
//	answers ("does not contain any reports", "could not be closed")  Answered
//	any other 5xx: 500 empty, HTML or with another message, 502,
//	504 (a proxy may have timed out while Concur closed the batch)   MaybeDelivered
//	1xx, 2xx other than 200, 3xx (no redirect is followed)            MaybeDelivered
//	time-out or connection failure once connected, or with a
//	transport that does not report its connections                    MaybeDelivered
//	a 200 whose body could not be read or decoded                     MaybeDelivered
//	anything else                                                     MaybeDelivered
//
// The caller's context ending after Concur answered keeps the answer's Delivery. A call
// tried more than once (a list, a file before its body; a close is never retried) reports
// the strongest Delivery of its tries: MaybeDelivered over Answered over NotSent.

// closeBusiness recognises the close's 500 that is a business answer, not an outage.
var closeBusiness = regexp.MustCompile(`(?i)does\s+not\s+contain\s+any\s+reports|could\s+not\s+be\s+closed`)

// statusDelivery is the Delivery of a non-200 answer (see the table above).
func statusDelivery(op operation, up *batch.UpstreamError) batch.Delivery {
	s := up.Status
	switch {
	case s >= 400 && s < 500, s == http.StatusServiceUnavailable:
		return batch.Answered
	case s == http.StatusInternalServerError && op == opClose && closeBusiness.MatchString(up.Message):
		return batch.Answered
	}
	return batch.MaybeDelivered
}

// rank orders Deliveries by how much they say Concur may have done.
func rank(d batch.Delivery) int {
	switch d {
	case batch.NotSent:
		return 0
	case batch.Answered:
		return 1
	}
	return 2
}

// withDelivery is err saying d: a copy when err is a *batch.Error with another Delivery
// (errors may be shared, e.g. by the callers of one token refresh: never changed in place).
func withDelivery(err error, d batch.Delivery) error {
	if e, ok := err.(*batch.Error); ok {
		if e.Delivery == d {
			return err
		}
		c := *e
		c.Delivery = d
		return &c
	}
	return &batch.Error{Code: batch.ErrorCode(err), Delivery: d, Err: err}
}

// statusError classifies a non-200 answer. up carries what Concur said (Status at least).
func statusError(op operation, h http.Header, up *batch.UpstreamError) *batch.Error {
	e := &batch.Error{Upstream: up, Delivery: statusDelivery(op, up)}
	s := up.Status
	switch {
	case s == http.StatusBadRequest && invalidBatchID.MatchString(up.Message):
		e.Code, e.Detail = batch.CodeBatchNotFound, "Concur says the batch id is invalid"
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		e.Code, e.Detail = batch.CodeUpstreamAuthFailed, "Concur rejected the gateway's credentials"
	case s == http.StatusNotFound && op == opClose:
		e.Code, e.Detail = batch.CodeBatchNotFound, "Concur does not know the batch"
	case s == http.StatusNotFound && op == opFile:
		e.Code, e.Detail = batch.CodeFileNotFound, "Concur does not know the payment file"
	case s == http.StatusNotFound:
		e.Code, e.Detail = batch.CodeUpstreamBadResponse, "Concur does not know the batch list resource"
	case s == http.StatusConflict:
		e.Code, e.Detail = batch.CodeUpstreamConflict, "Concur reported a conflict"
	case s == http.StatusTooManyRequests:
		e.Code, e.Detail = batch.CodeUpstreamRateLimited, "Concur is throttling the gateway"
		e.RetryAfter = retryAfter(h.Get("Retry-After"), defaultRateLimitWait)
	case s == http.StatusServiceUnavailable:
		e.Code, e.Detail = batch.CodeUpstreamUnavailable, "Concur is unavailable (maintenance)"
		e.RetryAfter = retryAfter(h.Get("Retry-After"), defaultUnavailableWait)
	case s == http.StatusInternalServerError && op == opClose && up.Message != "":
		e.Code, e.Detail = batch.CodeBatchNotClosable, up.Message
	case s >= 400 && s < 500:
		e.Code, e.Detail = batch.CodeUpstreamRejected, fmt.Sprintf("Concur refused the request (HTTP %d)", s)
	default:
		e.Code, e.Detail = batch.CodeUpstreamBadResponse, fmt.Sprintf("Concur answered with an unexpected HTTP %d", s)
	}
	return e
}

// retryAfter reads a Retry-After header (delta-seconds or HTTP-date). It returns def when
// the header is absent, unreadable, over a day, or not positive (0, negative, a date that
// has passed): the caller always gets a wait to honour.
func retryAfter(v string, def time.Duration) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return def
	}
	d := time.Duration(-1)
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n > 0 && n <= int64(maxRetryAfter/time.Second) {
			d = time.Duration(n) * time.Second
		}
	} else if t, err := http.ParseTime(v); err == nil {
		d = time.Until(t).Round(time.Second)
	}
	if d <= 0 || d > maxRetryAfter {
		return def
	}
	return d
}

// transportError classifies a failure to get (or read) an answer. caller is the caller's
// context, attempt the per-call one derived from it.
func transportError(caller, attempt context.Context, err error) *batch.Error {
	var ne net.Error
	switch {
	case errors.Is(err, errHostRefused):
		return hostRefused()
	case errors.Is(err, errTooLarge):
		return &batch.Error{Code: batch.CodeUpstreamBadResponse, Detail: "Concur's answer is too large", Err: err}
	case errors.Is(context.Cause(attempt), errCallTimeout):
		return timeoutError(err)
	case caller.Err() != nil:
		return callerGone(caller)
	case errors.As(err, &ne) && ne.Timeout():
		return timeoutError(err)
	}
	return &batch.Error{Code: batch.CodeUpstreamUnreachable, Detail: "could not reach Concur", Err: err}
}

// timeoutError and callerGone are the two CodeUpstreamTimeout errors; both carry Concur's
// advice to wait 5 minutes after a time-out.
func timeoutError(err error) *batch.Error {
	return &batch.Error{Code: batch.CodeUpstreamTimeout, Detail: "Concur did not answer in time",
		RetryAfter: timeoutWait, Err: err}
}

// callerGone reports that the caller's context ended; it wraps ctx.Err() so that
// errors.Is(err, context.Canceled) holds.
func callerGone(ctx context.Context) *batch.Error {
	return &batch.Error{Code: batch.CodeUpstreamTimeout, Detail: "the request ended before Concur answered",
		RetryAfter: timeoutWait, Err: ctx.Err()}
}

// Closing a batch that is already closed regenerates its payment file, so a close whose
// outcome is not known must say so: the caller has to check the batch list, not retry.
const closeOutcomeUnknown = "the close request may have reached Concur, but no answer came: " +
	"Concur may or may not have closed the batch. Check the batch list (CLOSED) before closing it again: " +
	"closing a closed batch regenerates its payment file"

// closeUnreadable is the Detail for a close that Concur answered with 200 but whose answer
// could not be read; why says what went wrong with it.
func closeUnreadable(why string) string {
	return "Concur accepted the close (HTTP 200), so the batch is probably closed, but its answer could not be read (" +
		why + "). Do not close it again blindly: closing a closed batch regenerates its payment file; " +
		"check the batch list (CLOSED) first"
}

// reach records, through httptrace, how far a request got: asked once the transport looked
// for a connection, connected once it had one (from then on the request may reach Concur).
type reach struct{ asked, connected atomic.Bool }

func (r *reach) trace(ctx context.Context) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GetConn: func(string) { r.asked.Store(true) },
		GotConn: func(httptrace.GotConnInfo) { r.connected.Store(true) },
	})
}

// mayHaveSent reports whether a request that failed with err may have reached Concur. Only
// a failure to connect (dial, DNS) proves it did not; a transport that does not report its
// connections (asked never set) is assumed to have sent it.
func (r *reach) mayHaveSent(err error) bool {
	var dns *net.DNSError
	var op *net.OpError
	if errors.As(err, &dns) || (errors.As(err, &op) && op.Op == "dial") {
		return false
	}
	return r.connected.Load() || !r.asked.Load()
}

// isXML accepts application/xml, text/xml and */*+xml, with parameters.
func isXML(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil && !errors.Is(err, mime.ErrInvalidMediaParameter) {
		return false
	}
	return mt == "application/xml" || mt == "text/xml" ||
		(strings.HasSuffix(mt, "+xml") && strings.Contains(mt, "/"))
}

// capReader reads at most n bytes and fails with errTooLarge past them: never a silent cut.
type capReader struct {
	r   io.Reader
	n   int64 // bytes still allowed
	err error // the first read error other than io.EOF
}

func (c *capReader) Read(p []byte) (int, error) {
	if int64(len(p)) > c.n+1 {
		p = p[:c.n+1]
	}
	n, err := c.r.Read(p)
	if int64(n) > c.n {
		n = int(c.n)
		c.n = 0
		err = errTooLarge
	} else {
		c.n -= int64(n)
	}
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}

// readAll reads r through a limit of n bytes.
func readAll(r io.Reader, n int64) ([]byte, error) {
	return io.ReadAll(&capReader{r: r, n: n})
}
