package store

import (
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestScrub(t *testing.T) {
	t.Parallel()
	cause := errors.New("cause")
	for _, tc := range []struct {
		name, url, msg, want string
	}{
		{"userinfo", "postgres://gw:s3cret@db/x", "auth as gw:s3cret failed", "auth as gw:xxxxx failed"},
		{"escaped", "postgres://gw:s3%40cret@db/x", "pw s3@cret or s3%40cret", "pw xxxxx or xxxxx"},
		{"query", "postgres://db/x?password=s3cret", "pw s3cret", "pw xxxxx"},
		{"unparsable", "postgres://gw:s3cret@db:port/x", "bad s3cret", "bad xxxxx"},
		{"no password", "postgres://gw@db/x", "gw failed", "gw failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := scrub(fmtErr(tc.msg, cause), tc.url)
			if err.Error() != tc.want {
				t.Errorf("scrub = %q, want %q", err, tc.want)
			}
			if !errors.Is(err, cause) {
				t.Error("scrub lost the error chain")
			}
		})
	}
	if scrub(nil, "postgres://a:b@c/d") != nil {
		t.Error("scrub(nil) != nil")
	}
}

type msgErr struct {
	msg   string
	cause error
}

func (e *msgErr) Error() string { return e.msg }
func (e *msgErr) Unwrap() error { return e.cause }

func fmtErr(msg string, cause error) error { return &msgErr{msg: msg, cause: cause} }

func TestNumberPlaceholders(t *testing.T) {
	t.Parallel()
	got := numberPlaceholders("SELECT a FROM t WHERE b = ? AND c IN (?, ?)")
	if want := "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)"; got != want {
		t.Errorf("numberPlaceholders = %q, want %q", got, want)
	}
	if strings.Contains(upsertBatchesSQL(2), "$") {
		t.Error("statements are written with ? placeholders")
	}
}

// TestSQLitePragmas: every connection of the pool gets the DSN's settings.
func TestSQLitePragmas(t *testing.T) {
	t.Parallel()
	st, err := Open(t.Context(), Config{DataDir: t.TempDir(), Key: make([]byte, 32), BusyTimeout: 90 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	db := st.(*sqlStore).db
	conns := make([]*sql.Conn, 3) // distinct connections: hold them all
	for i := range conns {
		if conns[i], err = db.Conn(t.Context()); err != nil {
			t.Fatal(err)
		}
		defer conns[i].Close()
	}
	for i, c := range conns {
		for pragma, want := range map[string]string{
			"busy_timeout": "90000", "foreign_keys": "1", "journal_mode": "wal", "synchronous": "2",
		} {
			var got string
			if err := c.QueryRowContext(t.Context(), "PRAGMA "+pragma).Scan(&got); err != nil || got != want {
				t.Errorf("connection %d: PRAGMA %s = %q, %v; want %q", i, pragma, got, err, want)
			}
		}
	}
}
