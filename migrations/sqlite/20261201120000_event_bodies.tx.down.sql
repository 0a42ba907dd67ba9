ALTER TABLE events ADD COLUMN raw BLOB NOT NULL DEFAULT x'';
ALTER TABLE events ADD COLUMN payload BLOB NOT NULL DEFAULT x'';
UPDATE events SET raw = b.raw, payload = b.payload FROM event_bodies AS b WHERE b.seq = events.seq;
DROP TABLE event_bodies;
