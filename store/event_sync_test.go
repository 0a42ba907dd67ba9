package store_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
)

// On SQLite a batch commits without an fsync and then waits for one of the
// WAL (store's walSyncer): AppendEvents must not report the batch stored
// before that fsync has finished, and a failed fsync fails the batch.
func TestAppendEvents_ReturnsOnlyAfterTheWALFsync(t *testing.T) {
	db := storetest.New(t)
	s := store.NewEventStore(db)
	tid := mustCreateTenant(t, db, "tn_sync")

	entered, release := make(chan struct{}, 4), make(chan error)
	store.SetWALFsync(db, func(f *os.File) error {
		if !strings.HasSuffix(f.Name(), "-wal") {
			t.Errorf("fsync of %s, want the WAL", f.Name())
		}
		entered <- struct{}{}
		return <-release
	})

	e := newEvent(tid, "1")
	done := make(chan error, 1)
	go func() {
		_, err := s.AppendEvents(context.Background(), []*relay.Event{e})
		done <- err
	}()
	select {
	case <-entered:
	case err := <-done:
		t.Fatalf("AppendEvents returned (%v) without an fsync of the WAL", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no fsync of the WAL")
	}
	select {
	case err := <-done:
		t.Fatalf("AppendEvents returned (%v) while its fsync was still running", err)
	case <-time.After(100 * time.Millisecond):
	}
	release <- nil
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// A failing fsync fails the batch, and every batch after it.
	boom := errors.New("input/output error")
	go func() {
		_, err := s.AppendEvents(context.Background(), []*relay.Event{newEvent(tid, "2")})
		done <- err
	}()
	<-entered
	release <- boom
	if err := <-done; !errors.Is(err, boom) {
		t.Fatalf("AppendEvents with a failed fsync = %v, want the fsync's error", err)
	}
	store.SetWALFsync(db, func(*os.File) error { return nil })
	if _, err := s.AppendEvents(context.Background(), []*relay.Event{newEvent(tid, "3")}); !errors.Is(err, boom) {
		t.Fatalf("AppendEvents after a failed fsync = %v, want it refused with the first failure", err)
	}
	// And the database stops being ready, so that a load balancer sends
	// pushes to another replica while this one waits for a restart.
	if err := db.Ping(context.Background()); !errors.Is(err, boom) {
		t.Fatalf("Ping after a failed fsync = %v, want the failure", err)
	}
}
