package concursim

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestFaultModes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		fault      Fault
		wantStatus int
		wantType   string
		check      func(t *testing.T, resp *http.Response, body []byte)
	}{
		{"status default", Fault{Mode: "status"}, 500, contentTypeXML,
			func(t *testing.T, resp *http.Response, body []byte) {
				wantError(t, resp, body, 500, "Simulated fault.")
			}},
		{"status with retry-after", Fault{Mode: "status", Status: 503, Message: "Down for maintenance", RetryAfter: "300"},
			503, contentTypeXML, func(t *testing.T, resp *http.Response, body []byte) {
				wantError(t, resp, body, 503, "Down for maintenance")
				if got := resp.Header.Get("Retry-After"); got != "300" {
					t.Errorf("Retry-After = %q", got)
				}
			}},
		{"throttled", Fault{Mode: "status", Status: 429}, 429, contentTypeXML, nil},
		{"slow", Fault{Mode: "slow", Delay: Duration(100 * time.Millisecond)}, 200, contentTypeXML,
			func(t *testing.T, _ *http.Response, body []byte) {
				if n := len(parseList(t, body).Summaries); n != 5 {
					t.Errorf("slow answer has %d summaries, want the normal 5", n)
				}
			}},
		{"malformed", Fault{Mode: "malformed"}, 200, contentTypeXML, wantXMLError},
		{"html default", Fault{Mode: "html"}, 502, "text/html; charset=utf-8", func(t *testing.T, _ *http.Response, body []byte) {
			if !bytes.Contains(body, []byte("<html>")) {
				t.Errorf("body %q is not HTML", body)
			}
		}},
		{"html status", Fault{Mode: "html", Status: 504}, 504, "text/html; charset=utf-8", nil},
		{"empty", Fault{Mode: "empty"}, 500, "", wantEmpty},
		{"empty 503", Fault{Mode: "empty", Status: 503}, 503, "", wantEmpty},
		{"wrongtype", Fault{Mode: "wrongtype"}, 200, "application/json", func(t *testing.T, _ *http.Response, body []byte) {
			if !json.Valid(body) {
				t.Errorf("body %q is not JSON", body)
			}
		}},
		{"huge", Fault{Mode: "huge"}, 200, contentTypeXML, func(t *testing.T, _ *http.Response, body []byte) {
			if len(body) <= 2<<20 {
				t.Errorf("body is %d bytes, want over 2 MiB", len(body))
			}
			if len(parseList(t, body).Summaries) == 0 {
				t.Error("huge body holds no summaries")
			}
		}},
		{"bomb", Fault{Mode: "bomb"}, 200, contentTypeXML, func(t *testing.T, resp *http.Response, body []byte) {
			if !bytes.Contains(body, []byte("<!ENTITY lol9")) || len(body) > 4<<10 {
				t.Errorf("body is not a small billion-laughs document: %d bytes", len(body))
			}
			wantXMLError(t, resp, body) // encoding/xml refuses the undefined entity
		}},
		{"deep", Fault{Mode: "deep"}, 200, contentTypeXML, func(t *testing.T, _ *http.Response, body []byte) {
			if n := bytes.Count(body, []byte("<BatchSummary>")); n != 100000 {
				t.Errorf("%d levels, want 100000", n)
			}
			if !bytes.HasSuffix(body, []byte("</BatchSummary></BatchList>")) {
				t.Errorf("deep body is not closed properly")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, nil)
			auth := "Bearer " + f.accessToken(t)
			f.sim.SetFault(tt.fault)
			start := time.Now()
			resp, body := f.do(t, http.MethodGet, listPath, auth)
			if resp.StatusCode != tt.wantStatus || resp.Header.Get("Content-Type") != tt.wantType {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, resp.Header.Get("Content-Type"), tt.wantStatus, tt.wantType)
			}
			if time.Since(start) < time.Duration(tt.fault.Delay) {
				t.Errorf("answered before the delay")
			}
			if tt.check != nil {
				tt.check(t, resp, body)
			}
			// The fault stays until cleared (Count 0); admin endpoints are never faulted.
			if resp, _ := f.do(t, http.MethodGet, "/_sim/healthz", ""); resp.StatusCode != 200 {
				t.Errorf("healthz under fault: %d", resp.StatusCode)
			}
			if resp, _ := f.do(t, http.MethodGet, listPath, auth); resp.StatusCode != tt.wantStatus {
				t.Errorf("second request: %d, want the fault again", resp.StatusCode)
			}
			f.sim.ClearFault()
			if resp, _ := f.do(t, http.MethodGet, listPath, auth); resp.StatusCode != 200 {
				t.Errorf("after ClearFault: %d", resp.StatusCode)
			}
		})
	}
}

func wantXMLError(t *testing.T, _ *http.Response, body []byte) {
	t.Helper()
	var v struct{}
	if err := xml.Unmarshal(body, &v); err == nil {
		t.Errorf("body decodes as XML, want a broken document")
	}
}

func wantEmpty(t *testing.T, _ *http.Response, body []byte) {
	t.Helper()
	if len(body) != 0 {
		t.Errorf("body = %q, want empty", body)
	}
}

func TestFaultReset(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.sim.SetFault(Fault{Op: "token", Mode: "reset", Count: 1})
	_, err := http.PostForm(f.srv.URL+"/oauth2/v0/token", nil)
	if err == nil {
		t.Fatal("request succeeded, want a dropped connection")
	}
	if code, _ := f.refresh(t, testRefresh); code != http.StatusOK {
		t.Errorf("after a one-shot reset: %d", code)
	}
}

func TestFaultSlowHonoursContext(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.sim.SetFault(Fault{Op: "token", Mode: "slow", Delay: Duration(time.Hour)})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.srv.URL+"/oauth2/v0/token", strings.NewReader(""))
	_, err := http.DefaultClient.Do(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the deadline", err)
	}
	// Cleanup closes the server, which waits for the handler: it must not sleep an hour.
}

// A slow token request whose client gave up is dropped, not processed: the refresh token
// is not rotated behind the client's back (the form body must be read for the server to
// see the client leave).
func TestFaultSlowTokenNotProcessedAfterClientLeft(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.sim.SetFault(Fault{Op: "token", Mode: "slow", Delay: Duration(300 * time.Millisecond), Count: 1})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if a := f.try(ctx, http.MethodPost, "/oauth2/v0/token", "", refreshForm(testRefresh)); a.err == nil {
		t.Fatalf("slow token answered %d before its delay", a.status)
	}
	time.Sleep(600 * time.Millisecond) // past the delay: a request still waiting would be processed now
	if n := f.sim.Stats().TokenRefreshes; n != 0 {
		t.Fatalf("%d refreshes made for a client that had left", n)
	}
	if code, _ := f.refresh(t, testRefresh); code != http.StatusOK {
		t.Errorf("the refresh token was spent: %d", code)
	}
}

func TestFaultCountAndOp(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	auth := "Bearer " + f.accessToken(t)
	batchURL := f.batchURL(t, auth, SeedOpenUSD)

	f.sim.SetFault(Fault{Op: "close", Mode: "status", Status: 503, Count: 2})
	var got []int
	for range 3 {
		resp, _ := f.do(t, http.MethodGet, listPath, auth) // another op: untouched
		got = append(got, resp.StatusCode)
		resp, _ = f.closeBatch(t, auth, batchURL, "v1.1")
		got = append(got, resp.StatusCode)
	}
	if diff := cmp.Diff([]int{200, 503, 200, 503, 200, 200}, got); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	resp, body := f.do(t, http.MethodGet, "/_sim/fault", "")
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != "null" {
		t.Errorf("fault after its count: %d %s, want null", resp.StatusCode, body)
	}
	if n := f.sim.Stats().Closes[SeedOpenUSD]; n != 1 {
		t.Errorf("Closes = %d, want 1: faulted requests do not reach the handler", n)
	}
}

// "lost" does the work and drops the answer: the batch is closed, the caller never hears.
func TestFaultLostClosesThenDrops(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	auth := "Bearer " + f.accessToken(t)
	batchURL := f.batchURL(t, auth, SeedOpenUSD)
	f.sim.SetFault(Fault{Op: "close", Mode: "lost", Count: 1})
	req, _ := http.NewRequest(http.MethodPost, batchURL+"/close", http.NoBody)
	req.Header.Set("Authorization", auth)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("close answered %d, want a dropped connection", resp.StatusCode)
	}
	if got := f.sim.Stats().Closes[SeedOpenUSD]; got != 1 {
		t.Errorf("closes = %d, want the lost close to have happened", got)
	}
	if ids := f.listIDs(t, auth, "CLOSED"); !slices.Contains(ids, SeedOpenUSD) {
		t.Errorf("CLOSED list %v lacks the batch", ids)
	}
}

// Concur may answer 429 with retry-after: 0; a fault sends exactly that.
func TestFaultTooManyRequestsRetryAfterZero(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	if code, body := f.admin(t, http.MethodPut, "/_sim/fault", `{"op":"list","mode":"status","status":429,"retryAfter":"0","count":1}`); code != 200 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	resp, body := f.do(t, http.MethodGet, listPath, "")
	wantError(t, resp, body, http.StatusTooManyRequests, "")
	if got := resp.Header.Values("Retry-After"); len(got) != 1 || got[0] != "0" {
		t.Errorf("Retry-After = %q, want exactly [\"0\"]", got)
	}
}
