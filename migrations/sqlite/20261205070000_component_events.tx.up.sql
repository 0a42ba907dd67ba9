-- The authorization events of components (authorized, updateauthorized,
-- unauthorized, and any other InfoType but tickets), stored durably before
-- WeChat is answered success and acted on afterwards, in order. A push
-- WeChat repeats (it retries one not answered in 5 s) is stored once: the
-- unique key holds what tells two events apart. sealed_body is the
-- decrypted push, sealed bound to the component, since it holds the
-- authorization code.
CREATE TABLE component_events (
    seq              INTEGER   PRIMARY KEY AUTOINCREMENT,
    component_id     TEXT      NOT NULL REFERENCES components (id) ON DELETE CASCADE,
    info_type        TEXT      NOT NULL,
    authorizer_appid TEXT      NOT NULL DEFAULT '',
    create_time      INTEGER   NOT NULL,
    sealed_body      BLOB      NOT NULL,
    receive_time     TIMESTAMP NOT NULL,
    processed_time   TIMESTAMP,
    UNIQUE (component_id, info_type, authorizer_appid, create_time)
);

CREATE INDEX component_events_unprocessed ON component_events (seq) WHERE processed_time IS NULL;
