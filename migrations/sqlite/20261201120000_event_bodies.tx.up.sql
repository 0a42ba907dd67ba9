-- An event's bodies move out of its row. Its delivery state changes twice
-- or more after it is stored (the lease of a claim, the outcome of each
-- attempt), and SQLite writes the whole row again each time, bodies and
-- all: a push's two bodies were some 1.2 KB of a 1.5 KB row, written to the
-- WAL three times over on the way to the webhook. The bodies are written
-- once, here, and only read after.
CREATE TABLE event_bodies (
    seq     INTEGER PRIMARY KEY REFERENCES events (seq) ON DELETE CASCADE,
    -- The body as WeChat posted it, and the webhook body made from it once,
    -- so that every delivery attempt sends the very same bytes.
    raw     BLOB    NOT NULL,
    payload BLOB    NOT NULL
);
INSERT INTO event_bodies (seq, raw, payload) SELECT seq, raw, payload FROM events;
ALTER TABLE events DROP COLUMN raw;
ALTER TABLE events DROP COLUMN payload;
