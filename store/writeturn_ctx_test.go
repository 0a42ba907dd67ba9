package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
)

// TestIngestGivesUpOnAStalledWriteTurn: while another writer holds the
// SQLite write turn, an ingest batch waits no longer than its commit
// deadline and fails (a 500 to WeChat, which retries), instead of holding
// its pushes until the writer is done; once the turn is free, pushes are
// stored again.
func TestIngestGivesUpOnAStalledWriteTurn(t *testing.T) {
	db := storetest.New(t)
	es := store.NewEventStore(db)
	tid := mustCreateTenant(t, db, "tn_a")
	ing := relay.NewIngestor(es, relay.IngestorOptions{CommitTimeout: 300 * time.Millisecond})
	defer ing.Close()

	held := make(chan struct{})
	go func() { close(held); store.HoldWriteTurn(db, 3*time.Second) }()
	<-held
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	_, err := ing.Append(context.Background(), newEvent(tid, "k1"))
	took := time.Since(start)
	if err == nil {
		t.Fatal("a push was stored while another writer held the turn")
	}
	if took > 2*time.Second {
		t.Errorf("the push waited %v for the stalled turn; its commit deadline is 300ms", took)
	}
	time.Sleep(3 * time.Second) // the writer is done
	if _, err := ing.Append(context.Background(), newEvent(tid, "k2")); err != nil {
		t.Errorf("a push once the turn was free: %v", err)
	}
}
