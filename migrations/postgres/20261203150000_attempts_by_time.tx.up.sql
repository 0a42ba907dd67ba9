-- The console's chart of a tenant's deliveries per minute over the last
-- day reads its attempts by time.
CREATE INDEX attempts_tenant_time ON attempts (tenant_id, time);
