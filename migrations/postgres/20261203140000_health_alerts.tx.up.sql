-- The operator's alert webhook (relay/alert).
--
-- The reasons of each tenant last alerted as raised: transitions are
-- measured against these, so that a restart or another replica alerts
-- nothing twice. No foreign key: a deleted tenant's reasons stay until
-- the alert job clears them, with an alert saying so.
CREATE TABLE health_reasons (
    tenant_id text COLLATE "C" NOT NULL,
    kind      text      NOT NULL,
    since     timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, kind)
);

-- The outbox of alerts, written in the transaction that changes
-- health_reasons and delivered by the alert job with retries. id is the
-- webhook-id, the same on every attempt.
CREATE TABLE health_alerts (
    seq             bigint    GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              text      NOT NULL UNIQUE,
    tenant_id       text COLLATE "C" NOT NULL,
    created_at      timestamptz NOT NULL,
    body            text      NOT NULL,
    attempts        integer   NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    delivered_at    timestamptz,
    abandoned_at    timestamptz,
    last_error      text      NOT NULL DEFAULT ''
);
-- The queue of alerts still to deliver, in order.
CREATE INDEX health_alerts_pending ON health_alerts (seq) WHERE delivered_at IS NULL AND abandoned_at IS NULL;
-- Pruning by age.
CREATE INDEX health_alerts_created ON health_alerts (created_at);
