-- Events are WeChat's pushes, stored before WeChat is answered, together
-- with the state of their delivery to the tenant's webhook. Enums are stored
-- as readable words so the table makes sense in psql.
CREATE TABLE events (
    -- The ordering cursor of event listings. An identity never hands out a
    -- value again, so a cursor held by a client can never come to mean
    -- another event. Several transactions may commit their values out of
    -- order; a listing is a view, not a queue, so that is harmless.
    seq              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               text        NOT NULL UNIQUE,
    -- Byte order, like tenants.id.
    tenant_id        text COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- What tells WeChat's retries of one push apart from new pushes: the
    -- MsgId of a message, FromUserName + CreateTime + Event of an event.
    dedup_key        text        NOT NULL,
    type             text        NOT NULL,
    openid           text        NOT NULL,
    create_time      timestamptz NOT NULL,
    receive_time     timestamptz NOT NULL,
    -- The body as WeChat posted it, and the webhook body made from it once,
    -- so that every delivery attempt sends the very same bytes.
    raw              bytea       NOT NULL,
    payload          bytea       NOT NULL,

    -- Delivery. A pending event is due at next_attempt_at (its receive_time
    -- when stored: at once); a deliverer leases it before attempting.
    state            text        NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempt_count    integer     NOT NULL DEFAULT 0 CHECK (attempt_count >= 0),
    next_attempt_at  timestamptz NOT NULL,
    lease_owner      text,
    lease_expires_at timestamptz,
    delivered_at     timestamptz,

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
