-- Webhook delivery: every attempt is kept, each event knows its place in the
-- retry schedule and when it finished, and a tenant may ask for the events
-- of one openid to be delivered in order.

-- A later event of an openid waits while an earlier one is pending. SQLite
-- has no boolean type: TRUE and FALSE are 1 and 0.
ALTER TABLE tenants ADD COLUMN ordered_delivery BOOLEAN NOT NULL DEFAULT FALSE CHECK (ordered_delivery IN (0, 1));

-- The position in the retry schedule of the event's next attempt: 0 for the
-- first, back to 0 on redelivery. attempt_count, by contrast, counts every
-- attempt ever made.
ALTER TABLE events ADD COLUMN retry_index INTEGER NOT NULL DEFAULT 0 CHECK (retry_index >= 0);

-- When the event became delivered or failed, NULL while it is pending: what
-- retention goes by. delivered_at had never been written, and state already
-- says which of the two an event finished as.
ALTER TABLE events RENAME COLUMN delivered_at TO finished_at;
-- Failed events lose their time when this migration is rolled back (see its
-- down step); without one they would never be pruned. Their last due time
-- is when they were last attempted.
UPDATE events SET finished_at = next_attempt_at WHERE state <> 'pending' AND finished_at IS NULL;

-- Retention deletes the oldest finished events of a state in small batches.
-- Partial: pending events, which have no finished_at, are not in it.
CREATE INDEX events_finished ON events (state, finished_at) WHERE finished_at IS NOT NULL;

-- Claiming, tenant by tenant: a tenant's due events, soonest first, so that
-- a claim takes the first few of each tenant without reading a large
-- tenant's whole backlog (store/delivery.go, ClaimDue). Its leading column
-- also lets a claim skip from one tenant with pending events to the next.
CREATE INDEX events_tenant_due ON events (tenant_id, next_attempt_at, seq) WHERE state = 'pending';

-- events_due ordered the due events of all tenants together, which makes
-- for unfair claims; no query uses it any more. In its place, at no extra
-- cost to ingest, the oldest pending event: the age of the backlog, for
-- metrics.
DROP INDEX events_due;
CREATE INDEX events_pending_received ON events (receive_time) WHERE state = 'pending';

-- Ordered delivery: whether an openid has a pending event earlier than the
-- one about to be claimed.
CREATE INDEX events_pending_openid ON events (tenant_id, openid, create_time, seq) WHERE state = 'pending';

-- Delivery attempts, kept with their event and deleted with it.
CREATE TABLE attempts (
    seq           INTEGER   PRIMARY KEY,
    event_id      TEXT      NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    -- The event's tenant, so that reads are scoped without a join.
    tenant_id     TEXT      NOT NULL,
    time          TIMESTAMP NOT NULL,
    -- 0 when no HTTP answer came.
    http_status   INTEGER   NOT NULL CHECK (http_status >= 0),
    latency_ms    INTEGER   NOT NULL CHECK (latency_ms >= 0),
    -- '' on success, else one of relay's Error* classes.
    error_class   TEXT      NOT NULL,
    error         TEXT      NOT NULL,
    -- The start of the webhook's answer; the caller truncates it.
    response_body BLOB      NOT NULL CHECK (length(response_body) <= 4096)
);

-- An event's attempts in the order they were made; also serves the cascade
-- when events are deleted.
CREATE INDEX attempts_event ON attempts (event_id, seq);
