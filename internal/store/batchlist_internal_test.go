package store

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/store/storetest"
)

// planQueries are the shapes of ListBatches's statement the indexes of migration 2 serve.
var planQueries = []struct {
	name      string
	q         batch.BatchQuery
	wantIndex map[string]string // dialect name -> an index the plan must use
}{
	{"unfiltered", batch.BatchQuery{Limit: 50, After: "m"},
		map[string]string{"SQLite": "sqlite_autoindex_batches_1", "PostgreSQL": "batches_list_by_id"}},
	{"by status", batch.BatchQuery{Status: batch.StatusOpen, Limit: 50, After: "m"},
		map[string]string{"SQLite": "batches_list_by_status", "PostgreSQL": "batches_list_by_status"}},
	{"by status and currency", batch.BatchQuery{Status: batch.StatusOpen, Currency: "USD", Limit: 50},
		map[string]string{"SQLite": "batches_list_by_status", "PostgreSQL": "batches_list_by_status"}},
}

// TestListBatchesPlanSQLite: the list walks an index in the order asked for: no sort.
func TestListBatchesPlanSQLite(t *testing.T) {
	t.Parallel()
	st, err := Open(t.Context(), Config{DataDir: t.TempDir(), Key: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := st.(*sqlStore)
	for _, pq := range planQueries {
		query, args := s.listBatchesSQL(pq.q)
		plan := explain(t, s.db, "EXPLAIN QUERY PLAN "+query, args, 3)
		if !strings.Contains(plan, pq.wantIndex["SQLite"]) || strings.Contains(plan, "TEMP B-TREE") {
			t.Errorf("%s: plan\n%s\nwant index %s and no sort", pq.name, plan, pq.wantIndex["SQLite"])
		}
	}
}

// TestListBatchesPlanPostgres: with sequential and bitmap scans discouraged (the test table
// is tiny), the planner walks an index whose collation matches ORDER BY id COLLATE "C":
// no sort.
func TestListBatchesPlanPostgres(t *testing.T) {
	t.Parallel()
	st, err := Open(t.Context(), Config{URL: storetest.PostgresURL(t), Key: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := st.(*sqlStore)
	conn, err := s.db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, set := range []string{"SET enable_seqscan = off", "SET enable_bitmapscan = off"} {
		if _, err := conn.ExecContext(t.Context(), set); err != nil {
			t.Fatal(err)
		}
	}
	for _, pq := range planQueries {
		query, args := s.listBatchesSQL(pq.q)
		plan := explain(t, conn, "EXPLAIN "+query, args, 0)
		if !strings.Contains(plan, pq.wantIndex["PostgreSQL"]) || strings.Contains(plan, "Sort") {
			t.Errorf("%s: plan\n%s\nwant index %s and no sort", pq.name, plan, pq.wantIndex["PostgreSQL"])
		}
	}
}

// explain runs an EXPLAIN and returns column col of its rows, one per line (SQLite's
// EXPLAIN QUERY PLAN has 4 columns, the detail last; PostgreSQL's EXPLAIN has one).
func explain(t *testing.T, db interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, query string, args []any, col int) string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		switch v := vals[col].(type) {
		case []byte:
			lines = append(lines, string(v))
		case string:
			lines = append(lines, v)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}
