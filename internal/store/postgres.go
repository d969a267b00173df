package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/finplat/payment-batch-gateway/internal/secretbox"
)

// openPostgres opens the PostgreSQL store in the schema the connection's search_path
// selects. Errors may quote the driver, never the URL; Open scrubs the password anyway.
func openPostgres(ctx context.Context, cfg Config, box *secretbox.Box) (Store, error) {
	pc, err := pgx.ParseConfig(cfg.URL)
	if err != nil {
		// pgx's message quotes the URL (password redacted, best effort): say less.
		return nil, errors.New("store: the PostgreSQL URL cannot be parsed")
	}
	if pc.ConnectTimeout == 0 {
		pc.ConnectTimeout = 10 * time.Second
	}
	db := stdlib.OpenDB(*pc)
	n := cfg.MaxConns
	if n <= 0 {
		n = 10
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxIdleTime(5 * time.Minute)

	s := &sqlStore{db: db, box: box, d: dialect{
		name:      "PostgreSQL",
		numbered:  true,
		forUpdate: " FOR UPDATE",
		lockHeld:  "SET LOCAL idle_in_transaction_session_timeout = 0",
		byteOrder: ` COLLATE "C"`,
		nowMicros: "(extract(epoch from clock_timestamp()) * 1000000)::bigint",
		isUnique:  pgIsUnique,
	}}
	if err := s.ping(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := migrate(ctx, db, goose.DialectPostgres, "migrations/postgres"); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// pgSchema is the schema the connection's search_path selects: where the tables (and
// goose's version table) live.
func pgSchema(ctx context.Context, db *sql.DB) (string, error) {
	var schema sql.NullString
	if err := db.QueryRowContext(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return "", fmt.Errorf("store: PostgreSQL schema: %w", err)
	}
	if !schema.Valid {
		return "", errors.New("store: PostgreSQL: the search_path names no existing schema")
	}
	return schema.String, nil
}

// migrationLockID is the advisory lock that serialises the migrations of one schema:
// replicas starting together wait for each other, stores in other schemas do not.
func migrationLockID(schema string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("payment-batch-gateway migrations\x00" + schema)) // never fails
	return int64(h.Sum64())                                                 // #nosec G115 -- the hash bits reinterpreted as a bigint lock key; wrap-around intended
}

func pgIsUnique(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && e.Code == "23505" // unique_violation
}
