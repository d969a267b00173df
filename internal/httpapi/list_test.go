package httpapi_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/finplat/payment-batch-gateway/api"
	"github.com/finplat/payment-batch-gateway/internal/auth"
	"github.com/finplat/payment-batch-gateway/internal/concursim"
)

// The simulator's seeded batches, in byte order of their IDs.
const (
	adpBatch    = concursim.SeedOpenEUR
	closedBatch = concursim.SeedClosedUSD
	cardBatch   = concursim.SeedOpenCard
)

var seeded = []string{adpBatch, employeeBatch, closedBatch, cardBatch, emptyBatch}

func (e *env) get(t *testing.T, path string) (*http.Response, []byte) {
	t.Helper()
	return send(t, "GET", e.gateway.URL+path)
}

func batchIDs(items []api.Batch) []string {
	out := make([]string, len(items))
	for i, b := range items {
		out[i] = b.BatchID
	}
	return out
}

// walkList follows nextCursor from query and returns the IDs and the number of pages.
func walkList(t *testing.T, e *env, query url.Values) ([]string, int) {
	t.Helper()
	var ids []string
	for n := 1; ; n++ {
		resp, body := e.get(t, "/batches?"+query.Encode())
		if resp.StatusCode != 200 {
			t.Fatalf("page %d (%s): %d %s", n, query.Encode(), resp.StatusCode, body)
		}
		var page api.BatchList
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, batchIDs(page.Items)...)
		if page.NextCursor == "" {
			if strings.Contains(string(body), "nextCursor") {
				t.Errorf("last page carries a nextCursor: %s", body)
			}
			return ids, n
		}
		query.Set("cursor", page.NextCursor)
	}
}

func TestListBatchesAnswer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	resp, body := e.get(t, "/batches")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /batches: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	// The exact wire shape of one item: total a decimal string, count a number, no URL.
	var raw struct {
		Items []map[string]any `json:"items"`
		AsOf  string           `json:"asOf"`
		Stale *bool            `json:"stale"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw.Items) != len(seeded) || raw.AsOf == "" || raw.Stale == nil || *raw.Stale {
		t.Fatalf("answer: %s", body)
	}
	item := raw.Items[1]
	delete(item, "firstSeenAt")
	delete(item, "lastSeenAt")
	want := map[string]any{"batchId": employeeBatch, "name": "Employee Reimbursements USD - Week 47",
		"total": "1289.40", "currency": "USD", "count": 7.0, "type": "Employee",
		"paymentMethod": "Expense Pay by SAP Concur", "status": "OPEN"}
	if diff := cmp.Diff(want, item); diff != "" {
		t.Errorf("item (-want +got):\n%s", diff)
	}
	if strings.Contains(string(body), "/batch/") || strings.Contains(string(body), e.simURL) {
		t.Errorf("an encrypted Batch-URL left the gateway: %s", body)
	}
}

func TestListBatchesFiltersAndPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	for _, tc := range []struct {
		name, query string
		want        []string
	}{
		{"all", "", seeded},
		{"open", "status=OPEN", []string{adpBatch, employeeBatch, cardBatch, emptyBatch}},
		{"closed, lower case", "status=closed", []string{closedBatch}},
		{"currency", "currency=usd", []string{employeeBatch, closedBatch, cardBatch}},
		{"type with a space", "type=Card+Program", []string{cardBatch}},
		{"payment method", "paymentMethod=" + url.QueryEscape("ADP (via EPIP file)"), []string{adpBatch}},
		{"combined", "status=OPEN&currency=USD&type=Employee", []string{employeeBatch}},
		{"no match", "currency=JPY", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, limit := range []string{"1", "2", "500"} {
				q, err := url.ParseQuery(tc.query)
				if err != nil {
					t.Fatal(err)
				}
				q.Set("limit", limit)
				got, pages := walkList(t, e, q)
				if !slices.Equal(got, tc.want) {
					t.Errorf("limit %s: %q, want %q", limit, got, tc.want)
				}
				if limit == "1" && pages != max(1, len(tc.want)) {
					t.Errorf("limit 1: %d pages for %d batches", pages, len(tc.want))
				}
			}
		})
	}
}

func TestListBatchesBadRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	_, body := e.get(t, "/batches?status=OPEN&limit=1")
	var page api.BatchList
	if err := json.Unmarshal(body, &page); err != nil || page.NextCursor == "" {
		t.Fatalf("first page: %s", body)
	}
	openCursor := url.QueryEscape(page.NextCursor)
	// The cursor with its own filters works.
	if resp, body := e.get(t, "/batches?status=open&cursor="+openCursor); resp.StatusCode != 200 {
		t.Errorf("cursor with its filters: %d %s", resp.StatusCode, body)
	}
	lists := e.sim.Stats().ListCalls // the parallel subtests run after this function returns
	for _, tc := range []struct{ name, query, code string }{
		{"unknown status", "status=PENDING", "invalid_request"},
		{"status twice", "status=OPEN&status=CLOSED", "invalid_request"},
		{"empty status", "status=", "invalid_request"},
		{"currency of two letters", "currency=US", "invalid_request"},
		{"currency with a digit", "currency=US1", "invalid_request"},
		{"unknown type", "type=Contractor", "invalid_request"},
		{"payment method with NUL", "paymentMethod=a%00b", "invalid_request"},
		{"payment method not UTF-8", "paymentMethod=%FF", "invalid_request"},
		{"limit 0", "limit=0", "invalid_request"},
		{"limit 501", "limit=501", "invalid_request"},
		{"limit not a number", "limit=ten", "invalid_request"},
		{"limit negative", "limit=-1", "invalid_request"},
		{"limit huge", "limit=99999999999999999999", "invalid_request"},
		{"unknown parameter", "state=OPEN", "invalid_request"},
		{"parameter in the wrong case", "Status=OPEN", "invalid_request"},
		{"garbage cursor", "cursor=not-a-cursor!", "invalid_cursor"},
		{"empty cursor", "cursor=", "invalid_request"},
		{"cursor of other filters", "cursor=" + openCursor, "invalid_cursor"},
		{"cursor of other filters 2", "status=CLOSED&cursor=" + openCursor, "invalid_cursor"},
		{"cursor too long", "cursor=" + strings.Repeat("A", 2000), "invalid_cursor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp, body := e.get(t, "/batches?"+tc.query)
			p := problemOf(t, resp, body)
			if resp.StatusCode != 400 || p.Code != tc.code || p.Detail == "" {
				t.Errorf("%s: %d %s, want 400 %s", tc.query, resp.StatusCode, body, tc.code)
			}
		})
	}
	t.Cleanup(func() {
		if n := e.sim.Stats().ListCalls; n != lists {
			t.Errorf("bad requests reached Concur: %d batch-list calls", n-lists)
		}
	})
}

func TestGetBatchAnswer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	resp, body := e.get(t, "/batches/"+employeeBatch)
	if resp.StatusCode != 200 || strings.Contains(string(body), "lastClose") {
		t.Fatalf("before a close: %d %s", resp.StatusCode, body)
	}
	if resp, body := e.post(t, "/batches/"+employeeBatch+"/close"); resp.StatusCode != 200 {
		t.Fatalf("close: %d %s", resp.StatusCode, body)
	}
	resp, body = e.get(t, "/batches/"+employeeBatch)
	var d api.BatchDetail
	if err := json.Unmarshal(body, &d); err != nil || resp.StatusCode != 200 {
		t.Fatalf("after a close: %d %s", resp.StatusCode, body)
	}
	if d.BatchID != employeeBatch || d.Status != "CLOSED" || d.Total != "1289.40" || d.Count != 7 || d.AsOf == "" || d.Stale ||
		d.LastClose == nil || d.LastClose.Outcome != "closed" || d.LastClose.Result == nil ||
		d.LastClose.Result.FileURL != "/batches/"+employeeBatch+"/file" {
		t.Errorf("detail: %s", body)
	}
	if strings.Contains(string(body), e.simURL) || strings.Contains(string(body), "/batch/") {
		t.Errorf("a Concur URL left the gateway: %s", body)
	}
	for _, tc := range []struct {
		path   string
		status int
		code   string
	}{
		{"/batches/no-such-batch", 404, "batch_not_found"},
		{"/batches/a.b", 400, "invalid_batch_id"},
		{"/batches/" + employeeBatch + "?verbose=1", 400, "invalid_request"},
	} {
		resp, body := e.get(t, tc.path)
		if p := problemOf(t, resp, body); resp.StatusCode != tc.status || p.Code != tc.code {
			t.Errorf("GET %s: %d %s, want %d %s", tc.path, resp.StatusCode, body, tc.status, tc.code)
		}
	}
}

// When Concur's list cannot be read, reads answer from the store and say so; an unknown
// id is the failure, not a 404.
func TestReadsWhileConcurFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{timeout: time.Second})
	_, body := e.get(t, "/batches")
	var fresh api.BatchList
	if err := json.Unmarshal(body, &fresh); err != nil || fresh.AsOf == "" || fresh.Stale {
		t.Fatalf("fresh list: %s", body)
	}
	e.sim.SetFault(concursim.Fault{Op: "list", Mode: "status", Status: 503, Message: "maintenance"})

	resp, body := e.get(t, "/batches?status=OPEN")
	var stale api.BatchList
	if err := json.Unmarshal(body, &stale); err != nil || resp.StatusCode != 200 {
		t.Fatalf("stale list: %d %s", resp.StatusCode, body)
	}
	if !stale.Stale || stale.StaleCode != "upstream_unavailable" || stale.AsOf != fresh.AsOf || len(stale.Items) != 4 {
		t.Errorf("stale list: %s (fresh asOf %s)", body, fresh.AsOf)
	}
	resp, body = e.get(t, "/batches/"+employeeBatch)
	if !strings.Contains(string(body), `"stale":true`) || resp.StatusCode != 200 {
		t.Errorf("stale get: %d %s", resp.StatusCode, body)
	}
	resp, body = e.get(t, "/batches/not-known-here")
	if p := problemOf(t, resp, body); resp.StatusCode != 503 || p.Code != "upstream_unavailable" {
		t.Errorf("unknown id while Concur fails: %d %s", resp.StatusCode, body)
	}
}

// The read routes need batches:read.
func TestReadRoutesNeedReadScope(t *testing.T) {
	t.Parallel()
	closer, closerHash, err := auth.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	reader, readerHash, err := auth.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := auth.ParseKeys([]byte(`[{"name":"closer","sha256":"` + closerHash + `","scopes":["batches:close"]},` +
		`{"name":"reader","sha256":"` + readerHash + `","scopes":["batches:read"]}]`))
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.NewAuthenticator(nil, keys)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{auth: a})
	for _, path := range []string{"/batches", "/batches?status=OPEN", "/batches/" + employeeBatch} {
		for _, tc := range []struct {
			name, key string
			status    int
			code      string
		}{
			{"no key", "", 401, "unauthorized"},
			{"without the scope", closer, 403, "forbidden"},
			{"with the scope", reader, 200, ""},
		} {
			req, _ := http.NewRequest("GET", e.gateway.URL+path, nil)
			if tc.key != "" {
				req.Header.Set("Authorization", "Bearer "+tc.key)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var p api.Problem
			_ = json.NewDecoder(resp.Body).Decode(&p)
			resp.Body.Close()
			if resp.StatusCode != tc.status || p.Code != tc.code {
				t.Errorf("%s %s: %d %q, want %d %q", tc.name, path, resp.StatusCode, p.Code, tc.status, tc.code)
			}
			if tc.status == 403 && !strings.Contains(resp.Header.Get("WWW-Authenticate"), "batches:read") {
				t.Errorf("403 WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
			}
		}
	}
}
