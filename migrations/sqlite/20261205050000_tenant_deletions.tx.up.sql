-- A deleted tenant is marked here in one short transaction and purged in
-- the background, a batch at a time, the row of tenants going last (its
-- foreign keys cascade to what little is left): deleting it in one
-- cascading transaction held the write lock, and every other tenant's
-- pushes, for as long as its history took. A marked tenant is hidden from
-- every read, its API key and appid are freed at the mark, and appid keeps
-- the appid it had, for the operator.
CREATE TABLE tenant_deletions (
    tenant_id  TEXT      NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    appid      TEXT      NOT NULL,
    deleted_at TIMESTAMP NOT NULL
);
