-- Bulk recoveries: a tenant's failed events since a time, queued for
-- delivery again in the background, a batch at a time, with their
-- progress (how many of total are queued so far). last_seq is where the
-- next batch starts, so that a replica taking over goes on where another
-- stopped.
CREATE TABLE recoveries (
    id           TEXT      NOT NULL PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    since        TIMESTAMP NOT NULL,
    requested_by TEXT      NOT NULL,
    state        TEXT      NOT NULL CHECK (state IN ('running', 'done')),
    total        INTEGER NOT NULL,
    recovered    INTEGER NOT NULL DEFAULT 0,
    last_seq     INTEGER NOT NULL DEFAULT 0,
    create_time  TIMESTAMP NOT NULL,
    finish_time  TIMESTAMP
);
CREATE INDEX recoveries_tenant ON recoveries (tenant_id, create_time);
CREATE INDEX recoveries_running ON recoveries (create_time) WHERE state = 'running';
