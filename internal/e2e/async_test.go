package e2e

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/api"
)

// The asynchronous close through to a downloadable file, over the real binaries: Concur's
// v1.2 close is scheduled (202), the batch turns CLOSED in Concur's list once its job ran,
// and the first download obtains the File-Url with the one v1.1 close Concur recommends,
// recorded as a regeneration.
func TestAsyncCloseThroughToTheFile(t *testing.T) {
	t.Parallel()
	s := startStack(t, map[string]string{"CONCURSIM_ASYNC_CLOSE_DELAY": "1500ms"},
		map[string]string{"GATEWAY_BATCH_LIST_MIN_INTERVAL": "200ms"})
	closeURL := s.gw.URL + "/batches/" + employeeBatch + "/close"
	async := map[string]string{"Prefer": "respond-async"}

	r := do(t, "POST", closeURL, async)
	res := decode[api.CloseResponse](t, r)
	if r.Status != 202 || r.Header.Get("Location") != "/batches/"+employeeBatch ||
		r.Header.Get("Preference-Applied") != "respond-async" || !res.Accepted || res.JobQueueKey == "" || res.FileURL != "" {
		t.Fatalf("asynchronous close: %d %v %s", r.Status, r.Header, r.Body)
	}
	// Scheduled: a second close (async or not) would regenerate the file once the job ran.
	for _, h := range []map[string]string{nil, async} {
		if r := do(t, "POST", closeURL, h); r.Status != 409 || decode[api.Problem](t, r).Code != "close_in_progress" {
			t.Fatalf("second close: %d %s", r.Status, r.Body)
		}
	}
	if r := do(t, "GET", s.gw.URL+"/batches/"+employeeBatch+"/file", nil); r.Status != 409 ||
		decode[api.Problem](t, r).Code != "file_not_ready" || r.Header.Get("Retry-After") == "" {
		t.Fatalf("file before the job ran: %d %s", r.Status, r.Body)
	}

	deadline := time.Now().Add(15 * time.Second)
	for {
		d := decode[api.BatchDetail](t, do(t, "GET", s.gw.URL+"/batches/"+employeeBatch, nil))
		if d.Status == "CLOSED" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the batch never showed CLOSED: %+v", d)
		}
		time.Sleep(250 * time.Millisecond)
	}
	// The gateway's finisher obtains the File-Url on its own once the job ran; reads
	// never close: until then the download answers file_not_ready.
	for n := 0; n < 2; {
		r := do(t, "GET", s.gw.URL+"/batches/"+employeeBatch+"/file", nil)
		switch {
		case r.Status == 200 && len(r.Body) > 0:
			n++
		case r.Status == 409 && decode[api.Problem](t, r).Code == "file_not_ready" && time.Now().Before(deadline):
			time.Sleep(250 * time.Millisecond)
		default:
			t.Fatalf("file after the job ran: %d %s", r.Status, r.Body)
		}
	}
	st := s.stats(t)
	var async1 map[string]int
	raw := do(t, "GET", s.sim.URL+"/_sim/stats", nil)
	var full struct {
		AsyncCloses map[string]int `json:"asyncCloses"`
	}
	if err := json.Unmarshal(raw.Body, &full); err != nil {
		t.Fatal(err)
	}
	async1 = full.AsyncCloses
	if async1[employeeBatch] != 1 || st.Regenerations[employeeBatch] != 1 {
		t.Errorf("Concur: %d asynchronous closes, %d regenerations; want 1 and 1 (the File-Url close)",
			async1[employeeBatch], st.Regenerations[employeeBatch])
	}
	trail := decode[api.CloseAttemptList](t, do(t, "GET", s.gw.URL+"/batches/"+employeeBatch+"/closes", nil))
	var closed []api.CloseAttempt
	for _, a := range trail.Items {
		if a.Outcome == "closed" {
			closed = append(closed, a)
		}
	}
	if len(closed) != 2 || !closed[0].Regenerate || closed[0].Result == nil || closed[0].Result.FileURL == "" ||
		closed[1].Regenerate || closed[1].Result == nil || closed[1].Result.JobQueueKey == "" {
		t.Errorf("closed attempts = %+v, want the File-Url close (regenerate) over the accepted asynchronous one", closed)
	}
}

// A replayed 202 (same Idempotency-Key) carries the accepted close's headers again.
func TestAsyncCloseReplayKeepsItsHeaders(t *testing.T) {
	t.Parallel()
	s := startStack(t, map[string]string{"CONCURSIM_ASYNC_CLOSE_DELAY": "1h"}, nil)
	h := map[string]string{"Prefer": "respond-async", "Idempotency-Key": "async-replay-1"}
	closeURL := s.gw.URL + "/batches/" + cardBatch + "/close"
	first, again := do(t, "POST", closeURL, h), do(t, "POST", closeURL, h)
	if first.Status != 202 || again.Status != 202 || again.Header.Get("Idempotency-Replayed") != "true" ||
		again.Header.Get("Location") != "/batches/"+cardBatch || again.Header.Get("Preference-Applied") != "respond-async" ||
		string(first.Body) != string(again.Body) {
		t.Fatalf("replay of a 202: %d %v %s / %d %v %s", first.Status, first.Header, first.Body, again.Status, again.Header, again.Body)
	}
}
