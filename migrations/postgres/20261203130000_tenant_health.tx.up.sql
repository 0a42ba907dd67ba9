-- Tenant health (relay/health).
--
-- A tenant may ask to be told when its pushes stop: after this many
-- seconds without one its health shows NO_PUSHES. 0, the default, never.
ALTER TABLE tenants ADD COLUMN push_silence_alert_seconds integer NOT NULL DEFAULT 0 CHECK (push_silence_alert_seconds >= 0);

-- A tenant's latest delivery attempts, newest first: the webhook's run of
-- failures.
CREATE INDEX attempts_tenant_seq ON attempts (tenant_id, seq);

-- A tenant's recent sends, for the reply-window refusals of the last
-- minutes.
CREATE INDEX api_calls_tenant_time ON api_calls (tenant_id, time);

-- The health reasons in force for each tenant as the operator was last
-- told (--alert-webhook): what a transition is measured against, so that
-- replicas and restarts neither repeat nor miss one.
CREATE TABLE health_reasons (
    tenant_id text COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    reason    text        NOT NULL,
    since     timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, reason)
);

-- Health transitions waiting to be delivered to the operator's alert
-- webhook, each under the id it is signed with (webhook-id) on every try.
CREATE TABLE health_alerts (
    id              text        PRIMARY KEY,
    tenant_id       text        NOT NULL,
    payload         bytea       NOT NULL,
    created_at      timestamptz NOT NULL,
    attempt_count   integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_error      text        NOT NULL DEFAULT '',
    delivered_at    timestamptz
);
CREATE INDEX health_alerts_due ON health_alerts (next_attempt_at) WHERE delivered_at IS NULL;
