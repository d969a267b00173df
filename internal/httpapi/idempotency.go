package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/store"
)

// IdempotencyStore keeps callers' idempotency keys (internal/store implements it).
type IdempotencyStore interface {
	ClaimIdempotencyKey(ctx context.Context, rec store.Idempotency, now time.Time) (store.Idempotency, bool, error)
	CompleteIdempotencyKey(ctx context.Context, rec store.Idempotency) error
	ReleaseIdempotencyKey(ctx context.Context, caller, key, requestID string) error
}

// Idempotency configures the Idempotency-Key handling of the close.
type Idempotency struct {
	Store IdempotencyStore
	TTL   time.Duration // how long a key is kept; default 24h
	Lease time.Duration // how long a claimed key may stay in progress (longer than any close); default 10 min
	Now   func() time.Time
}

// validIdemKey is an Idempotency-Key without its optional quotes: visible ASCII except
// '"' and '\', at most 255 characters.
var validIdemKey = regexp.MustCompile(`^[!#-\[\]-~]{1,255}$`)

// maxRecordedBody bounds an answer kept for replay; the close's answers are small JSON.
const maxRecordedBody = 64 << 10

// idemKeyKey is the context key of a claimed Idempotency-Key: string.
type idemKeyKey struct{}

func idempotencyKeyFrom(ctx context.Context) string {
	k, _ := ctx.Value(idemKeyKey{}).(string)
	return k
}

// idempotent implements draft-ietf-httpapi-idempotency-key-header for one route. A request
// with a key claims it (per caller); its answer is recorded when it is final, so the same
// request with the same key gets it again, marked Idempotency-Replayed. An answer that
// invites a retry (5xx, 429, close_in_progress) releases the key instead: the retry then
// runs again through the domain's guards, which are what prevents a second close. A
// regeneration (?regenerate=true) bypasses those guards, so its outcome-unknown answers
// are final: its retry gets them again rather than regenerating the file a second time.
func idempotent(cfg Idempotency) func(http.Handler) http.Handler {
	if cfg.TTL <= 0 {
		cfg.TTL = 24 * time.Hour
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 10 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return func(next http.Handler) http.Handler {
		return handle(func(w http.ResponseWriter, r *http.Request) error {
			values := r.Header.Values("Idempotency-Key")
			if len(values) == 0 {
				next.ServeHTTP(w, r)
				return nil
			}
			key, ok := parseIdemKey(values)
			if !ok {
				return batch.Errorf(codeInvalidIdemKey,
					"Idempotency-Key must be one value of 1-255 visible ASCII characters, optionally quoted")
			}
			if cfg.Store == nil {
				return &batch.Error{Code: batch.CodeStoreUnavailable, Detail: "idempotency keys are not available"}
			}
			now := cfg.Now()
			rec := store.Idempotency{
				Caller: callerID(r.Context()), Key: key, Fingerprint: fingerprint(r),
				State: store.IdempotencyInProgress, RequestID: requestIDFrom(r.Context()),
				LeaseUntil: now.Add(cfg.Lease), ExpiresAt: now.Add(cfg.TTL), CreatedAt: now,
			}
			got, claimed, err := cfg.Store.ClaimIdempotencyKey(r.Context(), rec, now)
			switch {
			case err != nil:
				return storeUnavailable(err)
			case claimed:
				return serveClaimed(cfg.Store, next, w, r, rec)
			case got.Fingerprint != rec.Fingerprint:
				return batch.Errorf(codeIdemKeyMismatch,
					"this Idempotency-Key was used for a different request (another batch or query)")
			case got.State != store.IdempotencyDone:
				return &batch.Error{Code: codeIdemKeyInUse, RetryAfter: 5 * time.Second,
					Detail: "the first request with this Idempotency-Key is still running"}
			}
			replay(w, r, got)
			return nil
		})
	}
}

func parseIdemKey(values []string) (string, bool) {
	if len(values) != 1 {
		return "", false
	}
	k := strings.TrimSpace(values[0])
	if len(k) >= 2 && k[0] == '"' && k[len(k)-1] == '"' {
		k = k[1 : len(k)-1]
	}
	return k, validIdemKey.MatchString(k)
}

// fingerprint identifies the request a key was first used for: method, path, query
// (canonically ordered) and whether it asked for an asynchronous close. The close takes no
// body.
func fingerprint(r *http.Request) string {
	async := ""
	if prefersAsync(r.Header) {
		async = " respond-async"
	}
	h := sha256.Sum256([]byte(r.Method + " " + r.URL.EscapedPath() + "?" + r.URL.Query().Encode() + async))
	return hex.EncodeToString(h[:])
}

func serveClaimed(st IdempotencyStore, next http.Handler, w http.ResponseWriter, r *http.Request, rec store.Idempotency) error {
	ctx := context.WithoutCancel(r.Context())
	rw := &recordingWriter{ResponseWriter: w}
	defer func() {
		if p := recover(); p != nil { // free the key at once, rather than when its lease ends
			_ = st.ReleaseIdempotencyKey(ctx, rec.Caller, rec.Key, rec.RequestID)
			panic(p)
		}
	}()
	next.ServeHTTP(rw, r.WithContext(context.WithValue(r.Context(), idemKeyKey{}, rec.Key)))

	var err error
	if final(rw.status, batch.ErrorCode(outcomeFrom(r.Context()).err), w.Header().Get("Retry-After")) && !rw.overflow {
		rec.State, rec.Status, rec.Body = store.IdempotencyDone, rw.status, rw.body.Bytes()
		rec.ContentType, rec.RetryAfter = w.Header().Get("Content-Type"), w.Header().Get("Retry-After")
		err = st.CompleteIdempotencyKey(ctx, rec)
	} else {
		err = st.ReleaseIdempotencyKey(ctx, rec.Caller, rec.Key, rec.RequestID)
	}
	if err != nil {
		// The answer is sent; the key stays in progress until its lease ends.
		zerolog.Ctx(ctx).Error().Err(err).Msg("could not record the answer of an idempotency key")
	}
	return nil
}

// final reports whether an answer is the request's definitive one, the only kind a key
// records. Answers that invite a retry are not: no answer (the caller hung up before one
// was written), 5xx, 429, anything with a Retry-After, and the codes that say "not now".
// A retry then runs through the domain, which finds the attempt the key already made
// (batch.Service.Close) and answers with its outcome instead of closing again.
func final(status int, code batch.Code, retryAfter string) bool {
	switch {
	case status < 200, status >= 500, status == http.StatusTooManyRequests, retryAfter != "":
		return false
	case code == batch.CodeCloseInProgress, code == batch.CodeCloseOutcomeUnknown, code == codeIdemKeyInUse,
		code == batch.CodeStoreUnavailable, code == batch.CodeBatchNotClosable: // try again later
		return false
	}
	return true
}

func replay(w http.ResponseWriter, r *http.Request, rec store.Idempotency) {
	h := w.Header()
	h.Set("Content-Type", rec.ContentType)
	h.Add("Vary", "Prefer")
	if rec.Status == http.StatusAccepted { // an accepted asynchronous close: its headers again
		h.Set("Location", strings.TrimSuffix(r.URL.Path, "/close"))
		h.Set("Preference-Applied", "respond-async")
	}
	if rec.RetryAfter != "" {
		h.Set("Retry-After", rec.RetryAfter)
	}
	h.Set("Cache-Control", "no-store")
	h.Set("Idempotency-Replayed", "true")
	w.WriteHeader(rec.Status)
	_, _ = w.Write(rec.Body)
}

// recordingWriter passes an answer through and keeps a copy of it (up to maxRecordedBody).
type recordingWriter struct {
	http.ResponseWriter
	status   int
	body     bytes.Buffer
	overflow bool
}

func (w *recordingWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recordingWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.body.Len()+len(b) > maxRecordedBody {
		w.overflow = true
	} else {
		w.body.Write(b)
	}
	return w.ResponseWriter.Write(b)
}

// Status is the status sent, 0 while none.
func (w *recordingWriter) Status() int { return w.status }

func (w *recordingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func storeUnavailable(err error) error {
	return &batch.Error{Code: batch.CodeStoreUnavailable, Detail: "the gateway's database is not available",
		RetryAfter: 5 * time.Second, Err: err}
}
