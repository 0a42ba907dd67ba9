-- The operator's alert webhook (relay/alert).
--
-- The reasons of each tenant last alerted as raised: transitions are
-- measured against these, so that a restart or another replica alerts
-- nothing twice. No foreign key: a deleted tenant's reasons stay until
-- the alert job clears them, with an alert saying so.
CREATE TABLE health_reasons (
    tenant_id TEXT      NOT NULL,
    kind      TEXT      NOT NULL,
    since     TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, kind)
);

-- The outbox of alerts, written in the transaction that changes
-- health_reasons and delivered by the alert job with retries. id is the
-- webhook-id, the same on every attempt.
CREATE TABLE health_alerts (
    seq             INTEGER   PRIMARY KEY AUTOINCREMENT,
    id              TEXT      NOT NULL UNIQUE,
    tenant_id       TEXT      NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    body            TEXT      NOT NULL,
    attempts        INTEGER   NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    delivered_at    TIMESTAMP,
    abandoned_at    TIMESTAMP,
    last_error      TEXT      NOT NULL DEFAULT ''
);
-- The queue of alerts still to deliver, in order.
CREATE INDEX health_alerts_pending ON health_alerts (seq) WHERE delivered_at IS NULL AND abandoned_at IS NULL;
-- Pruning by age.
CREATE INDEX health_alerts_created ON health_alerts (created_at);
