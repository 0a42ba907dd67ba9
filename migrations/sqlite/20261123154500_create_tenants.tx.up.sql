-- Tenants are the mini-programs wxrelay serves. No secret is stored in the
-- clear: sealed_* hold AES-256-GCM ciphertext bound to the row's id and
-- column (store/seal.go), and api_key_hash is a SHA-256 of the API key's id.
-- Enums are stored as readable words so the table makes sense in a SQL shell.
CREATE TABLE tenants (
    -- SQLite lets a non-INTEGER primary key be NULL unless told otherwise.
    id                     TEXT      NOT NULL PRIMARY KEY,
    display_name           TEXT      NOT NULL DEFAULT '',
    appid                  TEXT      NOT NULL,
    original_id            TEXT      NOT NULL DEFAULT '',
    encrypt_mode           TEXT      NOT NULL CHECK (encrypt_mode IN ('plaintext', 'compatible', 'safe')),
    data_format            TEXT      NOT NULL CHECK (data_format IN ('json', 'xml')),
    reply_mode             TEXT      NOT NULL CHECK (reply_mode IN ('success', 'transfer_customer_service')),
    state                  TEXT      NOT NULL CHECK (state IN ('active', 'disabled')),
    webhook_url            TEXT      NOT NULL,
    sealed_secrets         BLOB      NOT NULL,
    sealed_webhook_secrets BLOB      NOT NULL,
    api_key_hash           BLOB      NOT NULL,
    -- Declared TIMESTAMP so the driver reads them back as times; always UTC.
    create_time            TIMESTAMP NOT NULL,
    update_time            TIMESTAMP NOT NULL,
    version                INTEGER   NOT NULL CHECK (version > 0)
);

-- One tenant per mini-program. An appid is hex, so wxABC... and wxabc... are
-- the same mini-program and must not become two tenants.
CREATE UNIQUE INDEX tenants_appid_key ON tenants (lower(appid));
