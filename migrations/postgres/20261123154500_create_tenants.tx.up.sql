-- Tenants are the mini-programs wxrelay serves. No secret is stored in the
-- clear: sealed_* hold AES-256-GCM ciphertext bound to the row's id and
-- column (store/seal.go), and api_key_hash is a SHA-256 of the API key's id.
-- Enums are stored as readable words so the table makes sense in psql.
CREATE TABLE tenants (
    -- Byte order, as in SQLite, so that keyset paging by id walks tenants in
    -- the same order on both engines whatever the database's locale.
    id                     text COLLATE "C" PRIMARY KEY,
    display_name           text        NOT NULL DEFAULT '',
    appid                  text        NOT NULL,
    original_id            text        NOT NULL DEFAULT '',
    encrypt_mode           text        NOT NULL CHECK (encrypt_mode IN ('plaintext', 'compatible', 'safe')),
    data_format            text        NOT NULL CHECK (data_format IN ('json', 'xml')),
    reply_mode             text        NOT NULL CHECK (reply_mode IN ('success', 'transfer_customer_service')),
    state                  text        NOT NULL CHECK (state IN ('active', 'disabled')),
    webhook_url            text        NOT NULL,
    sealed_secrets         bytea       NOT NULL,
    sealed_webhook_secrets bytea       NOT NULL,
    api_key_hash           bytea       NOT NULL,
    create_time            timestamptz NOT NULL,
    update_time            timestamptz NOT NULL,
    version                bigint      NOT NULL CHECK (version > 0)
);

-- One tenant per mini-program. An appid is hex, so wxABC... and wxabc... are
-- the same mini-program and must not become two tenants.
CREATE UNIQUE INDEX tenants_appid_key ON tenants (lower(appid));
