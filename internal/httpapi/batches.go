package httpapi

import (
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/finplat/payment-batch-gateway/api"
	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// BatchService is what the batch handlers need from the domain.
type BatchService interface {
	Close(ctx context.Context, req batch.CloseRequest) (batch.CloseResult, error)
	Closes(ctx context.Context, id string, limit int) ([]batch.Close, error)
	File(ctx context.Context, req batch.FileRequest) (*batch.File, error)
	List(ctx context.Context, req batch.ListRequest) (batch.Page, error)
	Get(ctx context.Context, id string) (batch.Detail, error)
}

// batchID reads and validates the {id} path parameter and notes it for the access log.
func batchID(r *http.Request) (string, error) {
	id := chi.URLParam(r, "id")
	if err := batch.ValidateID(id); err != nil {
		return "", err
	}
	outcomeFrom(r.Context()).batchID = id
	return id, nil
}

// closeBatch godoc
//
//	@Summary		Close a payment batch
//	@Description	Closes the batch through Concur's synchronous (v1.1) close. `{id}` is the plain Concur BatchID; the gateway maps it to Concur's encrypted Batch-URL. No request body.
//	@Description
//	@Description	**Asynchronous close.** With `Prefer: respond-async` (RFC 7240) the gateway uses Concur's asynchronous (v1.2) close and answers 202 Accepted with `Location: /batches/{id}`, `Preference-Applied: respond-async` and Concur's `jobQueueKey`. The batch's status then comes from Concur's batch list (`GET /batches/{id}`); once it is CLOSED, the first `GET /batches/{id}/file` obtains the File-Url with a v1.1 close of the closed batch, as Concur recommends: that is the one regeneration the gateway makes on its own, recorded as such. Until then the download answers 409 `file_not_ready`.
//	@Description
//	@Description	**Regeneration guard.** Closing a closed batch makes Concur regenerate its payment file, which can pay people twice. A batch the gateway knows is closed (it closed it, or Concur's CLOSED list holds it) answers 409 `batch_already_closed` with the recorded result, without calling Concur. `?regenerate=true` closes it anyway, on purpose, and is recorded as such.
//	@Description
//	@Description	**One close at a time.** While a close of the batch runs (in any replica), another answers 409 `close_in_progress`. Once sent to Concur, a close runs to completion even if the caller disconnects, and every attempt is recorded (`GET /batches/{id}/closes`). When an earlier close's outcome is unknown (time-out), the next one first re-reads Concur's batch list.
//	@Description
//	@Description	**Idempotency-Key** (draft-ietf-httpapi-idempotency-key-header): the same key with the same request replays the recorded answer with `Idempotency-Replayed: true`; with another batch or query it is 422 `idempotency_key_mismatch`; while the first request runs, 409 `idempotency_key_in_use`. Keys are scoped per caller and kept 24 h. Answers that invite a retry (5xx, 429, `close_in_progress`) are not recorded, so a retry runs again through the guards.
//	@Tags			batches
//	@Produce		json
//	@Produce		application/problem+json
//	@Param			id				path		string	true	"Concur BatchID: 1-64 characters of A-Z a-z 0-9 _ -"	minlength(1)	maxlength(64)
//	@Param			regenerate		query		bool	false	"Close even if the batch is closed: Concur regenerates its payment file"
//	@Param			Idempotency-Key	header		string	false	"Up to 255 visible ASCII characters, optionally as a quoted string"	minlength(1)	maxlength(257)
//	@Param			Prefer			header		string	false	"respond-async: close asynchronously (Concur v1.2), answer 202"	maxlength(256)
//	@Success		200				{object}	api.CloseResponse
//	@Success		202				{object}	api.CloseResponse	"the asynchronous close was accepted (Prefer: respond-async)"
//	@Failure		400				{object}	api.Problem	"invalid_batch_id, invalid_request, invalid_idempotency_key"
//	@Failure		404				{object}	api.Problem	"batch_not_found"
//	@Failure		409				{object}	api.Problem	"batch_already_closed (with recorded), close_in_progress, close_outcome_unknown, idempotency_key_in_use, batch_not_closable, upstream_conflict"
//	@Failure		422				{object}	api.Problem	"idempotency_key_mismatch"
//	@Failure		429				{object}	api.Problem	"rate_limited (this caller), upstream_rate_limited (Concur); with Retry-After"
//	@Failure		500				{object}	api.Problem	"internal"
//	@Failure		502				{object}	api.Problem	"upstream_auth_failed, upstream_bad_response, upstream_unreachable, upstream_host_refused, upstream_rejected"
//	@Failure		503				{object}	api.Problem	"upstream_unavailable, store_unavailable (with Retry-After)"
//	@Failure		504				{object}	api.Problem	"upstream_timeout"
//	@Header			all				{string}	X-Request-ID			"The request's id: the caller's, when well-formed, or a new one"
//	@Header			all				{string}	Access-Control-Allow-Origin	"The request's Origin, when GATEWAY_CORS_ORIGINS lists it (none by default): CORS; absent otherwise"
//	@Header			all				{string}	Idempotency-Replayed	"true when the answer is a replay of a recorded one"
//	@Header			202				{string}	Location				"/batches/{id}: where the batch's status shows"
//	@Header			202				{string}	Preference-Applied		"respond-async"
//	@Header			409,429,503,504	{integer}	Retry-After				"Seconds to wait before trying again"
//	@Failure		401	{object}	api.Problem	"unauthorized (with WWW-Authenticate)"
//	@Failure		403	{object}	api.Problem	"forbidden: needs batches:close (and batches:regenerate with ?regenerate=true)"
//	@Failure		413	{object}	api.Problem	"request_body_not_allowed"
//	@Security		BearerAuth
//	@ID				closeBatch
//	@Router			/batches/{id}/close [post]
func closeBatch(svc BatchService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		id, err := batchID(r)
		if err != nil {
			return err
		}
		regenerate, err := regenerateParam(r.URL.Query())
		if err != nil {
			return err
		}
		async := prefersAsync(r.Header)
		w.Header().Add("Vary", "Prefer")
		// The domain finishes a close that has started even if this caller hangs up.
		res, err := svc.Close(r.Context(), batch.CloseRequest{
			ID:             id,
			Caller:         callerName(r.Context()),
			RequestID:      requestIDFrom(r.Context()),
			IdempotencyKey: idempotencyKeyFrom(r.Context()),
			Regenerate:     regenerate,
			Async:          async,
		})
		if err != nil {
			return err
		}
		if res.Accepted {
			w.Header().Set("Location", "/batches/"+id)
			w.Header().Set("Preference-Applied", "respond-async")
			return writeJSON(w, http.StatusAccepted, closeResponse(id, res))
		}
		return writeJSON(w, http.StatusOK, closeResponse(id, res))
	}
}

// prefersAsync reports whether the request asks for an asynchronous answer: the
// respond-async preference of RFC 7240 in any Prefer header (names are case-insensitive;
// parameters such as wait are ignored).
func prefersAsync(h http.Header) bool {
	for _, v := range h.Values("Prefer") {
		for pref := range strings.SplitSeq(v, ",") {
			name, _, _ := strings.Cut(pref, ";")
			name, _, _ = strings.Cut(name, "=")
			if strings.EqualFold(strings.TrimSpace(name), "respond-async") {
				return true
			}
		}
	}
	return false
}

// regenerateParam reads the close's only query parameter. Anything else is refused, so a
// misspelt ?regenrate=true cannot silently become a plain close.
func regenerateParam(q url.Values) (bool, error) {
	for k := range q {
		if k != "regenerate" {
			return false, batch.Errorf(batch.CodeInvalidRequest, "unknown query parameter %q", k)
		}
	}
	switch v := q["regenerate"]; {
	case len(v) == 0:
		return false, nil
	case len(v) == 1 && (v[0] == "true" || v[0] == "false"):
		return v[0] == "true", nil
	default:
		return false, batch.Errorf(batch.CodeInvalidRequest, "regenerate must be true or false, once")
	}
}

func closeResponse(id string, res batch.CloseResult) api.CloseResponse {
	out := api.CloseResponse{
		BatchID:     id,
		BatchStatus: res.BatchStatus,
		Status:      res.Status,
		JobQueueKey: res.JobQueueKey,
		ClosedAt:    timeString(res.ClosedAt),
		Regenerated: res.Regenerated,
		Accepted:    res.Accepted,
	}
	if res.FileURL != "" {
		out.FileURL = "/batches/" + id + "/file"
	}
	return out
}

func timeString(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// batchCloses godoc
//
//	@Summary		A batch's audit trail of closes
//	@Description	Every attempt to close the batch through the gateway, newest first: who asked, when, what Concur answered, and the outcome (refused attempts included). Each close lists the latest downloads of its payment file (at most 20, newest first): who, when, how many bytes, the file's SHA-256 and the outcome.
//	@Tags			batches
//	@Produce		json
//	@Produce		application/problem+json
//	@Param			id		path		string	true	"Concur BatchID"	minlength(1)	maxlength(64)
//	@Param			limit	query		int		false	"At most this many attempts (1-1000, default 100)"	minimum(1)	maximum(1000)	format(int32)
//	@Success		200		{object}	api.CloseAttemptList
//	@Failure		400		{object}	api.Problem	"invalid_batch_id, invalid_request"
//	@Failure		404		{object}	api.Problem	"batch_not_found"
//	@Failure		429		{object}	api.Problem	"rate_limited (with Retry-After)"
//	@Failure		503		{object}	api.Problem	"store_unavailable"
//	@Header			all		{string}	X-Request-ID	"The request's id: the caller's, when well-formed, or a new one"
//	@Header			all		{string}	Access-Control-Allow-Origin	"The request's Origin, when GATEWAY_CORS_ORIGINS lists it (none by default): CORS; absent otherwise"
//	@Failure		401	{object}	api.Problem	"unauthorized (with WWW-Authenticate)"
//	@Failure		403	{object}	api.Problem	"forbidden: needs batches:read"
//	@Failure		413	{object}	api.Problem	"request_body_not_allowed"
//	@Security		BearerAuth
//	@ID				listBatchCloses
//	@Router			/batches/{id}/closes [get]
func batchCloses(svc BatchService, dl Downloads) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		id, err := batchID(r)
		if err != nil {
			return err
		}
		limit, err := limitParam(r.URL.Query(), 100, 1000)
		if err != nil {
			return err
		}
		list, err := svc.Closes(r.Context(), id, limit)
		if err != nil {
			return err
		}
		since := int64(0)
		if len(list) > 0 {
			since = list[len(list)-1].ID // newest first: the last is the oldest listed
		}
		downloads, err := dl.History(r.Context(), id, since)
		if err != nil {
			return err
		}
		out := api.CloseAttemptList{Items: make([]api.CloseAttempt, len(list))}
		for i, a := range list {
			out.Items[i] = closeAttempt(id, a)
			out.Items[i].Downloads = fileDownloads(downloads[a.ID])
		}
		return writeJSON(w, http.StatusOK, out)
	}
}

func closeAttempt(id string, c batch.Close) api.CloseAttempt {
	out := api.CloseAttempt{
		ID: c.ID, Caller: c.Caller, RequestID: c.RequestID, IdempotencyKey: c.IdempotencyKey,
		Regenerate: c.Regenerate, StartedAt: timeString(c.StartedAt), EndedAt: timeString(c.EndedAt),
		Outcome: string(c.Outcome), UpstreamStatus: c.UpstreamStatus, UpstreamCorrelationID: c.UpstreamCorrelationID,
		Code: c.ErrorCode, Detail: c.Detail,
	}
	if c.Outcome == batch.OutcomeClosed {
		res := closeResponse(id, c.Result())
		out.Result = &res
	}
	return out
}

// limitParam reads ?limit (the only parameter allowed).
func limitParam(q url.Values, def, max int) (int, error) {
	for k := range q {
		if k != "limit" {
			return 0, batch.Errorf(batch.CodeInvalidRequest, "unknown query parameter %q", k)
		}
	}
	v := q["limit"]
	if len(v) == 0 {
		return def, nil
	}
	n, err := strconv.Atoi(v[0])
	if len(v) > 1 || err != nil || n < 1 || n > max {
		return 0, batch.Errorf(batch.CodeInvalidRequest, "limit must be an integer from 1 to %d, once", max)
	}
	return n, nil
}

// batchFile godoc
//
//	@Summary		Download a batch's payment file
//	@Description	Streams the payment file of the batch's last close through the gateway, with Concur's Content-Type (text/csv, or application/zip when the batch yields several files), Content-Length and Content-Disposition. After an asynchronous close, the first download (once Concur's batch list shows the batch CLOSED) obtains the File-Url with a v1.1 close of the closed batch, as Concur recommends: the one regeneration the gateway makes on its own, recorded in the audit trail; until then 409 `file_not_ready`.
//	@Description
//	@Description	**Fingerprint.** The first complete download of a close records the file's SHA-256 and size. Later downloads carry it as `Repr-Digest` (RFC 9530, `sha-256=:<base64>:`) and the size as Content-Length, and are verified while they stream: when Concur's file differs, the connection is cut before the last bytes, so the answer is short of its Content-Length, and the mismatch is recorded (`GET /batches/{id}/closes`). When Concur announces another length up front, the answer is 502 `file_changed`.
//	@Description
//	@Description	**Bounds.** Each caller may run a few downloads at once, and the gateway a few in all (GATEWAY_DOWNLOADS_PER_CALLER, GATEWAY_DOWNLOADS_MAX); beyond them 429 `too_many_downloads` with Retry-After, before Concur is called. A download slower than GATEWAY_DOWNLOAD_MIN_RATE_BYTES_PER_SECOND over GATEWAY_DOWNLOAD_RATE_WINDOW is cut.
//	@Tags			batches
//	@Produce		text/csv
//	@Produce		application/zip
//	@Produce		application/problem+json
//	@Param			id	path		string	true	"Concur BatchID"	minlength(1)	maxlength(64)
//	@Success		200	{file}		file
//	@Failure		400	{object}	api.Problem	"invalid_batch_id"
//	@Failure		404	{object}	api.Problem	"file_not_found"
//	@Failure		409	{object}	api.Problem	"file_not_ready (an asynchronous close has not taken effect yet; with Retry-After), close_in_progress, close_outcome_unknown"
//	@Failure		429	{object}	api.Problem	"rate_limited (this caller), too_many_downloads (this caller's, or the gateway's, downloads at once), upstream_rate_limited (Concur); with Retry-After"
//	@Failure		500	{object}	api.Problem	"internal"
//	@Failure		502	{object}	api.Problem	"file_changed (Concur announced another size than the first complete download's), upstream_host_refused, upstream_bad_response, upstream_unreachable, upstream_auth_failed, upstream_rejected"
//	@Failure		503	{object}	api.Problem	"upstream_unavailable (with Retry-After)"
//	@Failure		504	{object}	api.Problem	"upstream_timeout"
//	@Header			all	{string}	X-Request-ID	"The request's id: the caller's, when well-formed, or a new one"
//	@Header			all	{string}	Access-Control-Allow-Origin	"The request's Origin, when GATEWAY_CORS_ORIGINS lists it (none by default): CORS; absent otherwise"
//	@Header			200	{string}	Repr-Digest	"sha-256=:<base64>: of the file as first downloaded completely from this close (RFC 9530); absent on the first download"
//	@Header			409,429,503,504	{integer}	Retry-After	"Seconds to wait before trying again"
//	@Failure		401	{object}	api.Problem	"unauthorized (with WWW-Authenticate)"
//	@Failure		403	{object}	api.Problem	"forbidden: needs batches:read"
//	@Failure		413	{object}	api.Problem	"request_body_not_allowed"
//	@Security		BearerAuth
//	@ID				downloadBatchFile
//	@Router			/batches/{id}/file [get]
func batchFile(svc BatchService, dl Downloads, writeTimeout time.Duration) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		id, err := batchID(r)
		if err != nil {
			return err
		}
		req := batch.FileRequest{ID: id, Caller: callerName(r.Context()), RequestID: requestIDFrom(r.Context())}
		release, err := dl.Admit(req.Caller) // before Concur is called
		if err != nil {
			return err
		}
		defer release() // also on a panic, or when the caller hangs up
		f, err := svc.File(r.Context(), req)
		if err != nil {
			return err
		}
		defer f.Body.Close()
		s, err := dl.Begin(r.Context(), f, req)
		if err != nil {
			return err
		}

		h := w.Header()
		h.Set("Content-Type", fileContentType(f.ContentType))
		h.Set("Content-Disposition", fileDisposition(f.ContentDisposition, id, h.Get("Content-Type")))
		if n := s.Length(); n >= 0 {
			h.Set("Content-Length", strconv.FormatInt(n, 10))
		}
		if d := s.ReprDigest(); d != "" {
			h.Set("Repr-Digest", d)
		}
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		sink := newFileSink(w, writeTimeout)
		sink.flush() // the headers go now: the first bytes wait for the next chunk or the end
		res, err := s.Stream(r.Context(), sink)
		logDownload(r.Context(), id, f.CloseID, res, err)
		return err
	}
}

func fileContentType(ct string) string {
	if _, _, err := mime.ParseMediaType(ct); err != nil || ct == "" {
		return "application/octet-stream"
	}
	return ct
}

// fileDisposition keeps Concur's Content-Disposition when it parses, re-rendered so that
// nothing but a well-formed header value goes out; otherwise names the file itself.
func fileDisposition(concur, id, contentType string) string {
	if typ, params, err := mime.ParseMediaType(concur); err == nil {
		if v := mime.FormatMediaType(typ, params); v != "" {
			return v
		}
	}
	ext := ".csv"
	if mt, _, _ := mime.ParseMediaType(contentType); mt == "application/zip" {
		ext = ".zip"
	}
	return mime.FormatMediaType("attachment", map[string]string{"filename": "batch-" + id + ext})
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
	return nil
}
