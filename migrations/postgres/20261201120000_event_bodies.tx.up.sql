-- An event's bodies move out of its row, which its delivery state rewrites
-- (the lease of a claim, the outcome of each attempt): see the SQLite
-- migration of the same name. On PostgreSQL an update writes a new version
-- of the row, bodies included unless TOASTed, which pushes of a kilobyte
-- or two are not.
CREATE TABLE event_bodies (
    seq     bigint PRIMARY KEY REFERENCES events (seq) ON DELETE CASCADE,
    -- The body as WeChat posted it, and the webhook body made from it once,
    -- so that every delivery attempt sends the very same bytes.
    raw     bytea  NOT NULL,
    payload bytea  NOT NULL
);
INSERT INTO event_bodies (seq, raw, payload) SELECT seq, raw, payload FROM events;
ALTER TABLE events DROP COLUMN raw;
ALTER TABLE events DROP COLUMN payload;
