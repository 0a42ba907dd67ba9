-- Tenant health (relay/health).
--
-- A tenant may ask to be told when its pushes stop: after this many
-- seconds without one its health shows NO_PUSHES. 0, the default, never.
ALTER TABLE tenants ADD COLUMN push_silence_alert_seconds INTEGER NOT NULL DEFAULT 0 CHECK (push_silence_alert_seconds >= 0);

-- A tenant's latest delivery attempts, newest first: the webhook's run of
-- failures.
CREATE INDEX attempts_tenant_seq ON attempts (tenant_id, seq);

-- A tenant's recent sends, for the reply-window refusals of the last
-- minutes.
CREATE INDEX api_calls_tenant_time ON api_calls (tenant_id, time);
