package concur

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

func TestStatusClassification(t *testing.T) {
	t.Parallel()
	xmlErr := func(msg string) string {
		return "<Error><Message>" + msg + "</Message><Server-Time>2024-03-05T14:02:11</Server-Time><Id>ID-1</Id></Error>"
	}
	html := "<!DOCTYPE html><html><body>Service Unavailable</body></html>"
	tests := []struct {
		name        string
		op          operation
		status      int
		header      map[string]string
		body        string
		code        batch.Code
		retryAfter  time.Duration // checked to the second when non-zero
		message     string        // Upstream.Message
		detail      string        // Detail, when set
		tokenCalls  int64         // when non-zero
		noUpstream  bool
		contentType string // of a 200
	}{
		{name: "400 batch id invalid", op: opClose, status: 400, body: xmlErr("Batch ID 123 is invalid."),
			code: batch.CodeBatchNotFound, message: "Batch ID 123 is invalid."},
		{name: "400 invalid batch id", op: opClose, status: 400, body: xmlErr("INVALID BATCH ID"),
			code: batch.CodeBatchNotFound, message: "INVALID BATCH ID"},
		{name: "400 request limit", op: opClose, status: 400, body: xmlErr("Request limit exceeded"),
			code: batch.CodeUpstreamRejected, message: "Request limit exceeded"},
		{name: "400 empty body", op: opList, status: 400, code: batch.CodeUpstreamRejected},
		{name: "401 after renewal", op: opList, status: 401, body: xmlErr("No auth"),
			code: batch.CodeUpstreamAuthFailed, message: "No auth", tokenCalls: 2},
		{name: "403 after renewal", op: opClose, status: 403, body: xmlErr("Forbidden"),
			code: batch.CodeUpstreamAuthFailed, message: "Forbidden", tokenCalls: 2},
		{name: "404 close", op: opClose, status: 404, body: xmlErr("Not found"), code: batch.CodeBatchNotFound,
			message: "Not found"},
		{name: "404 file", op: opFile, status: 404, code: batch.CodeFileNotFound},
		{name: "404 list", op: opList, status: 404, code: batch.CodeUpstreamBadResponse},
		{name: "409", op: opClose, status: 409, body: xmlErr("Conflict"), code: batch.CodeUpstreamConflict,
			message: "Conflict"},
		{name: "429 default wait", op: opList, status: 429, code: batch.CodeUpstreamRateLimited, retryAfter: time.Minute},
		{name: "429 seconds", op: opClose, status: 429, header: map[string]string{"Retry-After": "7"},
			code: batch.CodeUpstreamRateLimited, retryAfter: 7 * time.Second},
		{name: "429 http date", op: opFile, status: 429,
			header: map[string]string{"Retry-After": time.Now().Add(2 * time.Minute).UTC().Format(http.TimeFormat)},
			code:   batch.CodeUpstreamRateLimited, retryAfter: 2 * time.Minute},
		{name: "503 default wait html", op: opClose, status: 503, body: html,
			code: batch.CodeUpstreamUnavailable, retryAfter: 5 * time.Minute},
		{name: "503 seconds", op: opList, status: 503, header: map[string]string{"Retry-After": "30"},
			code: batch.CodeUpstreamUnavailable, retryAfter: 30 * time.Second},
		{name: "503 Retry-After zero", op: opClose, status: 503, header: map[string]string{"Retry-After": "0"},
			code: batch.CodeUpstreamUnavailable, retryAfter: 5 * time.Minute},
		{name: "503 Retry-After negative", op: opList, status: 503, header: map[string]string{"Retry-After": "-1"},
			code: batch.CodeUpstreamUnavailable, retryAfter: 5 * time.Minute},
		{name: "503 Retry-After past date", op: opFile, status: 503,
			header: map[string]string{"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"},
			code:   batch.CodeUpstreamUnavailable, retryAfter: 5 * time.Minute},
		{name: "429 Retry-After zero", op: opClose, status: 429, header: map[string]string{"Retry-After": "0"},
			code: batch.CodeUpstreamRateLimited, retryAfter: time.Minute},
		{name: "429 Retry-After past date", op: opList, status: 429,
			header: map[string]string{"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"},
			code:   batch.CodeUpstreamRateLimited, retryAfter: time.Minute},
		{name: "500 close with message", op: opClose, status: 500, body: xmlErr(notClosableMsg),
			code: batch.CodeBatchNotClosable, message: notClosableMsg, detail: notClosableMsg},
		{name: "500 close empty", op: opClose, status: 500, code: batch.CodeUpstreamBadResponse},
		{name: "500 close html", op: opClose, status: 500, body: html, code: batch.CodeUpstreamBadResponse},
		{name: "500 list with message", op: opList, status: 500, body: xmlErr("Boom"),
			code: batch.CodeUpstreamBadResponse, message: "Boom"},
		{name: "502", op: opClose, status: 502, code: batch.CodeUpstreamBadResponse},
		{name: "418", op: opClose, status: 418, code: batch.CodeUpstreamRejected},
		{name: "302", op: opClose, status: 302, header: map[string]string{"Location": "/elsewhere"},
			code: batch.CodeUpstreamBadResponse},
		{name: "204", op: opClose, status: 204, code: batch.CodeUpstreamBadResponse},
		{name: "202 with body", op: opClose, status: 202, body: "<BatchStatus/>", code: batch.CodeUpstreamBadResponse},
		{name: "200 html", op: opClose, status: 200, contentType: "text/html", body: html,
			code: batch.CodeUpstreamBadResponse, noUpstream: true},
		{name: "200 no content type", op: opList, status: 200, contentType: "-", body: "<BatchList/>",
			code: batch.CodeUpstreamBadResponse, noUpstream: true},
		{name: "200 garbage", op: opList, status: 200, contentType: "application/xml", body: "{\"not\":\"xml\"}",
			code: batch.CodeUpstreamBadResponse, noUpstream: true},
		{name: "200 error document", op: opClose, status: 200, contentType: "application/xml", body: xmlErr("x"),
			code: batch.CodeUpstreamBadResponse, noUpstream: true},
		{name: "200 billion laughs", op: opClose, status: 200, contentType: "application/xml",
			body: billionLaughs("BatchStatus"), code: batch.CodeUpstreamBadResponse, noUpstream: true},
		{name: "200 deep nesting", op: opList, status: 200, contentType: "application/xml",
			body: deepNesting("BatchList", 100_000), code: batch.CodeUpstreamBadResponse, noUpstream: true},
		{name: "200 close over 1 MiB", op: opClose, status: 200, contentType: "application/xml",
			body: "<BatchStatus><Status>" + strings.Repeat("x", maxSmallBody) + "</Status></BatchStatus>",
			code: batch.CodeUpstreamBadResponse, noUpstream: true},
		{name: "503 error body over 1 MiB", op: opClose, status: 503, body: strings.Repeat("x", maxSmallBody+10),
			code: batch.CodeUpstreamUnavailable, retryAfter: 5 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.set(func(f *fakeConcur) {
				f.api = func(w http.ResponseWriter, r *http.Request) {
					for k, v := range tt.header {
						w.Header().Set(k, v)
					}
					switch {
					case tt.contentType == "-":
						w.Header()["Content-Type"] = nil
					case tt.contentType != "":
						w.Header().Set("Content-Type", tt.contentType)
					case strings.HasPrefix(tt.body, "<Error"):
						w.Header().Set("Content-Type", "application/xml")
					}
					w.WriteHeader(tt.status)
					fmt.Fprint(w, tt.body)
				}
			})
			c, _ := newClient(t, f, nil)
			e := wantCode(t, call(t.Context(), c, f, tt.op), tt.code)
			if tt.noUpstream {
				if e.Upstream != nil {
					t.Errorf("Upstream = %+v, want nil", e.Upstream)
				}
			} else {
				if e.Upstream == nil || e.Upstream.Status != tt.status || e.Upstream.Message != tt.message {
					t.Fatalf("Upstream = %+v, want status %d message %q", e.Upstream, tt.status, tt.message)
				}
				if tt.message != "" && (e.Upstream.ID != "ID-1" || e.Upstream.ServerTime != "2024-03-05T14:02:11") {
					t.Errorf("Upstream = %+v, want Id and Server-Time", e.Upstream)
				}
			}
			want, slack := tt.retryAfter, 2*time.Second
			if date, err := http.ParseTime(tt.header["Retry-After"]); err == nil && date.After(time.Now()) {
				want = time.Until(date) // the date was made with the table, perhaps long ago under load
			}
			if tt.retryAfter != 0 && (e.RetryAfter < want-slack || e.RetryAfter > want+slack) {
				t.Errorf("RetryAfter = %v, want %v", e.RetryAfter, want)
			}
			if tt.detail != "" && e.Detail != tt.detail {
				t.Errorf("Detail = %q, want %q", e.Detail, tt.detail)
			}
			if tt.tokenCalls != 0 && f.tokenCalls.Load() != tt.tokenCalls {
				t.Errorf("token calls = %d, want %d", f.tokenCalls.Load(), tt.tokenCalls)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want time.Duration
	}{
		{"empty", "", time.Minute},
		{"seconds", "120", 2 * time.Minute},
		{"zero", "0", time.Minute},
		{"zero padded", " 000 ", time.Minute},
		{"negative", "-5", time.Minute},
		{"over a day", "86401", time.Minute},
		{"garbage", "soon", time.Minute},
		{"past date", "Wed, 21 Oct 2015 07:28:00 GMT", time.Minute},
		{"date now", time.Now().UTC().Format(http.TimeFormat), time.Minute},
		{"future date", time.Now().Add(3 * time.Minute).UTC().Format(http.TimeFormat), 3 * time.Minute},
		{"date over a day away", time.Now().Add(25 * time.Hour).UTC().Format(http.TimeFormat), time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := retryAfter(tt.in, time.Minute)
			if tt.name == "future date" { // built with the table, perhaps long ago under load
				date, _ := http.ParseTime(tt.in)
				if want := time.Until(date); got < want-2*time.Second || got > want+2*time.Second {
					t.Errorf("retryAfter(%q) = %v, want about %v", tt.in, got, want)
				}
				return
			}
			if got != tt.want {
				t.Errorf("retryAfter(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestClip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want int // length of the result in bytes
	}{
		{"short", "hello", 5},
		{"at the limit", strings.Repeat("x", maxMessage), maxMessage},
		{"long", strings.Repeat("x", 5000), maxMessage + len("…")},
		{"cut inside a rune", "x" + strings.Repeat("é", 1000), maxMessage - 1 + len("…")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := clip(tt.in)
			if len(got) != tt.want || !utf8.ValidString(got) {
				t.Errorf("clip: %d bytes (valid UTF-8 %v), want %d", len(got), utf8.ValidString(got), tt.want)
			}
		})
	}
}
