-- Indexes for GET /batches: keyset pagination on the batch id in byte order (COLLATE "C",
-- the same order as SQLite's and Go's, whatever the database's locale), and the status
-- filter, the one most lists use. The other filters (currency, payment method, type) are
-- checked on the rows these indexes walk: a company has thousands of batches, not
-- millions, and every index costs the batch-list upserts. Only adds.

-- +goose Up
CREATE INDEX IF NOT EXISTS batches_list_by_id ON batches (id COLLATE "C");
CREATE INDEX IF NOT EXISTS batches_list_by_status ON batches (status, id COLLATE "C");

-- +goose Down
-- Never destructive: going down is not supported.
SELECT 1;
