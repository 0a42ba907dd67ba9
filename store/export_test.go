package store

import "os"

// SetWALFsync replaces the fsync of db's WAL syncer (SQLite only), so that
// tests can hold it, fail it or count it.
func SetWALFsync(db *DB, fsync func(*os.File) error) {
	db.wal.mu.Lock()
	defer db.wal.mu.Unlock()
	db.wal.fsync = fsync
}
