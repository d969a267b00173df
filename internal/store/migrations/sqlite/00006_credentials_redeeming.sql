-- The redeeming marker and the spent refresh tokens (issue 12, scenarios 4 and 13). Before
-- a replica presents a refresh token to Concur it commits redeeming_hash (the hex SHA-256 of
-- that token) with a lease on the database's clock (redeeming_until, unix microseconds), so
-- that the other replicas wait instead of presenting it too; the grant's commit clears it.
-- spent_seeds and spent_tokens list, space-separated and newest first, the hashes of the
-- seeds that started a chain and of the latest refresh tokens redeemed: never presented
-- again. Only adds.

-- +goose Up
ALTER TABLE credentials ADD COLUMN redeeming_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE credentials ADD COLUMN redeeming_until INTEGER NOT NULL DEFAULT 0;
ALTER TABLE credentials ADD COLUMN spent_seeds TEXT NOT NULL DEFAULT '';
ALTER TABLE credentials ADD COLUMN spent_tokens TEXT NOT NULL DEFAULT '';

-- +goose Down
-- Never destructive: going down is not supported.
SELECT 1;
