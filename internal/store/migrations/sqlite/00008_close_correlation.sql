-- The concur-correlationid header of the Concur answer that decided a close attempt (at
-- most 128 visible ASCII characters, checked where it enters): what Concur's support asks
-- for. Only adds; earlier attempts have none.

-- +goose Up
ALTER TABLE closes ADD COLUMN upstream_correlation_id TEXT NOT NULL DEFAULT '';

-- +goose Down
-- Never destructive: going down is not supported.
SELECT 1;
