-- The hourly job prunes idempotency keys by age; a reservation no longer
-- scans its tenant's expired keys.
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
