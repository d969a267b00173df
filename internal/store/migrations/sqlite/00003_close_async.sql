-- Which of Concur's closes an attempt used: the asynchronous v1.2 close only schedules it,
-- so an unknown outcome of one can never be settled by a batch list that still says OPEN,
-- and its File-Url is obtained later. Only adds; existing attempts were synchronous.

-- +goose Up
ALTER TABLE closes ADD COLUMN async INTEGER NOT NULL DEFAULT 0 CHECK (async IN (0, 1));

-- +goose Down
-- Never destructive: going down is not supported.
SELECT 1;
