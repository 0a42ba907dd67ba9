-- events_pending_openid serves only the ordered-delivery check, which only
-- tenants with ordered_delivery need, yet every push of every tenant paid
-- for an entry in it. Each event now carries its tenant's setting, written
-- when it is stored and kept in step by the tenant's updates (store/tenant.go),
-- and the index holds the pending events of ordered tenants only.
ALTER TABLE events ADD COLUMN ordered boolean NOT NULL DEFAULT false;
UPDATE events SET ordered = true WHERE tenant_id IN (SELECT id FROM tenants WHERE ordered_delivery);

-- A query uses it when it says state = 'pending' and ordered literally.
DROP INDEX events_pending_openid;
CREATE INDEX events_pending_openid ON events (tenant_id, openid, create_time, seq) WHERE state = 'pending' AND ordered;
