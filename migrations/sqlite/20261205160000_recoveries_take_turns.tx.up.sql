-- A tenant has at most one recovery running, and the running recoveries
-- of all tenants take turns, a step each in the order of their last step
-- (step_time): one tenant's million failed events no longer make every
-- other tenant's recovery wait behind them.
ALTER TABLE recoveries ADD COLUMN step_time TIMESTAMP;
UPDATE recoveries SET step_time = create_time;
-- Recoveries of one tenant that were running side by side: the oldest
-- goes on, the others end where they stand (their progress kept).
UPDATE recoveries SET state = 'done', finish_time = create_time
WHERE state = 'running' AND EXISTS (
    SELECT 1 FROM recoveries AS older
    WHERE older.tenant_id = recoveries.tenant_id AND older.state = 'running'
      AND (older.create_time < recoveries.create_time
           OR (older.create_time = recoveries.create_time AND older.id < recoveries.id)));
DROP INDEX recoveries_running;
CREATE INDEX recoveries_running ON recoveries (step_time) WHERE state = 'running';
CREATE UNIQUE INDEX recoveries_one_running ON recoveries (tenant_id) WHERE state = 'running';
