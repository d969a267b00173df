package concursim

import (
	"net/http"
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var guidShape = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func TestCorrelationIDs(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	var want []Correlation
	note := func(resp *http.Response, op string) {
		t.Helper()
		id := resp.Header.Get(HeaderCorrelationID)
		if !guidShape.MatchString(id) {
			t.Errorf("%s: concur-correlationid %q is not GUID-shaped", op, id)
		}
		want = append(want, Correlation{ID: id, Op: op, Status: resp.StatusCode})
	}

	resp, err := http.PostForm(f.srv.URL+tokenPath, refreshForm(testRefresh))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	note(resp, "token")
	resp, _ = f.do(t, http.MethodGet, listPath, "") // an error answer
	note(resp, "list")
	f.sim.SetFault(Fault{Op: "file", Mode: "status", Status: 503, Count: 1}) // a fault's answer
	resp, _ = f.do(t, http.MethodGet, apiPrefix+"v1.1/batch/abc/file", "")
	note(resp, "file")
	f.sim.SetFault(Fault{Op: "close", Mode: "empty", Count: 1})
	resp, _ = f.do(t, http.MethodPost, apiPrefix+"v1.1/batch/abc/close", "")
	note(resp, "close")
	resp, _ = f.do(t, http.MethodGet, "/nope", "")
	note(resp, "other")
	if resp, _ := f.do(t, http.MethodGet, "/_sim/healthz", ""); resp.Header.Get(HeaderCorrelationID) != "" {
		t.Error("administration answers carry a correlation id")
	}

	got := f.sim.Stats().CorrelationIDs
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("correlation ids (-want +got):\n%s", diff)
	}
	if got[0].ID == got[1].ID {
		t.Error("two answers share a correlation id")
	}
}

func TestCorrelationIDsBounded(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	var last string
	for range maxCorrelationsKept + 5 {
		resp, _ := f.do(t, http.MethodGet, "/nope", "")
		last = resp.Header.Get(HeaderCorrelationID)
	}
	got := f.sim.Stats().CorrelationIDs
	if len(got) != maxCorrelationsKept || got[len(got)-1].ID != last {
		t.Errorf("%d kept, newest %q; want %d, newest %q", len(got), got[len(got)-1].ID, maxCorrelationsKept, last)
	}
}

// A dropped connection sends no answer, so no correlation id is kept for it.
func TestCorrelationIDsNotKeptForResets(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.sim.SetFault(Fault{Op: "list", Mode: "reset", Count: 1})
	if resp, err := http.Get(f.srv.URL + listPath); err == nil {
		resp.Body.Close()
		t.Fatal("reset answered")
	}
	if got := f.sim.Stats().CorrelationIDs; len(got) != 0 {
		t.Errorf("kept %v for a reset", got)
	}
}

// An interceptor may flush the answer itself, as it can on the server's own writer.
func TestCorrelatedWriterFlushes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.sim.AddAccessToken("static")
	f.sim.InterceptAPI(func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", contentTypeXML)
			_, _ = w.Write([]byte("<BatchList>"))
			w.(http.Flusher).Flush()
			_, _ = w.Write([]byte("</BatchList>"))
		})
	})
	resp, body := f.do(t, http.MethodGet, listPath, "Bearer static")
	if resp.StatusCode != 200 || string(body) != "<BatchList></BatchList>" || resp.Header.Get(HeaderCorrelationID) == "" {
		t.Errorf("%d %q %v", resp.StatusCode, body, resp.Header)
	}
	if got := f.sim.Stats().CorrelationIDs; len(got) != 1 || got[0].Status != 200 {
		t.Errorf("kept %v", got)
	}
}
