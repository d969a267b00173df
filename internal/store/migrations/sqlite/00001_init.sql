-- The gateway's schema for SQLite. Times are unix microseconds UTC, 0 when unknown.
-- Migrations only ever add: a migration must never drop or rewrite what is stored.

-- +goose Up
CREATE TABLE batches (
    id             TEXT    NOT NULL PRIMARY KEY,
    url            TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    total          TEXT    NOT NULL,
    currency       TEXT    NOT NULL,
    batch_count    TEXT    NOT NULL,
    batch_type     TEXT    NOT NULL,
    payment_method TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    first_seen     INTEGER NOT NULL,
    last_seen      INTEGER NOT NULL
) STRICT;

CREATE TABLE closes (
    id              INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    batch_id        TEXT    NOT NULL REFERENCES batches (id),
    caller          TEXT    NOT NULL,
    request_id      TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    regenerate      INTEGER NOT NULL,
    started_at      INTEGER NOT NULL,
    ended_at        INTEGER NOT NULL,
    lease_until     INTEGER NOT NULL,
    outcome         TEXT    NOT NULL
        CHECK (outcome IN ('in_progress', 'closed', 'failed', 'unknown', 'refused')),
    upstream_status INTEGER NOT NULL,
    error_code      TEXT    NOT NULL,
    detail          TEXT    NOT NULL,
    batch_status    TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    job_queue_key   TEXT    NOT NULL,
    file_url        TEXT    NOT NULL
) STRICT;

-- One close in flight per batch.
CREATE UNIQUE INDEX closes_one_in_progress ON closes (batch_id) WHERE outcome = 'in_progress';
CREATE INDEX closes_by_batch ON closes (batch_id, id);

-- One row, created here, so that it can be locked; version 0 means nothing stored yet.
-- The tokens are sealed with AES-256-GCM by the gateway.
CREATE TABLE credentials (
    id                 INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    refresh_token      BLOB,
    refresh_expiry     INTEGER NOT NULL DEFAULT 0,
    access_token       BLOB,
    access_expiry      INTEGER NOT NULL DEFAULT 0,
    access_lifetime_ns INTEGER NOT NULL DEFAULT 0,
    geolocation        TEXT    NOT NULL DEFAULT '',
    seed_hash          TEXT    NOT NULL DEFAULT '',
    version            INTEGER NOT NULL DEFAULT 0,
    updated_at         INTEGER NOT NULL DEFAULT 0
) STRICT;
INSERT INTO credentials (id) VALUES (1);

CREATE TABLE idempotency_keys (
    caller       TEXT    NOT NULL,
    idem_key     TEXT    NOT NULL,
    fingerprint  TEXT    NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('in_progress', 'done')),
    request_id   TEXT    NOT NULL,
    lease_until  INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    status       INTEGER NOT NULL,
    content_type TEXT    NOT NULL,
    retry_after  TEXT    NOT NULL,
    body         BLOB,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (caller, idem_key)
) STRICT;
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

-- +goose Down
-- Never destructive: going down is not supported.
SELECT 1;
