package concur

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

const (
	defaultRateLimitWait   = 60 * time.Second
	defaultUnavailableWait = 5 * time.Minute
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

// statusError classifies a non-200 answer. up carries what Concur said (Status at least).
func statusError(op operation, h http.Header, up *batch.UpstreamError) *batch.Error {
	e := &batch.Error{Upstream: up}
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

// retryAfter reads a Retry-After header (delta-seconds or HTTP-date), else def.
func retryAfter(v string, def time.Duration) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return def
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 || n > int64(24*time.Hour/time.Second) {
			return def
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t).Round(time.Second), 0)
	}
	return def
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

func timeoutError(err error) *batch.Error {
	return &batch.Error{Code: batch.CodeUpstreamTimeout, Detail: "Concur did not answer in time", Err: err}
}

// callerGone reports that the caller's context ended; it wraps ctx.Err() so that
// errors.Is(err, context.Canceled) holds.
func callerGone(ctx context.Context) *batch.Error {
	return &batch.Error{Code: batch.CodeUpstreamTimeout,
		Detail: "the request ended before Concur answered", Err: ctx.Err()}
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
