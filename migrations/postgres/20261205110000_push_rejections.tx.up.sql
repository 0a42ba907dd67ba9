-- Runs of refused pushes, per tenant and cause (relay/rejection): how many
-- since the run's first refusal, and when the latest was. Each replica adds
-- what it counted in memory every few seconds, so a flood of refused
-- pushes costs at most a row's update per tenant and cause per flush, and
-- no body is kept.
CREATE TABLE push_rejections (
    tenant_id  text COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    cause      text        NOT NULL,
    count      bigint      NOT NULL,
    first_time timestamptz NOT NULL,
    last_time  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, cause)
);
CREATE INDEX push_rejections_last_time ON push_rejections (last_time);
