ALTER TABLE events ADD COLUMN raw bytea NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN payload bytea NOT NULL DEFAULT '';
UPDATE events SET raw = b.raw, payload = b.payload FROM event_bodies AS b WHERE b.seq = events.seq;
DROP TABLE event_bodies;
