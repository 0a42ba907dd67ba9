-- Calls a tenant made through the WeChat-compatible API (api/wxapi), kept
-- so that the tenant can see them (GET /v1/tenants/{id}/calls): what was
-- called, what WeChat or the relay answered, how long it took. A record,
-- not a queue: written in batches off the request path, pruned with the
-- retention of delivered events.
CREATE TABLE api_calls (
    seq         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   text COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    time        timestamptz NOT NULL,
    method      text        NOT NULL,
    -- The path without its query, which holds the access token.
    path        text        NOT NULL,
    path_class  text        NOT NULL,
    http_status integer     NOT NULL,
    -- The errcode answered (WeChat's, or the relay's own refusal's); NULL
    -- for an answer without one (a media download).
    errcode     integer,
    errmsg      text        NOT NULL DEFAULT '',
    duration_us bigint      NOT NULL,
    -- WeChat refused the real token and the relay sent the call again.
    retried     boolean     NOT NULL DEFAULT false
);
-- A tenant's calls newest first; also the cascade of a tenant's deletion.
CREATE INDEX api_calls_tenant_seq ON api_calls (tenant_id, seq);
-- Pruning by age.
CREATE INDEX api_calls_time ON api_calls (time);
