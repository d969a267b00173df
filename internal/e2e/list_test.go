package e2e

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/api"
	"github.com/finplat/payment-batch-gateway/internal/concursim"
)

// adpBatch is the last seeded simulator batch (internal/concursim.Seed) the other tests
// did not name.
const adpBatch = concursim.SeedOpenEUR

var seededBatches = []string{adpBatch, employeeBatch, closedBatch, cardBatch, emptyBatch}

// listAll follows nextCursor from query and returns the IDs in order and the page count.
func listAll(t *testing.T, s *stack, query url.Values) ([]string, int) {
	t.Helper()
	var ids []string
	for pages := 1; ; pages++ {
		r := do(t, "GET", s.gw.URL+"/batches?"+query.Encode(), nil)
		if r.Status != 200 {
			t.Fatalf("GET /batches?%s: %d %s", query.Encode(), r.Status, r.Body)
		}
		page := decode[api.BatchList](t, r)
		for _, b := range page.Items {
			ids = append(ids, b.BatchID)
		}
		if page.NextCursor == "" {
			return ids, pages
		}
		if pages > 20 {
			t.Fatalf("more than 20 pages: %q", ids)
		}
		query.Set("cursor", page.NextCursor)
	}
}

func TestListFiltersAndPagesThroughRealBinaries(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil, nil)

	r := do(t, "GET", s.gw.URL+"/batches", nil)
	page := decode[api.BatchList](t, r)
	if r.Status != 200 || page.NextCursor != "" || page.AsOf == "" || page.Stale {
		t.Fatalf("GET /batches: %d %s", r.Status, r.Body)
	}
	got := page.Items[slices.IndexFunc(page.Items, func(b api.Batch) bool { return b.BatchID == employeeBatch })]
	if got.Total != "1289.40" || got.Currency != "USD" || got.Count != 7 || got.Status != "OPEN" ||
		got.Type != "Employee" || got.PaymentMethod != "Expense Pay by SAP Concur" || got.LastSeenAt == "" {
		t.Errorf("employee batch = %+v", got)
	}
	if body := string(r.Body); strings.Contains(body, s.sim.URL) || strings.Contains(body, "/batch/") {
		t.Errorf("an encrypted Batch-URL left the gateway: %s", body)
	}

	for _, tc := range []struct {
		name, query string
		want        []string
	}{
		{"all", "", seededBatches},
		{"open", "status=OPEN", []string{adpBatch, employeeBatch, cardBatch, emptyBatch}},
		{"closed", "status=CLOSED", []string{closedBatch}},
		{"USD", "currency=usd", []string{employeeBatch, closedBatch, cardBatch}},
		{"open USD employee batches", "status=OPEN&currency=USD&type=Employee", []string{employeeBatch}},
		{"card programs", "type=Card+Program", []string{cardBatch}},
		{"payment method", "paymentMethod=" + url.QueryEscape("Other Reimbursement Methods"), []string{emptyBatch}},
	} {
		for _, limit := range []int{1, 2} {
			q, _ := url.ParseQuery(tc.query)
			q.Set("limit", strconv.Itoa(limit))
			ids, pages := listAll(t, s, q)
			if !slices.Equal(ids, tc.want) {
				t.Errorf("%s, limit %d: %q, want %q", tc.name, limit, ids, tc.want)
			}
			if want := max(1, (len(tc.want)+limit-1)/limit); pages != want {
				t.Errorf("%s, limit %d: %d pages, want %d", tc.name, limit, pages, want)
			}
		}
	}

	// A cursor is bound to its filters.
	first := decode[api.BatchList](t, do(t, "GET", s.gw.URL+"/batches?status=OPEN&limit=1", nil))
	for _, q := range []string{"status=CLOSED&cursor=", "cursor=", "status=OPEN&currency=USD&cursor="} {
		r := do(t, "GET", s.gw.URL+"/batches?"+q+url.QueryEscape(first.NextCursor), nil)
		if p := decode[api.Problem](t, r); r.Status != 400 || p.Code != "invalid_cursor" {
			t.Errorf("cursor with other filters (%s): %d %s", q, r.Status, r.Body)
		}
	}
	for _, q := range []string{"status=DRAFT", "limit=0", "limit=501", "limit=x", "currency=EURO", "sort=name"} {
		r := do(t, "GET", s.gw.URL+"/batches?"+q, nil)
		if p := decode[api.Problem](t, r); r.Status != 400 || p.Code != "invalid_request" {
			t.Errorf("%s: %d %s", q, r.Status, r.Body)
		}
	}

	// A close shows in the list at once, and in the batch.
	if r := do(t, "POST", s.gw.URL+"/batches/"+employeeBatch+"/close", nil); r.Status != 200 {
		t.Fatalf("close: %d %s", r.Status, r.Body)
	}
	if ids, _ := listAll(t, s, url.Values{"status": {"CLOSED"}}); !slices.Equal(ids, []string{employeeBatch, closedBatch}) {
		t.Errorf("closed after the close: %q", ids)
	}
	d := decode[api.BatchDetail](t, do(t, "GET", s.gw.URL+"/batches/"+employeeBatch, nil))
	if d.Status != "CLOSED" || d.LastClose == nil || d.LastClose.Outcome != "closed" || d.LastClose.Result == nil ||
		d.LastClose.Result.FileURL != "/batches/"+employeeBatch+"/file" {
		t.Errorf("batch after the close: %+v", d)
	}
	if r := do(t, "GET", s.gw.URL+"/batches/no-such-batch", nil); r.Status != 404 || decode[api.Problem](t, r).Code != "batch_not_found" {
		t.Errorf("unknown batch: %d %s", r.Status, r.Body)
	}
}

// Reads refresh Concur's lists at most once per GATEWAY_BATCH_LIST_MIN_INTERVAL; when the
// lists cannot be read, they answer from the store, saying so.
func TestListFreshnessThroughRealBinaries(t *testing.T) {
	t.Parallel()
	const interval = 2 * time.Second
	s := startStack(t, nil, map[string]string{"GATEWAY_BATCH_LIST_MIN_INTERVAL": interval.String(), "CONCUR_MAX_ATTEMPTS": "1"})
	start := time.Now()
	fresh := decode[api.BatchList](t, do(t, "GET", s.gw.URL+"/batches", nil))
	lists := s.stats(t).ListCalls
	for range 10 {
		do(t, "GET", s.gw.URL+"/batches?status=OPEN", nil)
	}
	if n := s.stats(t).ListCalls; n != lists && time.Since(start) < interval {
		t.Errorf("10 reads within the interval made %d batch-list calls", n-lists)
	}

	s.fault(t, `{"op":"list","mode":"status","status":503,"message":"maintenance"}`)
	time.Sleep(interval + 100*time.Millisecond)
	r := do(t, "GET", s.gw.URL+"/batches?status=OPEN", nil)
	page := decode[api.BatchList](t, r)
	if r.Status != 200 || !page.Stale || page.StaleCode != "upstream_unavailable" || page.AsOf != fresh.AsOf || len(page.Items) != 4 {
		t.Errorf("while Concur's list fails: %d %s (fresh asOf %s)", r.Status, r.Body, fresh.AsOf)
	}
	if r := do(t, "GET", s.gw.URL+"/batches/no-such-batch", nil); r.Status != 503 || decode[api.Problem](t, r).Code != "upstream_unavailable" {
		t.Errorf("an unknown id while Concur's list fails: %d %s", r.Status, r.Body)
	}
	if !strings.Contains(s.gw.logs.String(), `"route":"/batches","status":200`) {
		t.Errorf("no access-log line for the stale answer")
	}
}
