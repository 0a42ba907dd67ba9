-- Third-party platforms (components, protocol §9). Their secret, Token,
-- EncodingAESKey and last component_verify_ticket are sealed like a
-- tenant's secrets (store/seal.go), bound to the row's id and column; the
-- ticket's receive time is in the clear, for health and the API.
CREATE TABLE components (
    id                  text COLLATE "C" PRIMARY KEY,
    display_name        text        NOT NULL DEFAULT '',
    component_appid     text        NOT NULL,
    sealed_secrets      bytea       NOT NULL,
    sealed_ticket       bytea,
    ticket_receive_time timestamptz,
    create_time         timestamptz NOT NULL,
    update_time         timestamptz NOT NULL,
    version             bigint      NOT NULL CHECK (version > 0)
);

-- One component per open-platform app, whatever the case of its hex.
CREATE UNIQUE INDEX components_appid_key ON components (lower(component_appid));
