-- Operator console sessions. The cookie holds a random session id; the
-- row, found by the id's SHA-256, holds the admin token the operator
-- signed in with, sealed, until it expires. Signing out deletes the row:
-- the session ends on every replica, and the admin token, which cannot be
-- revoked on its own, is no longer in a cookie that could be replayed.
CREATE TABLE console_sessions (
    id_sha256    bytea NOT NULL PRIMARY KEY,
    sealed_token bytea NOT NULL,
    expires_at   timestamptz NOT NULL
);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);
