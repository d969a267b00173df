package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/finplat/payment-batch-gateway/internal/concursim"
)

// A regeneration bypasses the regeneration guard, so the guard cannot protect its retry:
// when its outcome is unknown (Concur may have regenerated the file), a retry with the same
// Idempotency-Key must get the recorded answer, not a second regeneration.
func TestRegenerationRetriedWithSameKeyIsNotRepeated(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	post := func(query, key string) int {
		req, _ := http.NewRequest("POST", e.gateway.URL+"/batches/"+employeeBatch+"/close"+query, nil)
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := post("", ""); s != 200 {
		t.Fatalf("first close: %d", s)
	}
	// Concur regenerates the file, and the answer is lost on the way back.
	e.sim.SetFault(concursim.Fault{Op: "close", Mode: "lost", Count: 1})
	first := post("?regenerate=true", "regen-1")
	if first < 500 {
		t.Fatalf("regeneration whose answer was lost: %d, want a 5xx", first)
	}
	// The retry finds the attempt its key made and answers with its outcome, unknown,
	// rather than regenerating again.
	if again := post("?regenerate=true", "regen-1"); again != http.StatusConflict {
		t.Errorf("retry with the same key: %d, want 409 close_outcome_unknown", again)
	}
	if n := e.sim.Stats().Regenerations[employeeBatch]; n != 1 {
		t.Errorf("Concur regenerated the file %d times, want 1", n)
	}
}
