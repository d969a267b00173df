package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/finplat/payment-batch-gateway/api"
)

// Error is a non-2xx answer of the gateway. When the gateway answered with a problem
// (application/problem+json, RFC 9457), Code is its stable code: program against it (the
// gateway's README lists them; GET /problems/{code} describes one). Otherwise (a proxy in
// between answered, say) Code is "" and Status says what happened.
type Error struct {
	Method, Path string // the request: method and path, without the query
	Status       int    // the HTTP status
	Code         string // the problem's code, e.g. "batch_not_found"; "" when not a problem
	Detail       string // the problem's detail, or a description of the answer
	RequestID    string // the gateway's request id (X-Request-ID): quote it when reporting
	// RetryAfter is the answer's Retry-After, in seconds, as a duration; 0 when none.
	RetryAfter time.Duration
	// Problem is the whole problem (with Upstream, Concur's own error, and Recorded, the
	// recorded close of batch_already_closed); nil when the answer was not a problem.
	Problem *api.Problem
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("payment-batch gateway: %s %s: %d", e.Method, e.Path, e.Status)
	if e.Code != "" {
		msg += " " + e.Code
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.RequestID != "" {
		msg += " (request " + e.RequestID + ")"
	}
	return msg
}

// ErrorCode returns the problem code of the *Error in err's chain, "" when there is none
// (a transport failure, a time-out, or an answer that was not a problem).
func ErrorCode(err error) string {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return ""
}

// errorFrom reads a non-2xx answer, at most maxErrorBody bytes of it.
func errorFrom(method, path string, resp *http.Response) *Error {
	e := &Error{Method: method, Path: path, Status: resp.StatusCode, RequestID: resp.Header.Get("X-Request-ID")}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "application/problem+json" || mt == "application/json" {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		var p api.Problem
		if json.Unmarshal(body, &p) == nil && p.Code != "" {
			e.Code, e.Detail, e.Problem = p.Code, p.Detail, &p
			if e.RequestID == "" {
				e.RequestID = p.RequestID
			}
			return e
		}
	}
	e.Detail = fmt.Sprintf("unexpected answer %q (%s)", resp.Status, mt)
	return e
}
