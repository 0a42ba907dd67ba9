-- Recoveries run oldest first again, several per tenant allowed.
DROP INDEX recoveries_one_running;
DROP INDEX recoveries_running;
CREATE INDEX recoveries_running ON recoveries (create_time) WHERE state = 'running';
ALTER TABLE recoveries DROP COLUMN step_time;
