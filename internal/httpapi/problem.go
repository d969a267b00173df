package httpapi

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/finplat/payment-batch-gateway/api"
	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// Codes that only the HTTP layer produces.
const (
	codeRouteNotFound    batch.Code = "route_not_found"
	codeMethodNotAllowed batch.Code = "method_not_allowed"
)

type problemKind struct {
	status int
	title  string
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
	kind, ok := problemKinds[code]
	if !ok {
		writeProblem(w, r, batch.Errorf(codeRouteNotFound, "no problem type %q", code))
		return
	}
	_ = writeJSON(w, http.StatusOK, api.ProblemType{Code: string(code), Title: kind.title, Status: kind.status})
}

// problemKinds is the one table from error code to HTTP status. A code missing here is a
// bug and is answered as internal.
var problemKinds = map[batch.Code]problemKind{
	batch.CodeInvalidBatchID:      {http.StatusBadRequest, "Invalid batch id"},
	batch.CodeBatchNotFound:       {http.StatusNotFound, "Batch not found"},
	batch.CodeFileNotFound:        {http.StatusNotFound, "Payment file not found"},
	batch.CodeFileNotReady:        {http.StatusConflict, "Payment file not ready yet"},
	batch.CodeFileChanged:         {http.StatusBadGateway, "Concur's payment file changed"},
	batch.CodeTooManyDownloads:    {http.StatusTooManyRequests, "Too many downloads"},
	batch.CodeBatchNotClosable:    {http.StatusConflict, "Batch cannot be closed"},
	batch.CodeUpstreamConflict:    {http.StatusConflict, "Concur reported a conflict"},
	batch.CodeUpstreamAuthFailed:  {http.StatusBadGateway, "Concur rejected the gateway's credentials"},
	batch.CodeUpstreamRateLimited: {http.StatusTooManyRequests, "Concur is throttling requests"},
	batch.CodeUpstreamUnavailable: {http.StatusServiceUnavailable, "Concur is unavailable"},
	batch.CodeUpstreamTimeout:     {http.StatusGatewayTimeout, "Concur did not answer in time"},
	batch.CodeUpstreamBadResponse: {http.StatusBadGateway, "Concur sent an unexpected answer"},
	batch.CodeUpstreamUnreachable: {http.StatusBadGateway, "Concur is unreachable"},
	batch.CodeUpstreamHostRefused: {http.StatusBadGateway, "Concur pointed to an untrusted host"},
	batch.CodeUpstreamRejected:    {http.StatusBadGateway, "Concur rejected the request"},
	batch.CodeBatchAlreadyClosed:  {http.StatusConflict, "Batch already closed"},
	batch.CodeCloseInProgress:     {http.StatusConflict, "A close of this batch is in progress"},
	batch.CodeCloseOutcomeUnknown: {http.StatusConflict, "An earlier close of this batch may still be taking effect"},
	batch.CodeInvalidRequest:      {http.StatusBadRequest, "Invalid request"},
	batch.CodeInvalidCursor:       {http.StatusBadRequest, "Invalid list cursor"},
	batch.CodeBodyNotAllowed:      {http.StatusRequestEntityTooLarge, "Request body not allowed"},
	batch.CodeInvalidIdemKey:      {http.StatusBadRequest, "Invalid Idempotency-Key"},
	batch.CodeIdemKeyMismatch:     {http.StatusUnprocessableEntity, "Idempotency-Key reused for another request"},
	batch.CodeIdemKeyInUse:        {http.StatusConflict, "Idempotency-Key in use"},
	batch.CodeUnauthorized:        {http.StatusUnauthorized, "Authentication required"},
	batch.CodeForbidden:           {http.StatusForbidden, "Not allowed"},
	batch.CodeRateLimited:         {http.StatusTooManyRequests, "Too many requests"},
	batch.CodeStoreUnavailable:    {http.StatusServiceUnavailable, "Gateway database unavailable"},
	batch.CodeInternal:            {http.StatusInternalServerError, "Internal error"},
	codeRouteNotFound:             {http.StatusNotFound, "No such route"},
	codeMethodNotAllowed:          {http.StatusMethodNotAllowed, "Method not allowed"},
}

// problemFor turns any error into the problem a caller may see. Only *batch.Error values
// contribute a detail; anything else becomes a generic internal error.
func problemFor(err error, instance, requestID string) (api.Problem, http.Header) {
	e, ok := errors.AsType[*batch.Error](err)
	if !ok {
		e = &batch.Error{Code: batch.CodeInternal}
	}
	kind, known := problemKinds[e.Code]
	if !known {
		e, kind = &batch.Error{Code: batch.CodeInternal}, problemKinds[batch.CodeInternal]
	}
	p := api.Problem{
		Type:      "/problems/" + string(e.Code),
		Title:     kind.title,
		Status:    kind.status,
		Detail:    e.Detail,
		Instance:  instance,
		Code:      string(e.Code),
		RequestID: requestID,
	}
	if e.Code == batch.CodeInternal {
		p.Detail = "an unexpected error occurred; quote the request id when reporting it"
	}
	if u := e.Upstream; u != nil {
		p.Upstream = &api.UpstreamProblem{Status: u.Status, Message: u.Message, ID: u.ID, ServerTime: u.ServerTime}
	}
	if e.Recorded != nil {
		rec := closeResponse(e.Recorded.BatchID, *e.Recorded)
		p.Recorded = &rec
	}
	h := http.Header{}
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds()))))
	}
	return p, h
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
