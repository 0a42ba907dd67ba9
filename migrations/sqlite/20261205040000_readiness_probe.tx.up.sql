-- One row that /readyz writes, durably, to learn that the relay can still
-- store a push: a database that answers reads may not take writes (a full
-- disk), and a SQLite file deleted under the process takes them and loses
-- them.
CREATE TABLE readiness_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at INTEGER NOT NULL
);
