-- Operators and the audit log.
DROP TABLE audit_log;
DROP TABLE operators;
