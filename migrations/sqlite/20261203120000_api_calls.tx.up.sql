-- Calls a tenant made through the WeChat-compatible API (api/wxapi), kept
-- so that the tenant can see them (GET /v1/tenants/{id}/calls): what was
-- called, what WeChat or the relay answered, how long it took. A record,
-- not a queue: written in batches off the request path, pruned with the
-- retention of delivered events.
CREATE TABLE api_calls (
    seq         INTEGER   PRIMARY KEY AUTOINCREMENT,
    tenant_id   TEXT      NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    time        TIMESTAMP NOT NULL,
    method      TEXT      NOT NULL,
    -- The path without its query, which holds the access token.
    path        TEXT      NOT NULL,
    path_class  TEXT      NOT NULL,
    http_status INTEGER   NOT NULL,
    -- The errcode answered (WeChat's, or the relay's own refusal's); NULL
    -- for an answer without one (a media download).
    errcode     INTEGER,
    errmsg      TEXT      NOT NULL DEFAULT '',
    duration_us INTEGER   NOT NULL,
    -- WeChat refused the real token and the relay sent the call again.
    retried     BOOLEAN   NOT NULL DEFAULT FALSE
);
-- A tenant's calls newest first; also the cascade of a tenant's deletion.
CREATE INDEX api_calls_tenant_seq ON api_calls (tenant_id, seq);
-- Pruning by age.
CREATE INDEX api_calls_time ON api_calls (time);
