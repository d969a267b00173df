package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/finplat/payment-batch-gateway/internal/auth"
)

// A close with ?regenerate=true needs batches:regenerate, and the refusal comes before the
// Idempotency-Key is claimed: the same key then works for the request the caller may make.
func TestRegenerateScopeCheckedBeforeIdempotencyKey(t *testing.T) {
	t.Parallel()
	key, hash, err := auth.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := auth.ParseKeys([]byte(`[{"name":"portal","sha256":"` + hash + `","scopes":["batches:close"]}]`))
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.NewAuthenticator(nil, keys)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{auth: a})
	post := func(query string) *http.Response {
		req, _ := http.NewRequest("POST", e.gateway.URL+"/batches/"+employeeBatch+"/close"+query, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Idempotency-Key", "k-1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := post("?regenerate=true"); r.StatusCode != 403 || !strings.Contains(r.Header.Get("WWW-Authenticate"), "batches:regenerate") {
		t.Fatalf("regenerate without the scope: %d %q", r.StatusCode, r.Header.Get("WWW-Authenticate"))
	}
	if r := post(""); r.StatusCode != 200 {
		t.Fatalf("the same key for a plain close: %d (the refused request must not hold the key)", r.StatusCode)
	}
	if r := post(""); r.StatusCode != 200 || r.Header.Get("Idempotency-Replayed") != "true" {
		t.Errorf("replay: %d %q", r.StatusCode, r.Header.Get("Idempotency-Replayed"))
	}
	if n := e.sim.Stats().Closes[employeeBatch]; n != 1 {
		t.Errorf("Concur closes = %d", n)
	}
}

func TestRequestBodiesRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	for _, body := range []string{"{}", strings.Repeat("x", 1<<20)} {
		resp, err := http.Post(e.gateway.URL+"/batches/"+employeeBatch+"/close", "application/json", strings.NewReader(body))
		if err != nil {
			if len(body) < 1<<10 {
				t.Fatalf("small body: %v", err) // only a large one may be cut off mid-send
			}
			continue // the gateway may hang up before a large body is sent
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("%d-byte body: %d", len(body), resp.StatusCode)
		}
	}
	if n := e.sim.Stats().Closes[employeeBatch]; n != 0 {
		t.Errorf("a request with a body closed the batch")
	}
}
