package e2e

import (
	"encoding/base64"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/api"
	"github.com/finplat/payment-batch-gateway/internal/store/storetest"
)

// Two gateways share one PostgreSQL and one Concur. 50 concurrent closes of one batch,
// spread across both, make exactly one close in Concur; every caller gets the recorded
// answer or a 409. Meanwhile both refresh short-lived tokens under load without a single
// invalid_grant.
func TestTwoReplicasOnePostgres(t *testing.T) {
	t.Parallel()
	dbURL := storetest.PostgresURL(t)
	s := startStack(t, map[string]string{"CONCURSIM_TOKEN_TTL": "2s"}, map[string]string{
		"GATEWAY_DATABASE_URL":            dbURL,
		"GATEWAY_SECRET_KEY":              base64.StdEncoding.EncodeToString(randBytes(t, 32)),
		"GATEWAY_BATCH_LIST_MIN_INTERVAL": "0s",
		"GATEWAY_RATE_LIMIT_PER_MINUTE":   "0", // one caller floods both replicas on purpose
	})
	gws := []*proc{s.gw, s.startGateway(t, nil)}

	var (
		mu       sync.Mutex
		statuses = map[string]int{}
		wg       sync.WaitGroup
	)
	count := func(key string) { mu.Lock(); statuses[key]++; mu.Unlock() }
	for i := range 50 {
		wg.Go(func() {
			r := do(t, "POST", gws[i%2].URL+"/batches/"+employeeBatch+"/close", nil)
			switch r.Status {
			case 200:
				if got := decode[api.CloseResponse](t, r); got.BatchStatus != "CLOSED" {
					t.Errorf("200 without the result: %s", r.Body)
				}
				count("200")
			case 409:
				p := decode[api.Problem](t, r)
				if p.Code != "close_in_progress" && p.Code != "batch_already_closed" {
					t.Errorf("409 with code %s", p.Code)
				}
				if p.Code == "batch_already_closed" && (p.Recorded == nil || p.Recorded.BatchStatus != "CLOSED") {
					t.Errorf("batch_already_closed without the recorded close: %s", r.Body)
				}
				count(p.Code)
			default:
				t.Errorf("close answered %d %s", r.Status, r.Body)
			}
		})
	}
	wg.Wait()
	t.Logf("answers: %v", statuses)
	if st := s.stats(t); st.Closes[employeeBatch] != 1 || statuses["200"] != 1 {
		t.Errorf("Concur closes %v and %d callers told 200: want exactly one of each", st.Closes, statuses["200"])
	}

	// Token load: for 5 s both replicas make Concur calls (unknown ids read the batch list)
	// while tokens live 2 s; half-way, Concur revokes every access token at once, so both
	// replicas renew at the same moment.
	stop := time.Now().Add(5 * time.Second)
	for w := range 8 {
		wg.Go(func() {
			for n := 0; time.Now().Before(stop); n++ {
				r := do(t, "POST", fmt.Sprintf("%s/batches/unknown-%d-%d/close", gws[w%2].URL, w, n), nil)
				if p := decode[api.Problem](t, r); r.Status != 404 || p.Code != "batch_not_found" {
					t.Errorf("under token load: %d %s", r.Status, r.Body)
					return
				}
			}
		})
	}
	time.Sleep(2500 * time.Millisecond)
	do(t, "POST", s.sim.URL+"/_sim/expire-tokens", nil)
	wg.Wait()
	st := s.stats(t)
	if st.InvalidGrants != 0 || st.TokenRefreshes < 3 {
		t.Errorf("token refreshes %d, invalid grants %d: want several and none", st.TokenRefreshes, st.InvalidGrants)
	}
	t.Logf("token refreshes: %d", st.TokenRefreshes)
}
