// Package storetest gives tests a real PostgreSQL to run against: each test gets a new,
// empty schema, selected through the URL's search_path and dropped when the test ends.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// Environment of the tests that use PostgreSQL.
const (
	// EnvURL names the PostgreSQL database to create test schemas in.
	EnvURL = "GATEWAY_TEST_DATABASE_URL"
	// EnvRequire, when "1", turns a missing PostgreSQL into a failure instead of a skip.
	EnvRequire = "GATEWAY_TEST_REQUIRE_POSTGRES"
	// DefaultURL is used when EnvURL is not set.
	DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
)

// connectTimeout bounds the wait for an absent PostgreSQL.
const connectTimeout = 2 * time.Second

var (
	adminOnce sync.Once
	admin     *sql.DB // shared by the tests of the process, never closed
	adminURL  *url.URL
	adminErr  error
	warnOnce  sync.Once
)

// PostgresURL returns the URL of a new, empty schema in the database named by
// $GATEWAY_TEST_DATABASE_URL (DefaultURL when unset): the URL's search_path query
// parameter selects it (pgx sends it as a run-time parameter). The schema is dropped,
// with everything in it, when t ends. When PostgreSQL does not answer within 2 seconds,
// t is skipped with a message saying so (and the process says it once on stderr), or
// fails when $GATEWAY_TEST_REQUIRE_POSTGRES=1.
func PostgresURL(t testing.TB) string {
	t.Helper()
	adminOnce.Do(connect)
	if adminErr != nil {
		missing(t, adminErr)
	}
	schema := "gwtest_" + randomHex(8)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("storetest: create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("storetest: drop schema %s: %v", schema, err)
		}
	})
	u := *adminURL
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func connect() {
	raw := os.Getenv(EnvURL)
	if raw == "" {
		raw = DefaultURL
	}
	u, err := url.Parse(raw)
	if err != nil {
		adminErr = fmt.Errorf("$%s is not a URL", EnvURL) // the value may hold a password
		return
	}
	adminURL = u
	cfg, err := pgx.ParseConfig(raw)
	if err != nil {
		adminErr = fmt.Errorf("$%s cannot be parsed by pgx", EnvURL)
		return
	}
	cfg.ConnectTimeout = connectTimeout
	db := stdlib.OpenDB(*cfg)
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		adminErr = fmt.Errorf("no PostgreSQL at %s: %v", u.Redacted(), err)
		return
	}
	admin = db
}

func missing(t testing.TB, err error) {
	t.Helper()
	msg := fmt.Sprintf("the PostgreSQL half of these tests did NOT run: %v. Start PostgreSQL "+
		"(or set %s to a reachable database URL)", err, EnvURL)
	if os.Getenv(EnvRequire) == "1" {
		t.Fatalf("storetest: %s; %s=1 requires it", msg, EnvRequire)
	}
	msg += fmt.Sprintf("; set %s=1 to make this a failure", EnvRequire)
	warnOnce.Do(func() { fmt.Fprintln(os.Stderr, "WARNING: storetest: "+msg) })
	t.Skip("storetest: " + msg)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
