package batch_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/concursim"
)

// The simulator's seeded batches, in byte order of their IDs.
const (
	adpBatch   = concursim.SeedOpenEUR   // OPEN, EUR, Employee, ADP (via EPIP file)
	cardBatch  = concursim.SeedOpenCard  // OPEN, USD, Card Program
	emptyBatch = concursim.SeedOpenEmpty // OPEN, GBP
)

var seeded = []string{adpBatch, employeeBatch, closedBatch, cardBatch, emptyBatch}

func listIDs(items []batch.Info) []string {
	out := make([]string, len(items))
	for i, b := range items {
		out[i] = b.ID
	}
	return out
}

// walk reads every page of the list and returns the IDs in order and the page count.
func walk(t *testing.T, svc *batch.Service, f batch.Filter, limit int) ([]string, int) {
	t.Helper()
	var (
		all    []string
		cursor string
	)
	for n := 1; ; n++ {
		page, err := svc.List(context.Background(), batch.ListRequest{Filter: f, Cursor: cursor, Limit: limit})
		if err != nil {
			t.Fatalf("page %d: %v", n, err)
		}
		if len(page.Items) > limit || (page.NextCursor != "" && len(page.Items) != limit) {
			t.Fatalf("page %d: %d items with limit %d, next cursor %q", n, len(page.Items), limit, page.NextCursor)
		}
		all = append(all, listIDs(page.Items)...)
		if page.NextCursor == "" {
			return all, n
		}
		cursor = page.NextCursor
	}
}

func TestListFiltersAndPages(t *testing.T) {
	t.Parallel()
	svc, sim, _ := newService(t, time.Minute)
	page, err := svc.List(context.Background(), batch.ListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(seeded, listIDs(page.Items)); diff != "" || page.NextCursor != "" {
		t.Fatalf("default page (-want +got):\n%s\nnext cursor %q", diff, page.NextCursor)
	}
	emp := page.Items[1]
	emp.FirstSeen, emp.LastSeen = time.Time{}, time.Time{}
	want := batch.Info{ID: employeeBatch, Name: "Employee Reimbursements USD - Week 47", Total: "1289.40",
		Currency: "USD", Count: "7", Type: "Employee", PaymentMethod: "Expense Pay by SAP Concur", Status: "OPEN"}
	if diff := cmp.Diff(want, emp); diff != "" {
		t.Errorf("employee batch (-want +got):\n%s", diff)
	}
	if page.Items[2].Status != "CLOSED" || page.Stale != nil || page.AsOf.IsZero() {
		t.Errorf("closed batch status %q, freshness %+v", page.Items[2].Status, page.Freshness)
	}

	for _, tc := range []struct {
		name string
		f    batch.Filter
		want []string
	}{
		{"open", batch.Filter{Status: "OPEN"}, []string{adpBatch, employeeBatch, cardBatch, emptyBatch}},
		{"closed, lower case", batch.Filter{Status: "closed"}, []string{closedBatch}},
		{"currency, lower case", batch.Filter{Currency: "usd"}, []string{employeeBatch, closedBatch, cardBatch}},
		{"type", batch.Filter{Type: "Card Program"}, []string{cardBatch}},
		{"payment method", batch.Filter{PaymentMethod: "ADP (via EPIP file)"}, []string{adpBatch}},
		{"open USD employees", batch.Filter{Status: "OPEN", Currency: "USD", Type: "Employee"}, []string{employeeBatch}},
		{"no match", batch.Filter{Currency: "JPY"}, nil},
	} {
		for _, limit := range []int{1, 2, 500} {
			got, pages := walk(t, svc, tc.f, limit)
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s, limit %d: %q, want %q", tc.name, limit, got, tc.want)
			}
			if want := max(1, (len(tc.want)+limit-1)/limit); pages != want {
				t.Errorf("%s, limit %d: %d pages, want %d (no empty last page)", tc.name, limit, pages, want)
			}
		}
	}
	if n := sim.Stats().ListCalls; n != listCallsPerRefresh {
		t.Errorf("batch-list calls = %d, want one refresh for all those reads within the interval", n)
	}
}

func TestListInvalidRequestsNeverReachConcur(t *testing.T) {
	t.Parallel()
	svc, sim, _ := newService(t, 0)
	ctx := context.Background()
	// A cursor made for the list of open batches, by another gateway: cursors carry no state.
	other, _, _ := newService(t, 0)
	page, err := other.List(ctx, batch.ListRequest{Filter: batch.Filter{Status: "OPEN"}, Limit: 1})
	if err != nil || page.NextCursor == "" {
		t.Fatalf("page: %+v, %v", page, err)
	}
	openCursor := page.NextCursor
	for _, tc := range []struct {
		name string
		req  batch.ListRequest
		code batch.Code
	}{
		{"unknown status", batch.ListRequest{Filter: batch.Filter{Status: "PENDING"}}, batch.CodeInvalidRequest},
		{"short currency", batch.ListRequest{Filter: batch.Filter{Currency: "US"}}, batch.CodeInvalidRequest},
		{"currency not letters", batch.ListRequest{Filter: batch.Filter{Currency: "U$D"}}, batch.CodeInvalidRequest},
		{"type in lower case", batch.ListRequest{Filter: batch.Filter{Type: "employee"}}, batch.CodeInvalidRequest},
		{"payment method with NUL", batch.ListRequest{Filter: batch.Filter{PaymentMethod: "a\x00b"}}, batch.CodeInvalidRequest},
		{"payment method not UTF-8", batch.ListRequest{Filter: batch.Filter{PaymentMethod: "\xff"}}, batch.CodeInvalidRequest},
		{"payment method too long", batch.ListRequest{Filter: batch.Filter{PaymentMethod: strings.Repeat("x", 129)}}, batch.CodeInvalidRequest},
		{"negative limit", batch.ListRequest{Limit: -1}, batch.CodeInvalidRequest},
		{"limit over 500", batch.ListRequest{Limit: 501}, batch.CodeInvalidRequest},
		{"garbage cursor", batch.ListRequest{Cursor: "not a cursor"}, batch.CodeInvalidCursor},
		{"cursor of other filters", batch.ListRequest{Cursor: openCursor}, batch.CodeInvalidCursor},
		{"cursor of other filters 2", batch.ListRequest{Cursor: openCursor, Filter: batch.Filter{Status: "OPEN", Currency: "USD"}}, batch.CodeInvalidCursor},
	} {
		_, err := svc.List(ctx, tc.req)
		if got := batch.ErrorCode(err); got != tc.code {
			t.Errorf("%s: %v (code %q), want %q", tc.name, err, got, tc.code)
		}
	}
	// The same cursor with its own filters (in any case) is fine.
	if _, err := svc.List(ctx, batch.ListRequest{Cursor: openCursor, Filter: batch.Filter{Status: "open"}}); err != nil {
		t.Errorf("cursor with its filters: %v", err)
	}
	if st := sim.Stats(); st.ListCalls != listCallsPerRefresh {
		t.Errorf("batch-list calls = %d: only the valid request may reach Concur", st.ListCalls)
	}
}

// Reads refresh the batch lists at most once per interval, together with unknown ids,
// and concurrent reads share one refresh.
func TestReadsRefreshAtMostOncePerInterval(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, time.Minute)
	e.sim.SetFault(concursim.Fault{Op: "list", Mode: "slow", Delay: concursim.Duration(200 * time.Millisecond), Count: 2})
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := e.svc.List(context.Background(), batch.ListRequest{}); err != nil {
				t.Errorf("List: %v", err)
			}
		})
	}
	wg.Wait()
	if n := e.listHits.Load(); n != listCallsPerRefresh {
		t.Fatalf("batch-list requests for 20 concurrent lists = %d, want one refresh", n)
	}
	_, err := e.svc.Close(context.Background(), closeReq("unknown-id"))
	wantCode(t, err, batch.CodeBatchNotFound)
	_, err = e.svc.Get(context.Background(), "another-unknown-id")
	wantCode(t, err, batch.CodeBatchNotFound)
	if n := e.listHits.Load(); n != listCallsPerRefresh {
		t.Fatalf("batch-list requests = %d: unknown ids within the interval must not refresh again", n)
	}
	e.clk.Advance(time.Minute + time.Second)
	page, err := e.svc.List(context.Background(), batch.ListRequest{})
	if err != nil || e.listHits.Load() != 2*listCallsPerRefresh || !page.AsOf.Equal(e.clk.Now()) {
		t.Fatalf("after the interval: %d list requests, asOf %v (now %v), %v", e.listHits.Load(), page.AsOf, e.clk.Now(), err)
	}
}

// When Concur's list fails, reads are served from the store and say so; an unknown id
// gets the failure, not a 404 the gateway cannot vouch for.
func TestReadsServeTheStoreWhenConcurFails(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, time.Minute)
	ctx := context.Background()
	good, err := e.svc.List(ctx, batch.ListRequest{})
	if err != nil || good.Stale != nil {
		t.Fatalf("first list: %+v, %v", good.Freshness, err)
	}
	asOf := good.AsOf
	e.clk.Advance(time.Minute + time.Second)
	e.sim.SetFault(concursim.Fault{Op: "list", Mode: "status", Status: 503, Message: "maintenance"})

	page, err := e.svc.List(ctx, batch.ListRequest{Filter: batch.Filter{Status: "OPEN"}})
	if err != nil {
		t.Fatalf("list while Concur fails: %v", err)
	}
	if len(page.Items) != 4 || !page.AsOf.Equal(asOf) || batch.ErrorCode(page.Stale) != batch.CodeUpstreamUnavailable {
		t.Errorf("stale page: %d items, asOf %v (want %v), stale %v", len(page.Items), page.AsOf, asOf, page.Stale)
	}
	d, err := e.svc.Get(ctx, employeeBatch)
	if err != nil || d.ID != employeeBatch || batch.ErrorCode(d.Stale) != batch.CodeUpstreamUnavailable {
		t.Errorf("get while Concur fails: %+v, %v", d, err)
	}
	_, err = e.svc.Get(ctx, "not-known-here")
	wantCode(t, err, batch.CodeUpstreamUnavailable)

	// A process that never read the lists has nothing to vouch for: no asOf.
	cold := newTestEnv(t, time.Minute)
	cold.sim.SetFault(concursim.Fault{Op: "list", Mode: "status", Status: 503, Message: "maintenance"})
	page, err = cold.svc.List(ctx, batch.ListRequest{})
	if err != nil || len(page.Items) != 0 || !page.AsOf.IsZero() || page.Stale == nil {
		t.Errorf("cold list while Concur fails: %+v, %v", page, err)
	}
}

// A batch that left Concur's lists stays listed with its last known status; that it left
// shows in LastSeen, before AsOf.
func TestListKeepsBatchesThatLeftTheLists(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, 0)
	ctx := context.Background()
	gone := batch.Batch{ID: "0-gone", URL: "http://concur.invalid/batch/x", Name: "Purged", Total: "1.00",
		Currency: "USD", Count: "1", Type: "Employee", PaymentMethod: "Expense Pay by SAP Concur", Status: batch.StatusClosed}
	lastSeen := e.clk.Now().Add(-24 * time.Hour)
	if err := e.st.UpsertBatches(ctx, []batch.Batch{gone}, lastSeen); err != nil {
		t.Fatal(err)
	}
	page, err := e.svc.List(ctx, batch.ListRequest{Filter: batch.Filter{Status: "CLOSED"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := listIDs(page.Items); !slices.Equal(got, []string{"0-gone", closedBatch}) {
		t.Fatalf("closed batches = %q", got)
	}
	if g := page.Items[0]; !g.LastSeen.Equal(lastSeen) || !g.LastSeen.Before(page.AsOf) ||
		page.Items[1].LastSeen.Before(page.AsOf) {
		t.Errorf("left batch last seen %v, listed batch %v, asOf %v", g.LastSeen, page.Items[1].LastSeen, page.AsOf)
	}
}

func TestGet(t *testing.T) {
	t.Parallel()
	svc, sim, _ := newService(t, 0)
	ctx := context.Background()
	d, err := svc.Get(ctx, employeeBatch)
	if err != nil || d.Status != "OPEN" || d.LastClose != nil || d.Total != "1289.40" {
		t.Fatalf("before a close: %+v, %v", d, err)
	}
	res, err := svc.Close(ctx, closeReq(employeeBatch))
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.Close(ctx, closeReq(employeeBatch)) // refused: the latest attempt
	wantCode(t, err, batch.CodeBatchAlreadyClosed)
	d, err = svc.Get(ctx, employeeBatch)
	if err != nil || d.Status != "CLOSED" || d.LastClose == nil || d.LastClose.Outcome != batch.OutcomeRefused ||
		d.LastClose.ErrorCode != string(batch.CodeBatchAlreadyClosed) {
		t.Fatalf("after two closes: %+v (last close %+v), %v", d, d.LastClose, err)
	}
	trail, _ := svc.Closes(ctx, employeeBatch, 10)
	if len(trail) != 2 || trail[1].FileURL != res.FileURL || d.LastClose.ID != trail[0].ID {
		t.Errorf("trail %+v", trail)
	}
	_, err = svc.Get(ctx, "no-such-batch")
	wantCode(t, err, batch.CodeBatchNotFound)
	lists := sim.Stats().ListCalls
	_, err = svc.Get(ctx, "../etc")
	wantCode(t, err, batch.CodeInvalidBatchID)
	if sim.Stats().ListCalls != lists {
		t.Error("an invalid id reached Concur")
	}
}
