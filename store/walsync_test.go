package store

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func newTestWALSyncer(t *testing.T) (*walSyncer, string) {
	t.Helper()
	db := filepath.Join(t.TempDir(), "x.db")
	if err := os.WriteFile(db+"-wal", []byte("frames"), 0o600); err != nil {
		t.Fatal(err)
	}
	w := newWALSyncer(db)
	t.Cleanup(w.close)
	return w, db + "-wal"
}

// A caller that arrives while an fsync runs must not take that fsync's
// word: it began before the caller's commit. It waits for the next one,
// which it shares with everyone else who arrived meanwhile.
func TestWALSyncer_WaitsForALaterFsyncAndSharesIt(t *testing.T) {
	w, _ := newTestWALSyncer(t)
	var calls atomic.Int32
	release := make(chan struct{})
	entered := make(chan struct{}, 16)
	w.fsync = func(*os.File) error {
		calls.Add(1)
		entered <- struct{}{}
		<-release
		return nil
	}

	first := make(chan error, 1)
	go func() { first <- w.Sync() }()
	<-entered // the first fsync is running

	const late = 8
	var wg sync.WaitGroup
	var returned atomic.Int32
	for range late {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.Sync(); err != nil {
				t.Error(err)
			}
			returned.Add(1)
		}()
	}
	// Let the late callers queue up behind the running fsync.
	time.Sleep(50 * time.Millisecond)
	release <- struct{}{}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	<-entered // the late callers' shared fsync
	if n := returned.Load(); n != 0 {
		t.Fatalf("%d late callers returned on the fsync that began before they called", n)
	}
	release <- struct{}{}
	wg.Wait()
	if n := calls.Load(); n != 2 {
		t.Errorf("fsync ran %d times for 1+%d callers, want 2 (the late ones share one)", n, late)
	}
}

func TestWALSyncer_FailureIsSticky(t *testing.T) {
	w, _ := newTestWALSyncer(t)
	boom := errors.New("EIO")
	w.fsync = func(*os.File) error { return boom }
	if err := w.Sync(); !errors.Is(err, boom) {
		t.Fatalf("Sync = %v, want the fsync error", err)
	}
	w.fsync = func(*os.File) error { return nil }
	if err := w.Sync(); !errors.Is(err, boom) {
		t.Fatalf("Sync after a failed fsync = %v, want the first failure again: an fsync after a failed one vouches for nothing", err)
	}
}

// When the path comes to name another file (SQLite made a new WAL), the
// syncer must fsync the new file, not the one it had open.
func TestWALSyncer_ReopensAReplacedFile(t *testing.T) {
	w, path := newTestWALSyncer(t)
	var synced []os.FileInfo
	w.fsync = func(f *os.File) error {
		fi, err := f.Stat()
		synced = append(synced, fi)
		return err
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte("other frames"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	now, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(synced) != 2 || os.SameFile(synced[0], synced[1]) || !os.SameFile(synced[1], now) {
		t.Errorf("second fsync was not of the file the path names now")
	}
}

func TestWALSyncer_MissingWALIsAnError(t *testing.T) {
	w := newWALSyncer(filepath.Join(t.TempDir(), "none.db"))
	defer w.close()
	if err := w.Sync(); err == nil {
		t.Fatal("Sync of a WAL that does not exist succeeded")
	}
}
