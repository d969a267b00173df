package e2e

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/api"
	"github.com/finplat/payment-batch-gateway/internal/concursim"
)

const closedBatch = concursim.SeedClosedUSD // seeded CLOSED in Concur

// The gateway is killed (SIGKILL) after it redeemed the refresh token and before it could
// use the new access token. Concur rotated the refresh token, so the one in the
// configuration is spent: the restarted gateway must redeem the rotated one it stored.
func TestSIGKILLBetweenRefreshAndUse(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil, nil)
	// The first Concur call after the refresh (the batch list) hangs: the gateway holds a
	// fresh token it has not been able to use yet.
	s.fault(t, `{"op":"list","mode":"slow","delay":"60s","count":1}`)
	go func() { _, _ = tryDo("POST", s.gw.URL+"/batches/"+employeeBatch+"/close", nil) }()
	waitFor(t, "the refresh and the hanging list call", func() bool {
		f := do(t, "GET", s.sim.URL+"/_sim/fault", nil)
		return s.stats(t).TokenRefreshes == 1 && strings.TrimSpace(string(f.Body)) == "null"
	})
	s.gw.kill(t)
	// Access tokens die too, so the restarted gateway must refresh.
	if r := do(t, "POST", s.sim.URL+"/_sim/expire-tokens", nil); r.Status/100 != 2 {
		t.Fatalf("expire-tokens: %d", r.Status)
	}

	gw2 := s.startGateway(t, nil)
	r := do(t, "POST", gw2.URL+"/batches/"+employeeBatch+"/close", nil)
	if r.Status != 200 {
		t.Fatalf("close after SIGKILL and restart: %d %s", r.Status, r.Body)
	}
	st := s.stats(t)
	if st.InvalidGrants != 0 || st.TokenRefreshes != 2 || st.Closes[employeeBatch] != 1 {
		t.Errorf("refreshes %d, invalid grants %d, closes %v: want 2, 0 and one close",
			st.TokenRefreshes, st.InvalidGrants, st.Closes)
	}
	for _, tok := range st.IssuedTokens {
		if strings.Contains(s.gw.logs.String()+gw2.logs.String(), tok) {
			t.Errorf("an issued token appears in a gateway log")
		}
	}
}

// A closed batch is not closed again by accident: not after a double click, not after a
// restart, not when it was closed in Concur directly. Regeneration is explicit.
func TestRegenerationGuard(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil, nil)
	closeURL := s.gw.URL + "/batches/" + employeeBatch + "/close"
	first := do(t, "POST", closeURL, nil)
	if first.Status != 200 {
		t.Fatalf("first close: %d %s", first.Status, first.Body)
	}
	again := do(t, "POST", closeURL, nil)
	p := decode[api.Problem](t, again)
	if again.Status != 409 || p.Code != "batch_already_closed" || p.Recorded == nil ||
		p.Recorded.FileURL != "/batches/"+employeeBatch+"/file" || p.Recorded.BatchStatus != "CLOSED" {
		t.Fatalf("second close: %d %s", again.Status, again.Body)
	}
	if st := s.stats(t); st.Closes[employeeBatch] != 1 {
		t.Fatalf("Concur closes = %v, want 1", st.Closes)
	}

	// The guard and the file link survive a restart.
	if err := s.gw.stop(t); err != nil {
		t.Fatal(err)
	}
	gw2 := s.startGateway(t, nil)
	if r := do(t, "POST", gw2.URL+"/batches/"+employeeBatch+"/close", nil); r.Status != 409 {
		t.Errorf("close after restart: %d %s", r.Status, r.Body)
	}
	if f := do(t, "GET", gw2.URL+"/batches/"+employeeBatch+"/file", nil); f.Status != 200 || len(f.Body) == 0 {
		t.Errorf("file after restart: %d %.200s", f.Status, f.Body)
	}

	// Closed in Concur, never by the gateway: refused too, without a recorded result.
	r := do(t, "POST", gw2.URL+"/batches/"+closedBatch+"/close", nil)
	if p := decode[api.Problem](t, r); r.Status != 409 || p.Code != "batch_already_closed" || p.Recorded != nil {
		t.Errorf("close of a batch closed in Concur: %d %s", r.Status, r.Body)
	}

	// On purpose: one regeneration, recorded as such.
	regen := do(t, "POST", gw2.URL+"/batches/"+employeeBatch+"/close?regenerate=true", nil)
	if got := decode[api.CloseResponse](t, regen); regen.Status != 200 || !got.Regenerated {
		t.Fatalf("regenerate: %d %s", regen.Status, regen.Body)
	}
	st := s.stats(t)
	if st.Closes[employeeBatch] != 2 || st.Regenerations[employeeBatch] != 1 || st.Closes[closedBatch] != 0 {
		t.Errorf("Concur closes %v, regenerations %v", st.Closes, st.Regenerations)
	}

	trail := decode[api.CloseAttemptList](t, do(t, "GET", gw2.URL+"/batches/"+employeeBatch+"/closes", nil))
	var outcomes []string
	for _, a := range trail.Items {
		outcomes = append(outcomes, a.Outcome)
	}
	if got := strings.Join(outcomes, ","); got != "closed,refused,refused,closed" {
		t.Errorf("audit trail outcomes (newest first) = %s", got)
	}
	if len(trail.Items) == 4 && (!trail.Items[0].Regenerate || trail.Items[1].Code != "batch_already_closed" ||
		trail.Items[3].Result == nil || trail.Items[3].Caller != "e2e-caller") {
		t.Errorf("audit trail = %+v", trail.Items)
	}
}

// Concur closed the batch but the answer was lost: the outcome is unknown, recorded as
// such, and the next close learns from the batch list instead of regenerating the file.
func TestUnknownOutcomeIsSettledFromTheBatchList(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil, map[string]string{"CONCUR_TIMEOUT": "2s"}) // also the settle delay
	s.fault(t, `{"op":"close","mode":"lost","count":1}`)
	closeURL := s.gw.URL + "/batches/" + employeeBatch + "/close"
	r := do(t, "POST", closeURL, nil)
	if r.Status < 500 {
		t.Fatalf("lost close answered %d %s, want a 5xx", r.Status, r.Body)
	}
	if !bytes.Contains(r.Body, []byte("may have reached Concur")) {
		t.Errorf("the problem does not say the close may have happened: %s", r.Body)
	}
	// Concur may still be processing it: no close, not even a regeneration, for a while.
	for _, u := range []string{closeURL, closeURL + "?regenerate=true"} {
		r = do(t, "POST", u, nil)
		if p := decode[api.Problem](t, r); r.Status != 409 || p.Code != "close_outcome_unknown" || r.Header.Get("Retry-After") == "" {
			t.Fatalf("%s right after a lost answer: %d %s", u, r.Status, r.Body)
		}
	}
	wait, _ := strconv.Atoi(r.Header.Get("Retry-After"))
	time.Sleep(time.Duration(wait)*time.Second + 100*time.Millisecond)
	r = do(t, "POST", closeURL, nil)
	if p := decode[api.Problem](t, r); r.Status != 409 || p.Code != "batch_already_closed" {
		t.Fatalf("close after the settle delay: %d %s", r.Status, r.Body)
	}
	if st := s.stats(t); st.Closes[employeeBatch] != 1 || st.Regenerations[employeeBatch] != 0 {
		t.Errorf("Concur closes %v, regenerations %v: want one close, no regeneration", st.Closes, st.Regenerations)
	}
	trail := decode[api.CloseAttemptList](t, do(t, "GET", s.gw.URL+"/batches/"+employeeBatch+"/closes", nil))
	outcomes := make([]string, len(trail.Items))
	for i, a := range trail.Items {
		outcomes[i] = a.Outcome
	}
	if strings.Join(outcomes, ",") != "refused,refused,refused,unknown" {
		t.Errorf("audit trail outcomes = %v, want refused×3 then unknown", outcomes)
	}
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil, nil)
	key := map[string]string{"Idempotency-Key": `"8e03978e-40d5-43e8-bc93-6894a57f9324"`}
	closeURL := s.gw.URL + "/batches/" + employeeBatch + "/close"
	first := do(t, "POST", closeURL, key)
	second := do(t, "POST", closeURL, key)
	if first.Status != 200 || second.Status != 200 || !bytes.Equal(first.Body, second.Body) {
		t.Fatalf("replay: %d %s / %d %s", first.Status, first.Body, second.Status, second.Body)
	}
	if first.Header.Get("Idempotency-Replayed") != "" || second.Header.Get("Idempotency-Replayed") != "true" {
		t.Errorf("Idempotency-Replayed: %q then %q", first.Header.Get("Idempotency-Replayed"), second.Header.Get("Idempotency-Replayed"))
	}
	if st := s.stats(t); st.Closes[employeeBatch] != 1 {
		t.Errorf("Concur closes = %v", st.Closes)
	}
	for _, u := range []string{s.gw.URL + "/batches/" + cardBatch + "/close", closeURL + "?regenerate=true"} {
		r := do(t, "POST", u, key)
		if p := decode[api.Problem](t, r); r.Status != 422 || p.Code != "idempotency_key_mismatch" {
			t.Errorf("%s with a used key: %d %s", u, r.Status, r.Body)
		}
	}
	if r := do(t, "POST", closeURL, map[string]string{"Idempotency-Key": "bad key\t"}); r.Status != 400 {
		t.Errorf("malformed key: %d %s", r.Status, r.Body)
	}
	trail := decode[api.CloseAttemptList](t, do(t, "GET", s.gw.URL+"/batches/"+employeeBatch+"/closes", nil))
	if len(trail.Items) != 1 || trail.Items[0].IdempotencyKey != "8e03978e-40d5-43e8-bc93-6894a57f9324" {
		t.Errorf("audit trail = %+v", trail.Items)
	}
}

// tryDo is do for goroutines that may see the connection die.
func tryDo(method, url string, header map[string]string) (*http.Response, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return nil, err
	}
	authorize(req, header)
	resp, err := client.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	return resp, err
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
