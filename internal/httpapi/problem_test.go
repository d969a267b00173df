package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/finplat/payment-batch-gateway/api"
	"github.com/finplat/payment-batch-gateway/internal/auth"
	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// The wire contract: every code's status and title, as the README and the committed spec
// publish them. Codes are written out as strings so that a renamed constant cannot pass.
func TestProblemTable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code       batch.Code
		status     int
		title      string
		retryAfter string
	}{
		{"invalid_batch_id", 400, "Invalid batch id", ""},
		{"batch_not_found", 404, "Batch not found", ""},
		{"file_not_found", 404, "Payment file not found", ""},
		{"file_not_ready", 409, "Payment file not ready yet", ""},
		{"file_changed", 502, "Concur's payment file changed", ""},
		{"too_many_downloads", 429, "Too many downloads", ""},
		{"batch_not_closable", 409, "Batch cannot be closed", ""},
		{"upstream_conflict", 409, "Concur reported a conflict", ""},
		{"upstream_auth_failed", 502, "Concur rejected the gateway's credentials", ""},
		{"upstream_rate_limited", 429, "Concur is throttling requests", "60"},
		{"upstream_unavailable", 503, "Concur is unavailable", "300"},
		{"upstream_timeout", 504, "Concur did not answer in time", ""},
		{"upstream_bad_response", 502, "Concur sent an unexpected answer", ""},
		{"upstream_unreachable", 502, "Concur is unreachable", ""},
		{"upstream_host_refused", 502, "Concur pointed to an untrusted host", ""},
		{"upstream_rejected", 502, "Concur rejected the request", ""},
		{"batch_already_closed", 409, "Batch already closed", ""},
		{"close_in_progress", 409, "A close of this batch is in progress", ""},
		{"close_outcome_unknown", 409, "An earlier close of this batch may still be taking effect", ""},
		{"invalid_request", 400, "Invalid request", ""},
		{"invalid_cursor", 400, "Invalid list cursor", ""},
		{"invalid_idempotency_key", 400, "Invalid Idempotency-Key", ""},
		{"request_body_not_allowed", 413, "Request body not allowed", ""},
		{"idempotency_key_mismatch", 422, "Idempotency-Key reused for another request", ""},
		{"idempotency_key_in_use", 409, "Idempotency-Key in use", ""},
		{"unauthorized", 401, "Authentication required", ""},
		{"forbidden", 403, "Not allowed", ""},
		{"rate_limited", 429, "Too many requests", ""},
		{"store_unavailable", 503, "Gateway database unavailable", "300"},
		{"internal", 500, "Internal error", ""},
		{"route_not_found", 404, "No such route", ""},
		{"method_not_allowed", 405, "Method not allowed", ""},
	}
	if len(tests) != len(knownCodes()) {
		t.Fatalf("table test has %d codes, the domain and the HTTP layer have %d: keep them in step", len(tests), len(knownCodes()))
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
			if p.Status != tt.status || p.Code != string(tt.code) || p.Type != "/problems/"+string(tt.code) || p.Title != tt.title {
				t.Errorf("problem = %+v, want status %d code %s title %q", p.Problem, tt.status, tt.code, tt.title)
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

// A Retry-After on the wire is whole seconds, at least 1: a wait under a second rounds up,
// and none (zero or negative) sends no header rather than "0".
func TestProblemRetryAfterAtLeastASecond(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		wait time.Duration
		want string
	}{
		{time.Nanosecond, "1"}, {300 * time.Millisecond, "1"}, {time.Second, "1"}, {1001 * time.Millisecond, "2"},
		{0, ""}, {-time.Second, ""},
	} {
		p := render(t, &batch.Error{Code: batch.CodeUpstreamRateLimited, RetryAfter: tt.wait})
		if got := p.header.Get("Retry-After"); got != tt.want {
			t.Errorf("RetryAfter %v: Retry-After = %q, want %q", tt.wait, got, tt.want)
		}
	}
}

// knownCodes is every code a caller can see: the domain's and the HTTP layer's.
func knownCodes() []batch.Code {
	return append(batch.Codes(), slices.Collect(maps.Keys(httpCodes))...)
}

// Every kind has a status, and a code's status is its kind's except for the few HTTP
// codes that name a more precise one.
func TestKindStatus(t *testing.T) {
	t.Parallel()
	for _, k := range batch.Kinds() {
		if s := kindStatus[k]; s < 400 || s > 599 {
			t.Errorf("kind %v has status %d", k, s)
		}
	}
	if len(kindStatus) != len(batch.Kinds()) {
		t.Errorf("kindStatus has %d kinds, the domain %d", len(kindStatus), len(batch.Kinds()))
	}
	exceptions := map[batch.Code]int{}
	for code, h := range httpCodes {
		if code.Known() {
			t.Errorf("%s is both the domain's and the HTTP layer's", code)
		}
		if h.status != 0 {
			exceptions[code] = h.status
		}
	}
	want := map[batch.Code]int{codeMethodNotAllowed: 405, codeBodyNotAllowed: 413, codeIdemKeyMismatch: 422}
	if diff := cmp.Diff(want, exceptions); diff != "" {
		t.Errorf("exceptions to the kind table (-want +got):\n%s", diff)
	}
}

// auth's refusals become 401 and 403 problems carrying their challenge; the reason stays
// in the log.
func TestProblemForAuthRefusals(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		err    *auth.Error
		status int
		code   string
	}{
		{&auth.Error{Kind: auth.ErrUnauthenticated, Detail: "invalid credentials", Challenge: `Bearer realm="r", error="invalid_token"`,
			Err: errors.New("unknown api key")}, 401, "unauthorized"},
		{&auth.Error{Kind: auth.ErrForbidden, Detail: "this operation needs the scope batches:close",
			Challenge: `Bearer realm="r", error="insufficient_scope"`, Err: errors.New("caller lacks scope")}, 403, "forbidden"},
	} {
		p := render(t, fmt.Errorf("wrapped: %w", tt.err))
		if p.Status != tt.status || p.Code != tt.code || p.Detail != tt.err.Detail {
			t.Errorf("%v: problem %+v", tt.err, p.Problem)
		}
		if got := p.header.Get("WWW-Authenticate"); got != tt.err.Challenge {
			t.Errorf("%v: WWW-Authenticate = %q, want %q", tt.err, got, tt.err.Challenge)
		}
		if strings.Contains(p.raw, tt.err.Err.Error()) {
			t.Errorf("the reason leaked to the wire: %s", p.raw)
		}
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
		Code:          batch.CodeBatchNotClosable,
		Detail:        "The batch you attempted to close does not contain any reports.",
		Upstream:      &batch.UpstreamError{Status: 500, Message: "The batch ...", ID: "ABC-123", ServerTime: "2026-11-24T10:00:00"},
		CorrelationID: "0b6f8a52-3c1e-4d7a-9f2b-5e8c1a4d7b90",
	})
	want := &api.UpstreamProblem{Status: 500, Message: "The batch ...", ID: "ABC-123", ServerTime: "2026-11-24T10:00:00",
		CorrelationID: "0b6f8a52-3c1e-4d7a-9f2b-5e8c1a4d7b90"}
	if diff := cmp.Diff(want, p.Upstream); diff != "" {
		t.Errorf("upstream (-want +got):\n%s", diff)
	}
	if p.RequestID != "req-1" || p.Instance != "/batches/x/close" {
		t.Errorf("requestId/instance = %q %q", p.RequestID, p.Instance)
	}
	if !strings.Contains(p.raw, `"correlationId":"0b6f8a52-3c1e-4d7a-9f2b-5e8c1a4d7b90"`) {
		t.Errorf("no upstream.correlationId on the wire: %s", p.raw)
	}
	if p.ConcurCorrelationID != "" {
		t.Errorf("concurCorrelationId = %q beside upstream: want it once, in upstream", p.ConcurCorrelationID)
	}
	// A failure without an error answer of Concur's (no Upstream) has no upstream object;
	// the id of a 200 it could not use is the problem's concurCorrelationId, for support.
	p = render(t, &batch.Error{Code: batch.CodeUpstreamBadResponse, CorrelationID: "from-a-200"})
	if p.Upstream != nil || p.ConcurCorrelationID != "from-a-200" {
		t.Errorf("upstream = %+v, concurCorrelationId %q; want none, and from-a-200", p.Upstream, p.ConcurCorrelationID)
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
		if _, _, known := describe(batch.Code(code)); !known && p.Code != "internal" {
			t.Fatalf("unknown code %q rendered as %q", code, p.Code)
		}
		if rec.Code != p.Status || rec.Code < 400 || rec.Code > 599 {
			t.Fatalf("status %d / %d", rec.Code, p.Status)
		}
		if ra := rec.Header().Get("Retry-After"); ra != "" {
			if n, err := strconv.Atoi(ra); err != nil || n < 1 {
				t.Fatalf("Retry-After %q, want whole seconds, at least 1", ra)
			}
		}
	})
}

func TestProblemTypesAreServed(t *testing.T) {
	t.Parallel()
	h, _ := newTestHandler(t, panicky{})
	for _, code := range knownCodes() {
		title, status, _ := describe(code)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/problems/"+string(code), nil))
		var got api.ProblemType
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != 200 ||
			got != (api.ProblemType{Code: string(code), Title: title, Status: status}) {
			t.Errorf("GET /problems/%s = %d %s", code, rec.Code, rec.Body)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/problems/no_such_code", nil))
	if rec.Code != 404 || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Errorf("unknown problem type: %d %s", rec.Code, rec.Body)
	}
}

// The README's table of errors says, for every code the gateway answers with, the status
// it answers with: the test fails when the table and the tables of the code (the domain's
// codes and kinds, kindStatus, httpCodes) differ, or when a code is missing from it.
func TestREADMEErrorTable(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n### Errors\n")
	if !ok {
		t.Fatal("README has no Errors section")
	}
	section, _, _ = strings.Cut(section, "\n#")
	codeRe, statusRe := regexp.MustCompile("`([a-z_]+)`"), regexp.MustCompile(`^\d{3}\b`)
	documented := map[batch.Code]bool{}
	for line := range strings.Lines(section) {
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		if len(cells) != 3 || strings.TrimSpace(cells[1]) == "status" {
			continue
		}
		var statuses []int
		for s := range strings.SplitSeq(cells[1], " / ") {
			if m := statusRe.FindString(strings.TrimSpace(s)); m != "" {
				n, _ := strconv.Atoi(m)
				statuses = append(statuses, n)
			}
		}
		found := codeRe.FindAllStringSubmatch(cells[2], -1)
		if len(found) == 0 {
			continue // the caller hung up: no answer, no code
		}
		if len(statuses) != len(found) {
			t.Errorf("README row %q: %d statuses for %d codes", strings.TrimSpace(line), len(statuses), len(found))
			continue
		}
		for i, m := range found {
			code := batch.Code(m[1])
			documented[code] = true
			_, status, known := describe(code)
			switch {
			case !known && code != batch.CodeInternal:
				t.Errorf("README lists %s, which the gateway does not know", code)
			case code != batch.CodeInternal && status != statuses[i]:
				t.Errorf("README says %s is answered %d; the gateway answers %d", code, statuses[i], status)
			}
		}
	}
	for _, code := range slices.Concat(batch.Codes(), slices.Collect(maps.Keys(httpCodes))) {
		if !documented[code] {
			t.Errorf("the README's table of errors does not list %s", code)
		}
	}
}
