-- What each mini program authorized to each component: the permission
-- sets, and the refresh token that fetches its authorizer tokens, sealed
-- and written durably before anything depends on it (losing it means
-- asking the merchant to authorize again). Kept for authorizers with no
-- tenant too: a tenant created for the appid later is authorized at once.
CREATE TABLE authorizations (
    component_id         text COLLATE "C" NOT NULL REFERENCES components (id) ON DELETE CASCADE,
    authorizer_appid     text        NOT NULL,
    state                text        NOT NULL CHECK (state IN ('authorized', 'revoked')),
    func_info            text        NOT NULL DEFAULT '[]',
    sealed_refresh_token bytea,
    authorize_time       timestamptz NOT NULL,
    revoke_time          timestamptz,
    update_time          timestamptz NOT NULL,
    PRIMARY KEY (component_id, authorizer_appid)
);
