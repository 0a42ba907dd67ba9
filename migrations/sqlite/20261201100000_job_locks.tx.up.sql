-- Locks of the scheduled jobs (cmd/wxrelay/jobs.go, store/lock.go), one row
-- per job name, so that replicas on one database take turns: the row's
-- owner may run the job until locked_until. A holder that dies stops
-- renewing, and the lock frees itself when locked_until passes.
CREATE TABLE job_locks (
    name         TEXT      NOT NULL PRIMARY KEY,
    owner        TEXT      NOT NULL,
    locked_until TIMESTAMP NOT NULL
);
