-- The authorization events of components (authorized, updateauthorized,
-- unauthorized, and any other InfoType but tickets), stored durably before
-- WeChat is answered success and acted on afterwards, in order. A push
-- WeChat repeats (it retries one not answered in 5 s) is stored once: the
-- unique key holds what tells two events apart. sealed_body is the
-- decrypted push, sealed bound to the component, since it holds the
-- authorization code.
CREATE TABLE component_events (
    seq              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    component_id     text COLLATE "C" NOT NULL REFERENCES components (id) ON DELETE CASCADE,
    info_type        text        NOT NULL,
    authorizer_appid text        NOT NULL DEFAULT '',
    create_time      bigint      NOT NULL,
    sealed_body      bytea       NOT NULL,
    receive_time     timestamptz NOT NULL,
    processed_time   timestamptz,
    UNIQUE (component_id, info_type, authorizer_appid, create_time)
);

CREATE INDEX component_events_unprocessed ON component_events (seq) WHERE processed_time IS NULL;
