package store

import "github.com/uptrace/bun"

// MigrateLockKey is the SQL of the keys of the migration lock on
// PostgreSQL, for tests that hold it as another process would.
var MigrateLockKey = migrateLockKey

// Relaxed returns db's pool for writes whose loss in a crash is harmless.
func Relaxed(db *DB) *bun.DB { return db.relaxed }
