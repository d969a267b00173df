package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/finplat/payment-batch-gateway/api"
	"github.com/finplat/payment-batch-gateway/internal/batch"
)

func TestProblemTable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code       batch.Code
		status     int
		retryAfter string
	}{
		{batch.CodeInvalidBatchID, 400, ""},
		{batch.CodeBatchNotFound, 404, ""},
		{batch.CodeFileNotFound, 404, ""},
		{batch.CodeFileNotReady, 409, ""},
		{batch.CodeFileChanged, 502, ""},
		{batch.CodeTooManyDownloads, 429, ""},
		{batch.CodeBatchNotClosable, 409, ""},
		{batch.CodeUpstreamConflict, 409, ""},
		{batch.CodeUpstreamAuthFailed, 502, ""},
		{batch.CodeUpstreamRateLimited, 429, "60"},
		{batch.CodeUpstreamUnavailable, 503, "300"},
		{batch.CodeUpstreamTimeout, 504, ""},
		{batch.CodeUpstreamBadResponse, 502, ""},
		{batch.CodeUpstreamUnreachable, 502, ""},
		{batch.CodeUpstreamHostRefused, 502, ""},
		{batch.CodeUpstreamRejected, 502, ""},
		{batch.CodeBatchAlreadyClosed, 409, ""},
		{batch.CodeCloseInProgress, 409, ""},
		{batch.CodeCloseOutcomeUnknown, 409, ""},
		{batch.CodeInvalidRequest, 400, ""},
		{batch.CodeInvalidCursor, 400, ""},
		{batch.CodeInvalidIdemKey, 400, ""},
		{batch.CodeBodyNotAllowed, 413, ""},
		{batch.CodeIdemKeyMismatch, 422, ""},
		{batch.CodeIdemKeyInUse, 409, ""},
		{batch.CodeUnauthorized, 401, ""},
		{batch.CodeForbidden, 403, ""},
		{batch.CodeRateLimited, 429, ""},
		{batch.CodeStoreUnavailable, 503, "300"},
		{batch.CodeInternal, 500, ""},
		{codeRouteNotFound, 404, ""},
		{codeMethodNotAllowed, 405, ""},
	}
	if len(tests) != len(problemKinds) {
		t.Fatalf("table test has %d codes, problemKinds has %d: keep them in step", len(tests), len(problemKinds))
	}
	for _, tt := range tests {
		t.Run(string(tt.code), func(t *testing.T) {
			t.Parallel()
			e := &batch.Error{Code: tt.code, Detail: "some detail", Err: errors.New("secret cause")}
			switch tt.retryAfter {
			case "60":
				e.RetryAfter = 59500 * time.Millisecond // rounds up
			case "300":
				e.RetryAfter = 5 * time.Minute
			}
			p := render(t, e)
			if p.Status != tt.status || p.Code != string(tt.code) || p.Type != "/problems/"+string(tt.code) || p.Title == "" {
				t.Errorf("problem = %+v, want status %d code %s", p.Problem, tt.status, tt.code)
			}
			if p.header.Get("Retry-After") != tt.retryAfter {
				t.Errorf("Retry-After = %q, want %q", p.header.Get("Retry-After"), tt.retryAfter)
			}
			if strings.Contains(p.raw, "secret cause") {
				t.Errorf("cause leaked to the wire: %s", p.raw)
			}
		})
	}
}

func TestProblemHidesUnknownErrors(t *testing.T) {
	t.Parallel()
	for name, err := range map[string]error{
		"plain error":  errors.New("pq: password authentication failed for user admin"),
		"unknown code": &batch.Error{Code: "made_up", Detail: "internal detail"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := render(t, err)
			if p.Status != 500 || p.Code != "internal" {
				t.Errorf("got %d %s, want 500 internal", p.Status, p.Code)
			}
			if strings.Contains(p.raw, "password") || strings.Contains(p.raw, "internal detail") {
				t.Errorf("detail leaked: %s", p.raw)
			}
		})
	}
}

func TestProblemCarriesUpstream(t *testing.T) {
	t.Parallel()
	p := render(t, &batch.Error{
		Code:     batch.CodeBatchNotClosable,
		Detail:   "The batch you attempted to close does not contain any reports.",
		Upstream: &batch.UpstreamError{Status: 500, Message: "The batch ...", ID: "ABC-123", ServerTime: "2026-11-24T10:00:00"},
	})
	want := &api.UpstreamProblem{Status: 500, Message: "The batch ...", ID: "ABC-123", ServerTime: "2026-11-24T10:00:00"}
	if diff := cmp.Diff(want, p.Upstream); diff != "" {
		t.Errorf("upstream (-want +got):\n%s", diff)
	}
	if p.RequestID != "req-1" || p.Instance != "/batches/x/close" {
		t.Errorf("requestId/instance = %q %q", p.RequestID, p.Instance)
	}
}

type rendered struct {
	api.Problem
	raw    string
	header http.Header
}

func render(t *testing.T, err error) rendered {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/batches/x/close", nil)
	req.Header.Set("X-Request-ID", "req-1")
	requestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { writeProblem(w, r, err) })).ServeHTTP(rec, req)
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q", ct)
	}
	var p api.Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("problem is not JSON: %v\n%s", err, rec.Body)
	}
	if rec.Code != p.Status {
		t.Fatalf("HTTP status %d != problem status %d", rec.Code, p.Status)
	}
	return rendered{Problem: p, raw: rec.Body.String(), header: rec.Header()}
}

func FuzzProblem(f *testing.F) {
	f.Add("invalid_batch_id", "detail", "msg", 400, int64(0))
	f.Add("x\x00y", "\"}<script>", "\xff\xfe", -1, int64(-5))
	f.Fuzz(func(t *testing.T, code, detail, msg string, status int, retry int64) {
		err := &batch.Error{Code: batch.Code(code), Detail: detail, RetryAfter: time.Duration(retry),
			Upstream: &batch.UpstreamError{Status: status, Message: msg}}
		rec := httptest.NewRecorder()
		writeProblem(rec, httptest.NewRequest(http.MethodGet, "/x", nil), err)
		var p api.Problem
		if jerr := json.Unmarshal(rec.Body.Bytes(), &p); jerr != nil {
			t.Fatalf("not JSON: %v", jerr)
		}
		if _, known := problemKinds[batch.Code(code)]; !known && p.Code != "internal" {
			t.Fatalf("unknown code %q rendered as %q", code, p.Code)
		}
		if rec.Code != p.Status || rec.Code < 400 || rec.Code > 599 {
			t.Fatalf("status %d / %d", rec.Code, p.Status)
		}
	})
}

func TestProblemTypesAreServed(t *testing.T) {
	t.Parallel()
	h, _ := newTestHandler(t, panicky{})
	for code, kind := range problemKinds {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/problems/"+string(code), nil))
		var got api.ProblemType
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != 200 ||
			got != (api.ProblemType{Code: string(code), Title: kind.title, Status: kind.status}) {
			t.Errorf("GET /problems/%s = %d %s", code, rec.Code, rec.Body)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/problems/no_such_code", nil))
	if rec.Code != 404 || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Errorf("unknown problem type: %d %s", rec.Code, rec.Body)
	}
}
