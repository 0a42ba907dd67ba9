-- Idempotency keys of message sends (issue 5), one row per tenant and key,
-- deleted with the tenant. A row is 'pending' while its first send runs and
-- 'done' once the outcome is recorded; rows older than 24 hours are ignored
-- and deleted when the tenant next reserves a key (store/idempotency.go).
CREATE TABLE idempotency_keys (
    tenant_id   TEXT      NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    idem_key    TEXT      NOT NULL,
    -- sha256 (hex) of the canonical send body.
    fingerprint TEXT      NOT NULL,
    state       TEXT      NOT NULL CHECK (state IN ('pending', 'done')),
    -- The outcome once done: gRPC code 0 for success, else the code, the
    -- WeChat errcode and errmsg if WeChat refused, and the full
    -- google.rpc.Status the caller got, for replay.
    grpc_code   INTEGER   NOT NULL DEFAULT 0,
    errcode     INTEGER   NOT NULL DEFAULT 0,
    errmsg      TEXT      NOT NULL DEFAULT '',
    status      BLOB,
    created_at  TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    PRIMARY KEY (tenant_id, idem_key)
);
