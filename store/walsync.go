package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// walSyncer makes SQLite's write-ahead log durable outside SQLite's commit,
// so that ingest can overlap one batch's fsync with the next batch's
// inserts.
//
// With synchronous=FULL, SQLite fsyncs the WAL inside COMMIT while it holds
// the write lock: every other writer waits for the disk, and on this
// project's disks the fsync is most of a group commit (BenchmarkAppendEvents:
// a batch of 128 takes about three times as long with FULL as with NORMAL).
// Event batches therefore commit with synchronous=NORMAL, which writes the
// WAL frames but does not fsync them, release the write lock, and then wait
// here for an fsync of the WAL file that began after their commit. Since the
// WAL is appended in commit order, that fsync makes the batch durable, and
// with it every commit before it; no push is answered before it returns,
// which is all synchronous=FULL would have promised. Meanwhile the next
// batch runs its inserts, and its fsync covers every batch that committed
// while the previous one was on its way to disk: a second level of group
// commit.
//
// What makes this safe:
//   - SQLite overwrites the WAL from its start after a checkpoint has copied
//     everything into the database (and fsynced it), so a torn write after a
//     restart of the WAL can only lose commits that no one has been told of.
//   - The WAL file must be the one SQLite writes. Connections set
//     SQLITE_FCNTL_PERSIST_WAL, so SQLite does not delete the file when the
//     last connection closes, and every sync checks that the path still
//     names the inode it opened, reopening (and syncing the directory, so
//     that a new file's name is durable too) when it does not.
//   - A failed fsync is sticky: Linux may drop the dirty pages of a failed
//     write and report success to the next fsync, so after one failure no
//     later sync can vouch for earlier commits. Appends then fail until the
//     process restarts and SQLite recovers the WAL, and WeChat retries.
type walSyncer struct {
	path string // the WAL file: the database path + "-wal"

	mu   sync.Mutex
	cond *sync.Cond
	// started counts syncs begun, finished the syncs done; a caller needs a
	// sync numbered above started at the moment it asks.
	started, finished uint64
	running           bool
	err               error // sticky: see above
	f                 *os.File
	fi                os.FileInfo // f's, to tell whether the path still names it

	fsync func(*os.File) error // the fsync; tests replace it
}

func newWALSyncer(dbPath string) *walSyncer {
	w := &walSyncer{path: dbPath + "-wal", fsync: (*os.File).Sync}
	w.cond = sync.NewCond(&w.mu)
	return w
}

// Sync returns once an fsync of the WAL that began after Sync was called
// has finished: everything committed before the call is then on disk.
// Callers that arrive while an fsync runs share the next one.
func (w *walSyncer) Sync() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	need := w.started + 1
	for w.finished < need && w.err == nil {
		if w.running {
			w.cond.Wait()
			continue
		}
		// Lead: sync for everyone waiting, this caller included.
		w.running = true
		w.started++
		n := w.started
		w.mu.Unlock()
		err := w.syncFile()
		w.mu.Lock()
		w.running = false
		w.finished = n
		if err != nil && w.err == nil {
			w.err = fmt.Errorf("store: fsync the SQLite WAL: %w; pushes are refused until wxrelay restarts", err)
		}
		w.cond.Broadcast()
	}
	return w.err
}

// syncFile fsyncs the WAL file, (re)opening it first if needed. Only the
// leader of a sync calls it, so it needs no lock for f and ino.
func (w *walSyncer) syncFile() error {
	fi, err := os.Stat(w.path)
	if err != nil {
		return err
	}
	if w.f == nil || !os.SameFile(fi, w.fi) {
		if w.f != nil {
			w.f.Close()
			w.f = nil
		}
		f, err := os.Open(w.path)
		if err != nil {
			return err
		}
		if w.fi, err = f.Stat(); err != nil {
			f.Close()
			return err
		}
		w.f = f
		// The file is new to us and may be new on disk: its directory
		// entry must be durable before any commit in it counts.
		if err := syncDir(filepath.Dir(w.path)); err != nil {
			return err
		}
	}
	return w.fsync(w.f)
}

// failed returns the error that stops appends, if any; nil for a nil w.
func (w *walSyncer) failed() error {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *walSyncer) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.running {
		w.cond.Wait()
	}
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	if w.err == nil {
		w.err = errors.New("store: database closed")
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
