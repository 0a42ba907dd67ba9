-- The query signatures of plaintext pushes, each with the digest of the
-- one body it signed. A plaintext push's signature covers only the Token,
-- timestamp and nonce, not the body, so without this one captured query
-- would carry any number of bodies while its timestamp is fresh; WeChat's
-- retries repeat body and query alike, and pass. Kept until the timestamp
-- could no longer pass (expires_at), then pruned.
CREATE TABLE push_nonces (
    tenant_id   TEXT      NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    signature   TEXT      NOT NULL,
    body_sha256 BLOB      NOT NULL,
    expires_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, signature)
);
CREATE INDEX push_nonces_expires ON push_nonces (expires_at);
