-- A random token drawn by the request that began a close attempt: the only proof that an
-- attempt is that request's own (request ids come from callers and may repeat). Only adds.

-- +goose Up
ALTER TABLE closes ADD COLUMN claim TEXT NOT NULL DEFAULT '';

-- +goose Down
-- Never destructive: going down is not supported.
SELECT 1;
