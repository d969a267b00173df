package store_test

import (
	"database/sql"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/finplat/payment-batch-gateway/internal/concur"
	"github.com/finplat/payment-batch-gateway/internal/store"
	"github.com/finplat/payment-batch-gateway/internal/store/storetest"
)

var postgresBackend = backend{
	name:  "PostgreSQL",
	fresh: func(t *testing.T) store.Config { return store.Config{URL: storetest.PostgresURL(t)} },
	raw: func(t *testing.T, cfg store.Config) *sql.DB {
		pc, err := pgx.ParseConfig(cfg.URL)
		if err != nil {
			t.Fatal(err)
		}
		db := stdlib.OpenDB(*pc)
		t.Cleanup(func() { db.Close() })
		return db
	},
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	storetest.PostgresURL(t) // skips the whole test, loudly, without PostgreSQL
	testConformance(t, postgresBackend)
}

// TestPostgresSchema: the store lives in the schema the URL's search_path selects,
// goose's version table included.
func TestPostgresSchema(t *testing.T) {
	t.Parallel()
	h := newHarness(t, postgresBackend)
	h.open(t)
	u, err := url.Parse(h.cfg.URL)
	if err != nil {
		t.Fatal(err)
	}
	schema := u.Query().Get("search_path")
	var current string
	raw := h.raw(t)
	if err := raw.QueryRowContext(t.Context(), "SELECT current_schema()").Scan(&current); err != nil || current != schema {
		t.Fatalf("current_schema() = %q, %v; want %q (search_path not passed on)", current, err, schema)
	}
	rows, err := raw.QueryContext(t.Context(),
		"SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name", schema)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		got[name] = true
	}
	for _, want := range []string{"batches", "closes", "credentials", "idempotency_keys", "goose_db_version"} {
		if !got[want] {
			t.Errorf("table %s is not in schema %s (tables there: %v)", want, schema, got)
		}
	}
}

// TestPostgresConcurrentOpen: replicas starting together on a new schema migrate it once.
func TestPostgresConcurrentOpen(t *testing.T) {
	t.Parallel()
	h := newHarness(t, postgresBackend)
	const n = 4
	var wg sync.WaitGroup
	stores := make([]store.Store, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = store.Open(t.Context(), h.cfg) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("Open %d: %v", i, errs[i])
			continue
		}
		stores[i].Close()
	}
	var applied int
	if err := h.raw(t).QueryRowContext(t.Context(),
		"SELECT count(*) FROM goose_db_version WHERE version_id = 1").Scan(&applied); err != nil || applied != 1 {
		t.Errorf("migration 1 recorded %d times, %v; want once", applied, err)
	}
}

func TestPostgresNoSchema(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(storetest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", "no_such_schema_here")
	u.RawQuery = q.Encode()
	if s, err := store.Open(t.Context(), store.Config{URL: u.String(), Key: make([]byte, 32)}); err == nil {
		s.Close()
		t.Error("Open with a search_path naming no schema = nil error, want one")
	} else {
		t.Log(err)
	}
}

// TestPostgresListOrderUnderLocaleCollation: the list's order and its keyset pages do not
// depend on the database's collation. The test database's default (C.UTF-8) already sorts
// by bytes, so the batch id is given a locale collation (ICU English, which sorts case- and
// punctuation-insensitively first), as a database created with en_US would have.
func TestPostgresListOrderUnderLocaleCollation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, postgresBackend)
	h.open(t) // migrates
	raw := h.raw(t)
	var n int
	if err := raw.QueryRowContext(t.Context(), "SELECT count(*) FROM pg_collation WHERE collname = 'en-x-icu'").Scan(&n); err != nil || n == 0 {
		t.Skipf("no ICU collation en-x-icu in this PostgreSQL (%v)", err)
	}
	if _, err := raw.ExecContext(t.Context(), `ALTER TABLE batches ALTER COLUMN id TYPE TEXT COLLATE "en-x-icu"`); err != nil {
		t.Fatalf("giving batches.id a locale collation: %v", err)
	}
	testListBatchesOrder(t, h)
}

// The credentials lock is held across Concur's token call (up to the Concur time-out): a
// database that ends sessions idling in a transaction must not end this one, or the
// refresh token Concur has just rotated would be lost.
func TestPostgresCredentialLockOutlastsIdleTimeout(t *testing.T) {
	t.Parallel()
	h := newHarness(t, postgresBackend)
	u, err := url.Parse(h.cfg.URL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("idle_in_transaction_session_timeout", "100") // ms, for every session of this store
	u.RawQuery = q.Encode()
	h.cfg.URL = u.String()
	s := h.open(t)
	_, err = s.UpdateCredentials(t.Context(), func(concur.Credentials, bool) (*concur.Credentials, error) {
		time.Sleep(400 * time.Millisecond) // the token call
		return &concur.Credentials{RefreshToken: "rotated", AccessToken: "access"}, nil
	})
	if err != nil {
		t.Fatalf("UpdateCredentials across a slow token call: %v", err)
	}
	if c, found := mustLoad(t, s); !found || c.RefreshToken != "rotated" {
		t.Errorf("stored refresh token %q, want the rotated one", c.RefreshToken)
	}
}
