package httpapi

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/finplat/payment-batch-gateway/api"
	"github.com/finplat/payment-batch-gateway/internal/auth"
	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// Codes that only the HTTP layer produces; the domain's are in internal/batch.
const (
	codeRouteNotFound    batch.Code = "route_not_found"
	codeMethodNotAllowed batch.Code = "method_not_allowed"
	codeBodyNotAllowed   batch.Code = "request_body_not_allowed" // no endpoint takes a request body
	codeInvalidIdemKey   batch.Code = "invalid_idempotency_key"
	codeIdemKeyMismatch  batch.Code = "idempotency_key_mismatch" // the key was used for a different request
	codeIdemKeyInUse     batch.Code = "idempotency_key_in_use"   // the key's first request is still running
	codeUnauthorized     batch.Code = "unauthorized"             // no or invalid caller credentials (auth.ErrUnauthenticated)
	codeForbidden        batch.Code = "forbidden"                // the caller lacks the scope (auth.ErrForbidden)
	codeRateLimited      batch.Code = "rate_limited"             // the caller is over its request rate
)

// kindStatus is the one table from error kind to HTTP status.
var kindStatus = map[batch.Kind]int{
	batch.KindInvalid:         http.StatusBadRequest,
	batch.KindUnauthorized:    http.StatusUnauthorized,
	batch.KindForbidden:       http.StatusForbidden,
	batch.KindNotFound:        http.StatusNotFound,
	batch.KindConflict:        http.StatusConflict,
	batch.KindRateLimited:     http.StatusTooManyRequests,
	batch.KindUnavailable:     http.StatusServiceUnavailable,
	batch.KindUpstreamTimeout: http.StatusGatewayTimeout,
	batch.KindUpstreamBad:     http.StatusBadGateway,
	batch.KindInternal:        http.StatusInternalServerError,
}

// httpCode describes a code of the HTTP layer's own. status, when set, is an exception
// to the kind's status, where HTTP has a more precise one.
type httpCode struct {
	kind   batch.Kind
	title  string
	status int
}

var httpCodes = map[batch.Code]httpCode{
	codeRouteNotFound:    {batch.KindNotFound, "No such route", 0},
	codeMethodNotAllowed: {batch.KindInvalid, "Method not allowed", http.StatusMethodNotAllowed},            // RFC 9110 15.5.6, with Allow
	codeBodyNotAllowed:   {batch.KindInvalid, "Request body not allowed", http.StatusRequestEntityTooLarge}, // RFC 9110 15.5.14: the body is more than the server accepts
	codeInvalidIdemKey:   {batch.KindInvalid, "Invalid Idempotency-Key", 0},
	codeIdemKeyMismatch:  {batch.KindInvalid, "Idempotency-Key reused for another request", http.StatusUnprocessableEntity}, // the Idempotency-Key draft's status for a reused key
	codeIdemKeyInUse:     {batch.KindConflict, "Idempotency-Key in use", 0},
	codeUnauthorized:     {batch.KindUnauthorized, "Authentication required", 0},
	codeForbidden:        {batch.KindForbidden, "Not allowed", 0},
	codeRateLimited:      {batch.KindRateLimited, "Too many requests", 0},
}

// describe is what a caller is told about code: its title and status; ok is false for a
// code neither the HTTP layer nor the domain knows.
func describe(code batch.Code) (title string, status int, ok bool) {
	if h, ok := httpCodes[code]; ok {
		if h.status == 0 {
			h.status = kindStatus[h.kind]
		}
		return h.title, h.status, true
	}
	if !code.Known() {
		return "", 0, false
	}
	return code.Title(), kindStatus[code.Kind()], true
}

// problemType godoc
//
//	@Summary		Describe a problem type
//	@Description	Every problem's `type` is `/problems/{code}`; this describes that code.
//	@Tags			operations
//	@Produce		json
//	@Produce		application/problem+json
//	@Param			code	path		string	true	"A problem code, e.g. batch_not_found"	minlength(1)	maxlength(64)
//	@Success		200		{object}	api.ProblemType
//	@Failure		404		{object}	api.Problem	"route_not_found"
//	@ID				getProblemType
//	@Router			/problems/{code} [get]
func problemType(w http.ResponseWriter, r *http.Request) {
	code := batch.Code(chi.URLParam(r, "code"))
	title, status, ok := describe(code)
	if !ok {
		writeProblem(w, r, batch.Errorf(codeRouteNotFound, "no problem type %q", code))
		return
	}
	_ = writeJSON(w, http.StatusOK, api.ProblemType{Code: string(code), Title: title, Status: status})
}

// problemFor turns any error into the problem a caller may see. Only *batch.Error values
// and auth's refusals contribute a detail; anything else becomes a generic internal error.
func problemFor(err error, instance, requestID string) (api.Problem, http.Header) {
	h := http.Header{}
	e, ok := errors.AsType[*batch.Error](err)
	if ae, refused := errors.AsType[*auth.Error](err); !ok && refused {
		e, ok = authError(ae), true
		h.Set("WWW-Authenticate", ae.Challenge)
	}
	if !ok {
		e = &batch.Error{Code: batch.CodeInternal}
	}
	title, status, known := describe(e.Code)
	if !known {
		e = &batch.Error{Code: batch.CodeInternal}
		title, status, _ = describe(batch.CodeInternal)
	}
	p := api.Problem{
		Type:      "/problems/" + string(e.Code),
		Title:     title,
		Status:    status,
		Detail:    e.Detail,
		Instance:  instance,
		Code:      string(e.Code),
		RequestID: requestID,
	}
	if e.Code == batch.CodeInternal {
		p.Detail = "an unexpected error occurred; quote the request id when reporting it"
	}
	if u := e.Upstream; u != nil {
		p.Upstream = &api.UpstreamProblem{Status: u.Status, Message: u.Message, ID: u.ID, ServerTime: u.ServerTime,
			CorrelationID: e.CorrelationID}
	} else {
		p.ConcurCorrelationID = e.CorrelationID // an answer that was no error, e.g. an unreadable 200
	}
	if e.Recorded != nil {
		rec := closeResponse(e.Recorded.BatchID, *e.Recorded)
		p.Recorded = &rec
	}
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds()))))
	}
	return p, h
}

// authError is auth's refusal in the HTTP layer's words.
func authError(e *auth.Error) *batch.Error {
	code := codeUnauthorized
	if errors.Is(e.Kind, auth.ErrForbidden) {
		code = codeForbidden
	}
	return &batch.Error{Code: code, Detail: e.Detail, Err: e}
}

// writeProblem writes err as application/problem+json.
func writeProblem(w http.ResponseWriter, r *http.Request, err error) {
	p, h := problemFor(err, r.URL.Path, requestIDFrom(r.Context()))
	for k, v := range h {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p) // the status is sent; a failed write has nobody to tell
}
