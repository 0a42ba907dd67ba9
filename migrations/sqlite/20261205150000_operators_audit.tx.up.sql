-- Named operators, each with a key of their own (only its id's hash is
-- kept), and the audit log of what operators and admin tokens changed:
-- who, which method, on what, and how it ended. No value is kept, a
-- secret least of all: an update lists the fields it changed.
CREATE TABLE operators (
    id          TEXT      NOT NULL PRIMARY KEY,
    name        TEXT      NOT NULL,
    key_hash    BLOB      NOT NULL,
    create_time TIMESTAMP NOT NULL,
    created_by  TEXT      NOT NULL
);
CREATE UNIQUE INDEX operators_name_key ON operators (lower(name));

CREATE TABLE audit_log (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    time    TIMESTAMP NOT NULL,
    actor   TEXT      NOT NULL,
    method  TEXT      NOT NULL,
    target  TEXT      NOT NULL,
    detail  TEXT      NOT NULL,
    code    TEXT      NOT NULL
);
CREATE INDEX audit_log_time ON audit_log (time);
