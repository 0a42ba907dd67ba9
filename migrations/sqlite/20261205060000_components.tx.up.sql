-- Third-party platforms (components, protocol §9). Their secret, Token,
-- EncodingAESKey and last component_verify_ticket are sealed like a
-- tenant's secrets (store/seal.go), bound to the row's id and column; the
-- ticket's receive time is in the clear, for health and the API.
CREATE TABLE components (
    id                  TEXT      NOT NULL PRIMARY KEY,
    display_name        TEXT      NOT NULL DEFAULT '',
    component_appid     TEXT      NOT NULL,
    sealed_secrets      BLOB      NOT NULL,
    sealed_ticket       BLOB,
    ticket_receive_time TIMESTAMP,
    create_time         TIMESTAMP NOT NULL,
    update_time         TIMESTAMP NOT NULL,
    version             INTEGER   NOT NULL CHECK (version > 0)
);

-- One component per open-platform app, whatever the case of its hex.
CREATE UNIQUE INDEX components_appid_key ON components (lower(component_appid));
