DROP TABLE job_locks;
