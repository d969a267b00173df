package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/secretbox"
)

// DefaultBusyTimeout is how long a SQLite write waits for another one to finish. A token
// refresh holds the write lock while it calls Concur, so it is generous.
const DefaultBusyTimeout = 3 * time.Minute

// Config says where the store lives.
type Config struct {
	// URL: "" means SQLite in DataDir/gateway.db; "postgres://..." or "postgresql://..."
	// means PostgreSQL, in the schema the connection's search_path selects (e.g. the URL
	// query parameter search_path=gateway). The URL may hold a password: it never appears
	// in errors.
	URL string
	// DataDir: SQLite only; created 0700 if missing; the database file is 0600.
	DataDir string
	// Key is the 32-byte AES-256 key that encrypts the stored tokens.
	Key []byte
	// BusyTimeout: SQLite only; how long a write waits for the write lock held by another
	// writer (0 means DefaultBusyTimeout).
	BusyTimeout time.Duration
	// MaxConns caps the open connections (0 means 8 for SQLite, 10 for PostgreSQL).
	MaxConns int

	// unsafeNoSync: SQLite with synchronous=OFF, commits not fsynced: only for the
	// benchmark that shows what the fsyncs of a close's commits cost (BenchmarkCloseCommits).
	unsafeNoSync bool
}

// Open opens the store, creating it and applying pending migrations as needed; opening
// an up-to-date store changes nothing. Times are kept with microsecond precision: what
// is read back is truncated to the microsecond, in UTC; the zero time is stored as 0
// (so the Unix epoch itself would read back as the zero time).
func Open(ctx context.Context, cfg Config) (Store, error) {
	box, err := secretbox.New(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("store: the encryption key: %w", err)
	}
	u := strings.ToLower(cfg.URL)
	switch {
	case cfg.URL == "":
		return openSQLite(ctx, cfg, box)
	case strings.HasPrefix(u, "postgres://"), strings.HasPrefix(u, "postgresql://"):
		s, err := openPostgres(ctx, cfg, box)
		return s, scrub(err, cfg.URL)
	default:
		return nil, errors.New("store: the database URL must start with postgres:// or postgresql:// (or be empty for SQLite)")
	}
}

// scrub keeps the URL's password (if any) out of err's message. errors.Is and errors.As
// still see the original chain.
func scrub(err error, dbURL string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	for _, pw := range passwords(dbURL) {
		msg = strings.ReplaceAll(msg, pw, "xxxxx")
	}
	if msg == err.Error() {
		return err
	}
	return &scrubbed{msg: msg, err: err}
}

// passwords are the forms the password in a postgres:// URL may take in a message: as
// written in the userinfo or in a password query parameter, and decoded. The raw text
// is searched too, so that a URL that does not parse cannot leak either.
func passwords(dbURL string) []string {
	var pws []string
	add := func(pw string) {
		if pw == "" {
			return
		}
		pws = append(pws, pw)
		if dec, err := url.PathUnescape(pw); err == nil && dec != pw {
			pws = append(pws, dec)
		}
	}
	if _, rest, ok := strings.Cut(dbURL, "://"); ok {
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if _, pw, ok := strings.Cut(rest[:at], ":"); ok {
				add(pw)
			}
		}
	}
	if u, err := url.Parse(dbURL); err == nil {
		if pw, ok := u.User.Password(); ok {
			add(pw)
		}
		add(u.Query().Get("password"))
	}
	return pws
}

type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }
