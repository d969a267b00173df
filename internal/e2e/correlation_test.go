package e2e

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/api"
	"github.com/finplat/payment-batch-gateway/internal/concursim"
)

// Concur's concur-correlationid (what Concur's support asks for) reaches, for every close
// the gateway sends: the access log line of the request, the problem's upstream object when
// Concur answered with an error, and the close's record (GET /batches/{id}/closes and
// GET /batches/{id}). A 429 with retry-after: 0 gives the caller Retry-After: 1.
//
// The simulator sends a concur-correlationid on every answer and lists the latest in
// GET /_sim/stats as correlationIds.
func TestCorrelationIDsReachLogProblemAndRecord(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil, nil)

	// Throttled, with Concur's "now": the caller is told a second, and the id.
	s.fault(t, `{"op":"close","mode":"status","status":429,"message":"Too many requests","retryAfter":"0","count":1}`)
	r := do(t, "POST", s.gw.URL+"/batches/"+employeeBatch+"/close", map[string]string{"X-Request-ID": "e2e-corr-429"})
	if r.Status != 429 || r.Header.Get("Retry-After") != "1" {
		t.Fatalf("throttled close: %d, Retry-After %q, want 429 with 1: %s", r.Status, r.Header.Get("Retry-After"), r.Body)
	}
	sent := simCorrelationIDs(t, s)
	throttled := decode[api.Problem](t, r)
	if throttled.Upstream == nil || !slices.Contains(sent, throttled.Upstream.CorrelationID) {
		t.Errorf("throttled problem's upstream = %+v, want a correlationId the simulator sent (%q)", throttled.Upstream, sent)
	}
	wantLogged(t, s, "e2e-corr-429", throttled.Upstream)

	// Closed: the record carries the close answer's id, the last of the request's.
	r = do(t, "POST", s.gw.URL+"/batches/"+employeeBatch+"/close", map[string]string{"X-Request-ID": "e2e-corr-ok"})
	if r.Status != 200 {
		t.Fatalf("close: %d %s", r.Status, r.Body)
	}
	logged := wantLogged(t, s, "e2e-corr-ok", nil)
	trail := decode[api.CloseAttemptList](t, do(t, "GET", s.gw.URL+"/batches/"+employeeBatch+"/closes", nil))
	if len(trail.Items) != 2 || trail.Items[0].UpstreamCorrelationID != logged[len(logged)-1] ||
		trail.Items[1].UpstreamCorrelationID != throttled.Upstream.CorrelationID {
		t.Errorf("trail = %+v; want the close's %q, then the throttled one's %q", trail.Items, logged[len(logged)-1],
			throttled.Upstream.CorrelationID)
	}
	detail := decode[api.BatchDetail](t, do(t, "GET", s.gw.URL+"/batches/"+employeeBatch, nil))
	if detail.LastClose == nil || detail.LastClose.UpstreamCorrelationID != logged[len(logged)-1] {
		t.Errorf("lastClose = %+v, want upstreamCorrelationId %q", detail.LastClose, logged[len(logged)-1])
	}

	// Concur's business 500: the problem's upstream and the record carry it.
	r = do(t, "POST", s.gw.URL+"/batches/"+concursim.SeedOpenEmpty+"/close", map[string]string{"X-Request-ID": "e2e-corr-500"})
	refused := decode[api.Problem](t, r)
	if refused.Code != "batch_not_closable" || refused.Upstream == nil || refused.Upstream.CorrelationID == "" {
		t.Fatalf("no-reports problem = %+v, want batch_not_closable with upstream.correlationId", refused)
	}
	wantLogged(t, s, "e2e-corr-500", refused.Upstream)
	emptyTrail := decode[api.CloseAttemptList](t, do(t, "GET", s.gw.URL+"/batches/"+concursim.SeedOpenEmpty+"/closes", nil))
	if len(emptyTrail.Items) != 1 || emptyTrail.Items[0].UpstreamCorrelationID != refused.Upstream.CorrelationID {
		t.Errorf("trail = %+v, want upstreamCorrelationId %q", emptyTrail.Items, refused.Upstream.CorrelationID)
	}

	// A 200 the gateway cannot read: no upstream object (Concur answered no error), but
	// the problem's concurCorrelationId and the record, which support reads for a close
	// that probably happened, have the id.
	s.fault(t, `{"op":"close","mode":"malformed","count":1}`)
	r = do(t, "POST", s.gw.URL+"/batches/"+cardBatch+"/close", map[string]string{"X-Request-ID": "e2e-corr-200"})
	unreadable := decode[api.Problem](t, r)
	if unreadable.Code != "upstream_bad_response" || unreadable.Upstream != nil {
		t.Errorf("malformed close's problem = %+v, want upstream_bad_response without upstream", unreadable)
	}
	logged = wantLogged(t, s, "e2e-corr-200", nil)
	if unreadable.ConcurCorrelationID != logged[len(logged)-1] {
		t.Errorf("malformed close's concurCorrelationId = %q, want the close answer's %q", unreadable.ConcurCorrelationID,
			logged[len(logged)-1])
	}
	cardTrail := decode[api.CloseAttemptList](t, do(t, "GET", s.gw.URL+"/batches/"+cardBatch+"/closes", nil))
	if len(cardTrail.Items) != 1 || cardTrail.Items[0].UpstreamCorrelationID != logged[len(logged)-1] {
		t.Errorf("trail = %+v, want upstreamCorrelationId %q", cardTrail.Items, logged[len(logged)-1])
	}
}

// simCorrelationIDs is what the simulator says it sent as concur-correlationid, latest
// last; the test stops when it sent none.
func simCorrelationIDs(t *testing.T, s *stack) []string {
	t.Helper()
	st := decode[struct {
		CorrelationIDs []struct{ ID string } `json:"correlationIds"`
	}](t, do(t, "GET", s.sim.URL+"/_sim/stats", nil))
	if len(st.CorrelationIDs) == 0 {
		t.Fatal("the simulator lists no correlationIds in /_sim/stats: it must send concur-correlationid on every answer")
	}
	var ids []string
	for _, c := range st.CorrelationIDs {
		ids = append(ids, c.ID)
	}
	return ids
}

// wantLogged waits for the access log line of the request requestID and returns its
// concurCorrelationIds: at least one, each one the simulator sent; with up, the problem's
// upstream object, its correlationId is the last.
func wantLogged(t *testing.T, s *stack, requestID string, up *api.UpstreamProblem) []string {
	t.Helper()
	var line struct {
		Message string   `json:"message"`
		Request string   `json:"requestId"`
		IDs     []string `json:"concurCorrelationIds"`
	}
	deadline := time.Now().Add(10 * time.Second) // the line is written once the answer went out
	for found := false; !found; {
		for l := range strings.Lines(s.gw.logs.String()) {
			if json.Unmarshal([]byte(l), &line) == nil && line.Message == "request" && line.Request == requestID {
				found = true
				break
			}
		}
		if !found && time.Now().After(deadline) {
			t.Fatalf("no access log line for request %s", requestID)
		}
		if !found {
			time.Sleep(50 * time.Millisecond) // polled: the line follows the answer
		}
	}
	sent := simCorrelationIDs(t, s)
	if len(line.IDs) == 0 {
		t.Fatalf("request %s: access log line has no concurCorrelationIds", requestID)
	}
	for _, id := range line.IDs {
		if !slices.Contains(sent, id) {
			t.Errorf("request %s: logged correlation id %q was not sent by the simulator (%q)", requestID, id, sent)
		}
	}
	if up != nil && line.IDs[len(line.IDs)-1] != up.CorrelationID {
		t.Errorf("request %s: logged %q, want the problem's %q last", requestID, line.IDs, up.CorrelationID)
	}
	return line.IDs
}
