DROP INDEX events_pending_openid;
CREATE INDEX events_pending_openid ON events (tenant_id, openid, create_time, seq) WHERE state = 'pending';
ALTER TABLE events DROP COLUMN ordered;
