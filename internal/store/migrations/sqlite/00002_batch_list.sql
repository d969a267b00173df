-- Index for GET /batches: the status filter, the one most lists use, in keyset order of the
-- batch id (SQLite compares TEXT by bytes, the same order as PostgreSQL's COLLATE "C" and
-- Go's; the primary key already serves the unfiltered list). The other filters are checked
-- on the rows the index walks. Only adds.

-- +goose Up
CREATE INDEX IF NOT EXISTS batches_list_by_status ON batches (status, id);

-- +goose Down
-- Never destructive: going down is not supported.
SELECT 1;
