-- Events are WeChat's pushes, stored before WeChat is answered, together
-- with the state of their delivery to the tenant's webhook. Enums are stored
-- as readable words, times in UTC.
CREATE TABLE events (
    -- The ordering cursor of event listings. AUTOINCREMENT, unlike a plain
    -- INTEGER PRIMARY KEY, never hands out a value again, not even that of
    -- the newest event after it was deleted, so a cursor held by a client
    -- can never come to mean another event.
    seq              INTEGER   PRIMARY KEY AUTOINCREMENT,
    id               TEXT      NOT NULL UNIQUE,
    tenant_id        TEXT      NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- What tells WeChat's retries of one push apart from new pushes: the
    -- MsgId of a message, FromUserName + CreateTime + Event of an event.
    dedup_key        TEXT      NOT NULL,
    type             TEXT      NOT NULL,
    openid           TEXT      NOT NULL,
    -- Declared TIMESTAMP so the driver reads them back as times.
    create_time      TIMESTAMP NOT NULL,
    receive_time     TIMESTAMP NOT NULL,
    -- The body as WeChat posted it, and the webhook body made from it once,
    -- so that every delivery attempt sends the very same bytes.
    raw              BLOB      NOT NULL,
    payload          BLOB      NOT NULL,

    -- Delivery. A pending event is due at next_attempt_at (its receive_time
    -- when stored: at once); a deliverer leases it before attempting.
    state            TEXT      NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempt_count    INTEGER   NOT NULL DEFAULT 0 CHECK (attempt_count >= 0),
    next_attempt_at  TIMESTAMP NOT NULL,
    lease_owner      TEXT,
    lease_expires_at TIMESTAMP,
    delivered_at     TIMESTAMP,

    -- A push is stored once per tenant, however often WeChat retries it and
    -- whichever process or replica receives the retry: the database, not
    -- the application, is what makes de-duplication hold. Its index also
    -- finds the original of a retry.
    UNIQUE (tenant_id, dedup_key)
);

-- A tenant's events newest first, paged by seq (seq < cursor, ORDER BY seq
-- DESC). It also serves the cascade when a tenant is deleted.
CREATE INDEX events_tenant_seq ON events (tenant_id, seq);

-- Claiming due work: pending events whose next attempt is due, soonest
-- first. Partial, so it holds the backlog only, not every event ever
-- delivered; a query uses it when it says state = 'pending' literally.
CREATE INDEX events_due ON events (next_attempt_at) WHERE state = 'pending';
