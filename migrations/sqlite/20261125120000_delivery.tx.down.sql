DROP TABLE attempts;
DROP INDEX events_pending_openid;
DROP INDEX events_pending_received;
CREATE INDEX events_due ON events (next_attempt_at) WHERE state = 'pending';
DROP INDEX events_tenant_due;
DROP INDEX events_finished;
-- delivered_at means delivered: forget when failed events failed.
UPDATE events SET finished_at = NULL WHERE state <> 'delivered';
ALTER TABLE events RENAME COLUMN finished_at TO delivered_at;
ALTER TABLE events DROP COLUMN retry_index;
ALTER TABLE tenants DROP COLUMN ordered_delivery;
