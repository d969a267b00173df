-- The close of a batch is a state machine kept with the batch (internal/batch/close.go):
-- every transition is one compare-and-set on close_version, and every time in it is the
-- database's clock (unix microseconds UTC, 0 when none). The state is derived once here
-- from the history of attempts the earlier versions kept; from now on it is never derived.

-- +goose Up
ALTER TABLE batches ADD COLUMN close_state TEXT NOT NULL DEFAULT 'open'
    CHECK (close_state IN ('open', 'closing', 'scheduled', 'closed', 'unknown'));
ALTER TABLE batches ADD COLUMN close_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE batches ADD COLUMN close_prev TEXT NOT NULL DEFAULT '';
ALTER TABLE batches ADD COLUMN close_attempt INTEGER NOT NULL DEFAULT 0;
ALTER TABLE batches ADD COLUMN close_lease_until INTEGER NOT NULL DEFAULT 0;
ALTER TABLE batches ADD COLUMN settle_until INTEGER NOT NULL DEFAULT 0;
ALTER TABLE batches ADD COLUMN check_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE batches ADD COLUMN file_close INTEGER NOT NULL DEFAULT 0;

-- Closed: a close that succeeded (a synchronous one, or one that carried a File-Url or
-- BatchStatus CLOSED), as the earlier guard held it closed.
UPDATE batches SET close_state = 'closed', status = 'CLOSED',
    file_close = COALESCE((SELECT MAX(c.id) FROM closes c
        WHERE c.batch_id = batches.id AND c.outcome = 'closed' AND c.file_url <> ''), 0)
WHERE EXISTS (SELECT 1 FROM closes c WHERE c.batch_id = batches.id AND c.outcome = 'closed'
    AND (c.file_url <> '' OR c.batch_status = 'CLOSED' OR NOT (c.async = 1)));
-- Scheduled: an accepted asynchronous close whose File-Url was never obtained.
UPDATE batches SET close_state = 'scheduled', check_at = 0,
    settle_until = (SELECT MAX(c.started_at) FROM closes c
        WHERE c.batch_id = batches.id AND c.outcome = 'closed' AND c.async = 1) + 86400000000
WHERE close_state = 'open' AND EXISTS (SELECT 1 FROM closes c
    WHERE c.batch_id = batches.id AND c.outcome = 'closed' AND c.async = 1);
-- Unknown: an attempt with an unknown outcome after the last close that succeeded; it is
-- settled from Concur's batch list by the next close.
UPDATE batches SET close_prev = CASE WHEN close_state = 'closed' THEN 'closed' ELSE 'open' END,
    close_state = 'unknown', settle_until = 0,
    close_attempt = (SELECT MAX(u.id) FROM closes u WHERE u.batch_id = batches.id AND u.outcome = 'unknown')
WHERE EXISTS (SELECT 1 FROM closes u WHERE u.batch_id = batches.id AND u.outcome = 'unknown'
    AND u.id > COALESCE((SELECT MAX(c.id) FROM closes c WHERE c.batch_id = batches.id AND c.outcome = 'closed'), 0));
-- Closing: an attempt in progress holds the lease.
UPDATE batches SET close_prev = close_state, close_state = 'closing',
    close_attempt = (SELECT c.id FROM closes c WHERE c.batch_id = batches.id AND c.outcome = 'in_progress'),
    close_lease_until = (SELECT c.lease_until FROM closes c WHERE c.batch_id = batches.id AND c.outcome = 'in_progress')
WHERE EXISTS (SELECT 1 FROM closes c WHERE c.batch_id = batches.id AND c.outcome = 'in_progress');

-- The finisher's work, and the attempts an idempotent retry looks for.
CREATE INDEX batches_close_due ON batches (close_state, check_at);
CREATE INDEX closes_by_key ON closes (batch_id, caller, idempotency_key, id);

-- +goose Down
-- Never destructive: going down is not supported.
SELECT 1;
