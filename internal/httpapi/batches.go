package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/finplat/payment-batch-gateway/api"
	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// BatchService is what the batch handlers need from the domain.
type BatchService interface {
	Close(ctx context.Context, id string) (batch.CloseResult, error)
	File(ctx context.Context, id string) (*batch.File, error)
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
//	@Description	Closes the batch through Concur's synchronous (v1.1) close. `{id}` is the plain Concur BatchID; the gateway maps it to Concur's encrypted Batch-URL. Closing an already closed batch makes Concur regenerate its payment file. Once the close has been sent to Concur it runs to completion even if the caller disconnects. No request body.
//	@Tags			batches
//	@Produce		json
//	@Produce		application/problem+json
//	@Param			id	path		string	true	"Concur BatchID: 1-64 characters of A-Z a-z 0-9 _ -"	minlength(1)	maxlength(64)
//	@Success		200	{object}	api.CloseResponse
//	@Failure		400	{object}	api.Problem	"invalid_batch_id"
//	@Failure		404	{object}	api.Problem	"batch_not_found"
//	@Failure		409	{object}	api.Problem	"batch_not_closable, upstream_conflict"
//	@Failure		429	{object}	api.Problem	"upstream_rate_limited (with Retry-After)"
//	@Failure		500	{object}	api.Problem	"internal"
//	@Failure		502	{object}	api.Problem	"upstream_auth_failed, upstream_bad_response, upstream_unreachable, upstream_host_refused, upstream_rejected"
//	@Failure		503	{object}	api.Problem	"upstream_unavailable (with Retry-After)"
//	@Failure		504	{object}	api.Problem	"upstream_timeout"
//	@Header			all	{string}	X-Request-ID	"The request's id: the caller's, when well-formed, or a new one"
//	@Header			429,503,504	{integer}	Retry-After	"Seconds to wait before trying again"
//	@Router			/batches/{id}/close [post]
func closeBatch(svc BatchService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		id, err := batchID(r)
		if err != nil {
			return err
		}
		// The domain finishes a close that has started even if this caller hangs up.
		res, err := svc.Close(r.Context(), id)
		if err != nil {
			return err
		}
		out := api.CloseResponse{
			BatchID:     id,
			BatchStatus: res.BatchStatus,
			Status:      res.Status,
			JobQueueKey: res.JobQueueKey,
		}
		if res.FileURL != "" {
			out.FileURL = "/batches/" + id + "/file"
		}
		return writeJSON(w, http.StatusOK, out)
	}
}

// batchFile godoc
//
//	@Summary		Download a batch's payment file
//	@Description	Streams the payment file of the batch's last close through the gateway, with Concur's Content-Type (text/csv, or application/zip when the batch yields several files), Content-Length and Content-Disposition.
//	@Tags			batches
//	@Produce		text/csv
//	@Produce		application/zip
//	@Produce		application/problem+json
//	@Param			id	path		string	true	"Concur BatchID"	minlength(1)	maxlength(64)
//	@Success		200	{file}		file
//	@Failure		400	{object}	api.Problem	"invalid_batch_id"
//	@Failure		404	{object}	api.Problem	"file_not_found"
//	@Failure		429	{object}	api.Problem	"upstream_rate_limited (with Retry-After)"
//	@Failure		500	{object}	api.Problem	"internal"
//	@Failure		502	{object}	api.Problem	"upstream_host_refused, upstream_bad_response, upstream_unreachable, upstream_auth_failed, upstream_rejected"
//	@Failure		503	{object}	api.Problem	"upstream_unavailable (with Retry-After)"
//	@Failure		504	{object}	api.Problem	"upstream_timeout"
//	@Header			all	{string}	X-Request-ID	"The request's id: the caller's, when well-formed, or a new one"
//	@Header			429,503,504	{integer}	Retry-After	"Seconds to wait before trying again"
//	@Router			/batches/{id}/file [get]
func batchFile(svc BatchService, writeTimeout time.Duration) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		id, err := batchID(r)
		if err != nil {
			return err
		}
		f, err := svc.File(r.Context(), id)
		if err != nil {
			return err
		}
		defer f.Body.Close()

		h := w.Header()
		h.Set("Content-Type", fileContentType(f.ContentType))
		h.Set("Content-Disposition", fileDisposition(f.ContentDisposition, id, h.Get("Content-Type")))
		if f.ContentLength >= 0 {
			h.Set("Content-Length", strconv.FormatInt(f.ContentLength, 10))
		}
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		return streamFile(w, f.Body, writeTimeout)
	}
}

// streamFile copies through one small buffer, so memory does not grow with the file, and
// moves the write deadline forward per chunk: a slow but live caller may take as long as
// it needs, a stalled one is dropped after writeTimeout.
func streamFile(w http.ResponseWriter, body io.Reader, writeTimeout time.Duration) error {
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout)) // unsupported only in tests' recorders
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
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
