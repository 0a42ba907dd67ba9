-- Component access tokens kept by relay/token (KeeperOf), one row per
-- component, deleted with it; the columns are those of tokens.
-- sealed_token holds AES-256-GCM ciphertext bound to the row's component id and
-- the column (store/seal.go), never the token itself.
CREATE TABLE component_tokens (
    component_id   text COLLATE "C" PRIMARY KEY REFERENCES components (id) ON DELETE CASCADE,
    -- The app and endpoint the token was fetched for; '' until it was.
    appid          text        NOT NULL DEFAULT '',
    endpoint       text        NOT NULL DEFAULT '' CHECK (endpoint IN ('', 'stable', 'classic')),
    sealed_token   bytea,
    expires_at     timestamptz,
    refreshed_at   timestamptz,
    -- When the token is next fetched: ahead of expiry, or after a backoff.
    due_at         timestamptz NOT NULL,
    -- The component's version at the last attempt: an updated one skips the backoff.
    tenant_version bigint      NOT NULL DEFAULT 0,
    failures       integer     NOT NULL DEFAULT 0 CHECK (failures >= 0),
    last_error     text        NOT NULL DEFAULT '',
    last_errcode   integer     NOT NULL DEFAULT 0,
    last_error_at  timestamptz,
    -- Forced stable-token refreshes: the Beijing day, its count, the last one.
    forced_day     text        NOT NULL DEFAULT '',
    forced_count   integer     NOT NULL DEFAULT 0 CHECK (forced_count >= 0),
    forced_at      timestamptz,
    -- The refresh lease: the one process that may fetch this token, until
    -- lease_until. '' and NULL when free.
    lease_owner    text        NOT NULL DEFAULT '',
    lease_until    timestamptz
);

-- The scheduled refresh looks for due tokens.
CREATE INDEX component_tokens_due ON component_tokens (due_at);
