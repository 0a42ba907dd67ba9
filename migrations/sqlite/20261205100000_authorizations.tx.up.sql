-- What each mini program authorized to each component: the permission
-- sets, and the refresh token that fetches its authorizer tokens, sealed
-- and written durably before anything depends on it (losing it means
-- asking the merchant to authorize again). Kept for authorizers with no
-- tenant too: a tenant created for the appid later is authorized at once.
CREATE TABLE authorizations (
    component_id         TEXT      NOT NULL REFERENCES components (id) ON DELETE CASCADE,
    authorizer_appid     TEXT      NOT NULL,
    state                TEXT      NOT NULL CHECK (state IN ('authorized', 'revoked')),
    func_info            TEXT      NOT NULL DEFAULT '[]',
    sealed_refresh_token BLOB,
    authorize_time       TIMESTAMP NOT NULL,
    revoke_time          TIMESTAMP,
    update_time          TIMESTAMP NOT NULL,
    PRIMARY KEY (component_id, authorizer_appid)
);
