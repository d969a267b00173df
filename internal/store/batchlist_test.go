package store_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/store"
)

// mustListBatches lists with q.
func mustListBatches(t *testing.T, s store.Store, q batch.BatchQuery) []batch.Batch {
	t.Helper()
	got, err := s.ListBatches(t.Context(), q)
	if err != nil {
		t.Fatalf("ListBatches(%+v): %v", q, err)
	}
	return got
}

func ids(batches []batch.Batch) []string {
	out := make([]string, len(batches))
	for i, b := range batches {
		out[i] = b.ID
	}
	return out
}

// pages walks every page of q (limit per page) by keyset and returns the IDs in order.
func pages(t *testing.T, s store.Store, q batch.BatchQuery, limit int) (all []string, n int) {
	t.Helper()
	q.Limit, q.After = limit, ""
	for {
		page := mustListBatches(t, s, q)
		if len(page) > limit {
			t.Fatalf("page of %d batches, limit %d", len(page), limit)
		}
		if len(page) == 0 {
			return all, n
		}
		n++
		all = append(all, ids(page)...)
		q.After = page[len(page)-1].ID
	}
}

// testListBatchesOrder: IDs come in byte order (Go's strings.Compare) on every dialect,
// whatever the database's locale: upper case before lower case, '-' and digits before
// letters, '_' between, non-ASCII last. Pages by keyset neither skip nor repeat.
func testListBatchesOrder(t *testing.T, h *harness) {
	s := h.open(t)
	all := []string{"b", "a1", "B2", "_x", "-y", "Z9", "0a", "aa", "A", "a-b", "a_b", "ab", "é", "Ab", "a", "9"}
	var batches []batch.Batch
	for i, id := range all {
		batches = append(batches, testBatch(id, i))
	}
	mustUpsert(t, s, at(0), batches...)
	want := slices.Sorted(slices.Values(all))

	if got := ids(mustListBatches(t, s, batch.BatchQuery{Limit: 100})); !slices.Equal(got, want) {
		t.Errorf("one page = %q\nwant byte order %q", got, want)
	}
	for _, limit := range []int{1, 2, 3, 7, 16, 17} {
		got, n := pages(t, s, batch.BatchQuery{}, limit)
		if !slices.Equal(got, want) {
			t.Errorf("limit %d: pages = %q\nwant %q", limit, got, want)
		}
		if wantN := (len(all) + limit - 1) / limit; n != wantN {
			t.Errorf("limit %d: %d pages, want %d", limit, n, wantN)
		}
	}
	// A cursor need not be a stored ID (the batch may be gone): the page starts after it.
	got := ids(mustListBatches(t, s, batch.BatchQuery{After: "a0", Limit: 3}))
	if diff := cmp.Diff([]string{"a1", "a_b", "aa"}, got); diff != "" {
		t.Errorf("after a0 (-want +got):\n%s", diff)
	}
	if got := mustListBatches(t, s, batch.BatchQuery{After: "é", Limit: 3}); len(got) != 0 {
		t.Errorf("after the last ID = %q, want none", ids(got))
	}
}

// testListBatchesFilters: each filter alone and combined, exact matches, over pages.
func testListBatchesFilters(t *testing.T, h *harness) {
	s := h.open(t)
	mk := func(id, status, currency, typ, method string) batch.Batch {
		b := testBatch(id, 1)
		b.Status, b.Currency, b.Type, b.PaymentMethod = status, currency, typ, method
		return b
	}
	const (
		open, closed = batch.StatusOpen, batch.StatusClosed
		emp, card    = "Employee", "Card Program"
		pay, adp     = "Expense Pay by SAP Concur", "ADP (via EPIP file)"
	)
	mustUpsert(t, s, at(0),
		mk("01", open, "USD", emp, pay),
		mk("02", closed, "USD", emp, pay),
		mk("03", open, "EUR", emp, adp),
		mk("04", open, "USD", card, adp),
		mk("05", closed, "EUR", card, pay),
		mk("06", open, "USD", emp, pay),
		mk("07", "", "USD", emp, pay), // status unknown: only in unfiltered lists
		mk("08", open, "usd", emp, pay),
		mk("09", open, "USD", emp, strings.ToLower(pay)),
	)
	for _, tc := range []struct {
		name string
		q    batch.BatchQuery
		want []string
	}{
		{"none", batch.BatchQuery{}, []string{"01", "02", "03", "04", "05", "06", "07", "08", "09"}},
		{"open", batch.BatchQuery{Status: open}, []string{"01", "03", "04", "06", "08", "09"}},
		{"closed", batch.BatchQuery{Status: closed}, []string{"02", "05"}},
		{"currency is exact", batch.BatchQuery{Currency: "USD"}, []string{"01", "02", "04", "06", "07", "09"}},
		{"type", batch.BatchQuery{Type: card}, []string{"04", "05"}},
		{"payment method is exact", batch.BatchQuery{PaymentMethod: pay}, []string{"01", "02", "05", "06", "07", "08"}},
		{"all four", batch.BatchQuery{Status: open, Currency: "USD", Type: emp, PaymentMethod: pay}, []string{"01", "06"}},
		{"no match", batch.BatchQuery{Status: closed, Currency: "GBP"}, nil},
		{"filter and cursor", batch.BatchQuery{Status: open, After: "03"}, []string{"04", "06", "08", "09"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			q.Limit = 100
			if got := ids(mustListBatches(t, s, q)); !slices.Equal(got, tc.want) {
				t.Errorf("one page = %q, want %q", got, tc.want)
			}
			if tc.q.After != "" {
				return
			}
			if got, _ := pages(t, s, tc.q, 2); !slices.Equal(got, tc.want) {
				t.Errorf("pages of 2 = %q, want %q", got, tc.want)
			}
		})
	}
}

// testListBatchesLeftList: a batch no longer in Concur's lists stays listed, with its
// last known status and when a list last held it; its encrypted URL is kept, too.
func testListBatchesLeftList(t *testing.T, h *harness) {
	s := h.open(t)
	a, b, c := testBatch("A", 1), testBatch("B", 1), testBatch("C", 1)
	a.Status = batch.StatusClosed
	mustUpsert(t, s, at(0), a, b, c)
	mustUpsert(t, s, at(time.Hour), b) // A and C left the lists
	want := []batch.Batch{withSeen(a, at(0), at(0)), withSeen(b, at(0), at(time.Hour)), withSeen(c, at(0), at(0))}
	if diff := cmp.Diff(want, mustListBatches(t, s, batch.BatchQuery{Limit: 10}), ignoreClose); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}
	if got := ids(mustListBatches(t, s, batch.BatchQuery{Status: batch.StatusOpen, Limit: 10})); !slices.Equal(got, []string{"B", "C"}) {
		t.Errorf("open = %q, want B and C (C keeps its last known status)", got)
	}
	// A close the gateway recorded shows in the list.
	if err := s.SetBatchStatus(t.Context(), "C", batch.StatusClosed); err != nil {
		t.Fatal(err)
	}
	if got := ids(mustListBatches(t, s, batch.BatchQuery{Status: batch.StatusClosed, Limit: 10})); !slices.Equal(got, []string{"A", "C"}) {
		t.Errorf("closed = %q, want A and C", got)
	}
}

// testListBatchesLimit: the limit must be positive and is capped at MaxListBatches.
func testListBatchesLimit(t *testing.T, h *harness) {
	s := h.open(t)
	for _, limit := range []int{0, -1} {
		if got, err := s.ListBatches(t.Context(), batch.BatchQuery{Limit: limit}); err == nil {
			t.Errorf("ListBatches(limit %d) = %d batches, nil error; want an error", limit, len(got))
		}
	}
	n := store.MaxListBatches + 5
	batches := make([]batch.Batch, n)
	for i := range batches {
		batches[i] = testBatch(fmt.Sprintf("B%05d", i), i)
	}
	mustUpsert(t, s, at(0), batches...)
	if got := mustListBatches(t, s, batch.BatchQuery{Limit: n}); len(got) != store.MaxListBatches {
		t.Errorf("limit %d over %d batches: %d listed, want the cap %d", n, n, len(got), store.MaxListBatches)
	}
	got := mustListBatches(t, s, batch.BatchQuery{Limit: 1})
	if len(got) != 1 || got[0].ID != "B00000" {
		t.Errorf("limit 1 = %q", ids(got))
	}
	if got := mustListBatches(t, s, batch.BatchQuery{Limit: 10, After: "B01000"}); !slices.Equal(ids(got),
		[]string{"B01001", "B01002", "B01003", "B01004"}) {
		t.Errorf("last page = %q", ids(got))
	}
}
