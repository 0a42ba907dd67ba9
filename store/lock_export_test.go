package store

// MigrateLockKey is the SQL of the keys of the migration lock on
// PostgreSQL, for tests that hold it as another process would.
var MigrateLockKey = migrateLockKey
