-- Downloads of a close's payment file, and the file's fingerprint: the SHA-256 and size of
-- the first complete download, against which every later download of the close is
-- verified. Only adds.

-- +goose Up
CREATE TABLE downloads (
    id         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    close_id   INTEGER NOT NULL REFERENCES closes (id),
    batch_id   TEXT    NOT NULL,
    caller     TEXT    NOT NULL,
    request_id TEXT    NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at   INTEGER NOT NULL,
    bytes      INTEGER NOT NULL,
    sha256     TEXT    NOT NULL,
    outcome    TEXT    NOT NULL CHECK (outcome IN ('complete', 'cut', 'mismatch', 'failed'))
) STRICT;
CREATE INDEX downloads_by_batch ON downloads (batch_id, close_id, id);

-- One fingerprint per close: the first complete download's, never replaced.
CREATE TABLE file_fingerprints (
    close_id    INTEGER NOT NULL PRIMARY KEY REFERENCES closes (id),
    sha256      TEXT    NOT NULL,
    size        INTEGER NOT NULL,
    download_id INTEGER NOT NULL REFERENCES downloads (id),
    recorded_at INTEGER NOT NULL
) STRICT;

-- +goose Down
-- Never destructive: going down is not supported.
SELECT 1;
