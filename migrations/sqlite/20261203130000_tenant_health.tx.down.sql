DROP INDEX api_calls_tenant_time;
DROP INDEX attempts_tenant_seq;
ALTER TABLE tenants DROP COLUMN push_silence_alert_seconds;
