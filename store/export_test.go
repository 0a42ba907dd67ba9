package store

import "os"

// SetWALFsync replaces the fsync of db's WAL syncer (SQLite only), so that
// tests can hold it, fail it or count it.
func SetWALFsync(db *DB, fsync func(*os.File) error) {
	db.wal.mu.Lock()
	defer db.wal.mu.Unlock()
	db.wal.fsync = fsync
}

// SQLiteDeliveryStatements are the statements DeliveryStore prepares on
// SQLite, which bun's query hooks do not see: TestDeliveryStore_IndexUse
// checks their plans too.
var SQLiteDeliveryStatements = []string{sqliteClaim, sqliteInsertAttempt, sqliteRecordOutcome}
