package concur

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
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
	minThrottleWait        = time.Second     // the least wait after a 429, whatever its Retry-After
	maxMessage             = 1024            // what an error keeps of Concur's text: it ends up in logs
)

var (
	errCallTimeout = errors.New("concur: time-out") // the cancel cause of our own per-call (or idle) time-out
	errTooLarge    = errors.New("concur: answer exceeds the size limit")
	errHostRefused = errors.New("concur: refusing to send credentials to an untrusted origin")
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

func (o operation) label() string { return [...]string{OpList, OpClose, OpFile}[o] }

var (
	// invalidBatchID recognises Concur's 400 for a bad batch id.
	invalidBatchID = regexp.MustCompile(`(?is)\bbatch[\s_-]*id\b.{0,120}?\binvalid\b|\binvalid\s+batch[\s_-]*id\b`)
	// closeBusiness recognises the close's 500 that is a business answer, not an outage.
	closeBusiness = regexp.MustCompile(`(?i)does\s+not\s+contain\s+any\s+reports|could\s+not\s+be\s+closed`)
)

// statusError classifies a non-200 answer. up carries what Concur said (Status at least),
// h its headers.
func statusError(op operation, h http.Header, up *batch.UpstreamError) *batch.Error {
	e := &batch.Error{Upstream: up, Delivery: statusDelivery(op, up), CorrelationID: correlationID(h)}
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
		e.RetryAfter = throttleWait(h.Get("Retry-After"), defaultRateLimitWait)
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

// statusDelivery is the Delivery of a non-200 answer (see the package doc's table).
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

// readUpstreamError reads an error answer (through the small limit) and closes it. The body
// may be Concur's <Error>, empty or HTML: only the status is certain.
func readUpstreamError(resp *http.Response) *batch.UpstreamError {
	defer resp.Body.Close()
	up := &batch.UpstreamError{Status: resp.StatusCode}
	body, err := readAll(resp.Body, maxSmallBody)
	if err != nil {
		return up // cut or oversized: classify by status alone
	}
	if e, err := decodeErrorBody(bytes.NewReader(body)); err == nil {
		up.Message, up.ID, up.ServerTime = clip(e.Message), clip(e.ID), clip(e.ServerTime)
	}
	return up
}

// correlationID is the answer's concur-correlationid (what Concur's support asks for),
// trimmed, when it is usable: at most batch.MaxCorrelationID characters of visible ASCII.
// Anything else is dropped, not cut: it comes from outside and reaches logs, problems and
// the store, and a cut id would name another answer.
func correlationID(h http.Header) string {
	v := strings.TrimSpace(h.Get("Concur-Correlationid"))
	if len(v) > batch.MaxCorrelationID {
		return ""
	}
	for i := range len(v) {
		if v[i] < '!' || v[i] > '~' {
			return ""
		}
	}
	return v
}

func clip(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	return strings.ToValidUTF8(s[:maxMessage], "") + "…"
}

// retryAfter reads a Retry-After header (delta-seconds or HTTP-date). It returns def when
// the header is absent, unreadable, over a day, or not positive: a wait is always honoured.
func retryAfter(v string, def time.Duration) time.Duration {
	if d, ok := parseRetryAfter(v); ok && d > 0 {
		return d
	}
	return def
}

// throttleWait reads the Retry-After of the API's 429. Concur's throttle may say
// retry-after: 0 (or a date already past): that "now" is honoured with a floor of
// minThrottleWait, so neither the client's retry nor the gateway's callers come back at
// once. Absent, unreadable or over a day: def.
func throttleWait(v string, def time.Duration) time.Duration {
	d, ok := parseRetryAfter(v)
	if !ok {
		return def
	}
	return max(d, minThrottleWait)
}

// parseRetryAfter reads delta-seconds or an HTTP-date; ok is false when v is absent,
// unreadable or over maxRetryAfter. d may be zero or negative (a date already past).
func parseRetryAfter(v string) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n > int64(maxRetryAfter/time.Second) {
			return 0, false
		}
		return time.Duration(max(n, 0)) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if d = time.Until(t).Round(time.Second); err != nil || d > maxRetryAfter {
		return 0, false
	}
	return d, true
}

// transportError classifies a failure to get (or read) an answer; attempt is the per-try
// context derived from caller's.
func transportError(caller, attempt context.Context, err error) *batch.Error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		ue.URL = RedactURL(ue.URL) // its text reaches the log
	}
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

// concurKey is the encrypted segment after /batch/ in a Batch-URL or a File-Url.
var concurKey = regexp.MustCompile(`(/batch/)[^/?#]+`)

// RedactURL hides what is secret in one of Concur's URLs, or in its path: the encrypted
// key after /batch/ becomes {key}, and a query becomes {query}. Those keys never leave
// the gateway, not in a log, an answer or a trace.
func RedactURL(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i] + "?{query}"
	}
	return concurKey.ReplaceAllString(u, "${1}{key}")
}

// sendError classifies a request that got no answer: NotSent only when it provably never
// left; a close that may have left says that its outcome is unknown.
func sendError(caller, attempt context.Context, op operation, rc *reach, err error) *batch.Error {
	e := transportError(caller, attempt, err)
	sent := rc.mayHaveSent(err)
	if !sent {
		e.Delivery = batch.NotSent
	}
	if op == opClose && sent && (e.Code == batch.CodeUpstreamTimeout || e.Code == batch.CodeUpstreamUnreachable) {
		e.Detail = closeOutcomeUnknown
	}
	return e
}

// readError classifies a 200 body whose reading failed, and says why for a close.
func readError(caller, attempt context.Context, err error) (*batch.Error, string) {
	e := transportError(caller, attempt, err)
	switch {
	case errors.Is(err, errTooLarge):
		return e, "it is over the size limit"
	case e.Code == batch.CodeUpstreamTimeout && caller.Err() != nil:
		return e, "the request ended while it was being read"
	case e.Code == batch.CodeUpstreamTimeout:
		return e, "it did not arrive within the time-out"
	}
	return e, "the connection failed while it was being read"
}

// unreadable marks e, the failure of a 200 answer, MaybeDelivered; a close's says that the
// batch is probably closed.
func unreadable(op operation, e *batch.Error, why string) *batch.Error {
	e.Delivery = batch.MaybeDelivered
	if op == opClose {
		e.Detail = "Concur accepted the close (HTTP 200), so the batch is probably closed, but its answer could not be read (" +
			why + "). Do not close it again blindly: closing a closed batch regenerates its payment file; " +
			"check the batch list (CLOSED) first"
	}
	return e
}

// closeOutcomeUnknown: the caller has to check the batch list, not retry.
const closeOutcomeUnknown = "the close request may have reached Concur, but no answer came: " +
	"Concur may or may not have closed the batch. Check the batch list (CLOSED) before closing it again: " +
	"closing a closed batch regenerates its payment file"

// timeoutError and callerGone (the caller's context ended) are the two CodeUpstreamTimeout
// errors; both carry Concur's advice to wait 5 minutes after a time-out.
func timeoutError(err error) *batch.Error {
	return &batch.Error{Code: batch.CodeUpstreamTimeout, Detail: "Concur did not answer in time",
		RetryAfter: timeoutWait, Err: err}
}

func callerGone(ctx context.Context) *batch.Error {
	return &batch.Error{Code: batch.CodeUpstreamTimeout, Detail: "the request ended before Concur answered",
		RetryAfter: timeoutWait, Err: ctx.Err()}
}

func hostRefused() *batch.Error {
	return &batch.Error{Code: batch.CodeUpstreamHostRefused, Delivery: batch.NotSent,
		Detail: "Concur gave a URL outside the trusted Concur hosts; nothing was sent to it"}
}

// stronger is the Delivery that says more: MaybeDelivered over Answered over NotSent.
func stronger(a, b batch.Delivery) batch.Delivery {
	if a == batch.MaybeDelivered || b == batch.NotSent {
		return a
	}
	return b
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

// reach records, through httptrace, whether the transport looked for a connection (asked)
// and got one (connected: from then on the request may reach Concur).
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

// tokenTransportError classifies a failure to reach the token endpoint. ctx is the
// refresh's own (detached) context, so a cancelled caller is not the cause here.
func tokenTransportError(ctx context.Context, err error) *batch.Error {
	e := transportError(ctx, ctx, err)
	if e.Code == batch.CodeUpstreamTimeout || e.Code == batch.CodeUpstreamUnreachable {
		e.Detail = "Concur's token endpoint: " + e.Detail
	}
	return e
}

func badToken(detail string, err error) *batch.Error {
	return &batch.Error{Code: batch.CodeUpstreamBadResponse, Detail: detail, Err: err}
}

// storeError classifies a failure of the credential store before anything was redeemed.
func storeError(ctx context.Context, err error) *batch.Error {
	e := &batch.Error{Code: batch.CodeStoreUnavailable,
		Detail: "the credential store is unavailable: cannot renew the Concur access token", Err: err}
	switch {
	case errors.Is(err, ErrUndecryptable):
		e.Code, e.Detail = batch.CodeInternal, "the stored Concur credentials cannot be decrypted with the configured key"
	case errors.Is(context.Cause(ctx), errCallTimeout):
		e.Detail = "the credential store did not answer in time: cannot renew the Concur access token"
	}
	return e
}
