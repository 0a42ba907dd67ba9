package relay_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/relay/delivery"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
	"github.com/wxrelay/wxrelay/tenant"
)

func mustTenant(t *testing.T, db *store.DB) tenant.ID {
	t.Helper()
	tn := &tenant.Tenant{
		ID: "tn_ingest", AppID: "wx0123456789abcdef", EncryptMode: tenant.EncryptPlaintext,
		DataFormat: tenant.FormatJSON, ReplyMode: tenant.ReplySuccess, State: tenant.StateActive,
		WebhookURL: "https://hooks.example.com/", Secrets: tenant.Secrets{AppSecret: "5ec2e75ec2e75ec2e75ec2e75ec2e75e", Token: "tok"},
		APIKeyHash: []byte{1}, CreateTime: time.Now(), UpdateTime: time.Now(), Version: 1,
	}
	if err := store.NewTenantStore(db).Create(context.Background(), tn); err != nil {
		t.Fatal(err)
	}
	return tn.ID
}

func event(tid tenant.ID, key string) *relay.Event {
	now := time.Now().UTC()
	return &relay.Event{
		ID: relay.NewEventID(now), TenantID: tid, DedupKey: key, Type: "message.text", OpenID: "o1",
		CreateTime: now.Truncate(time.Second), ReceiveTime: now, Raw: []byte("raw"), Payload: []byte(`{}`),
		State: relay.StatePending,
	}
}

// TestIngestorGroupCommits checks that concurrent appends share commits,
// and that every caller learns its own outcome, duplicates included.
func TestIngestorGroupCommits(t *testing.T) {
	db := storetest.New(t)
	tid := mustTenant(t, db)
	var commits, committed atomic.Int64
	in := relay.NewIngestor(store.NewEventStore(db), relay.IngestorOptions{
		OnCommit: func(size int, _ time.Duration, err error) {
			if err == nil {
				commits.Add(1)
				committed.Add(int64(size))
			}
		},
	})
	defer in.Close()

	const n = 400
	var wg sync.WaitGroup
	ids := make([]relay.AppendResult, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Every key is sent twice: the second is a duplicate.
			res, err := in.Append(context.Background(), event(tid, fmt.Sprintf("msg:%d", i/2)))
			if err != nil {
				t.Error(err)
			}
			ids[i] = res
		}()
	}
	wg.Wait()
	for i := 0; i < n; i += 2 {
		a, b := ids[i], ids[i+1]
		if a.ID != b.ID || a.Duplicate == b.Duplicate {
			t.Errorf("key %d: results %+v and %+v, want one original and one duplicate of the same id", i/2, a, b)
		}
	}
	if committed.Load() != n {
		t.Errorf("%d events went through commits, want %d", committed.Load(), n)
	}
	if commits.Load() >= n {
		t.Errorf("%d commits for %d concurrent appends: no group commit", commits.Load(), n)
	}
	t.Logf("%d appends in %d commits", n, commits.Load())
}

func TestIngestorClosed(t *testing.T) {
	db := storetest.New(t)
	tid := mustTenant(t, db)
	in := relay.NewIngestor(store.NewEventStore(db), relay.IngestorOptions{})
	if _, err := in.Append(context.Background(), event(tid, "msg:1")); err != nil {
		t.Fatal(err)
	}
	in.Close()
	if _, err := in.Append(context.Background(), event(tid, "msg:2")); !errors.Is(err, relay.ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
}

func TestIngestorStoreFailure(t *testing.T) {
	db := storetest.New(t)
	tid := mustTenant(t, db)
	in := relay.NewIngestor(store.NewEventStore(db), relay.IngestorOptions{})
	defer in.Close()
	db.Close()
	if _, err := in.Append(context.Background(), event(tid, "msg:1")); err == nil {
		t.Errorf("Append with the database closed succeeded")
	}
}

// An event the store refuses fails alone, not the pushes committed with it.
func TestIngestorIsolatesARefusedEvent(t *testing.T) {
	db := storetest.New(t)
	tid := mustTenant(t, db)
	in := relay.NewIngestor(store.NewEventStore(db), relay.IngestorOptions{})
	defer in.Close()
	var wg sync.WaitGroup
	var failed, stored atomic.Int64
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := event(tid, fmt.Sprintf("msg:%d", i))
			if i%10 == 0 {
				e.DedupKey = "" // the store refuses this one
			}
			if _, err := in.Append(context.Background(), e); err != nil {
				if i%10 != 0 {
					t.Errorf("good event %d failed: %v", i, err)
				}
				failed.Add(1)
			} else {
				stored.Add(1)
			}
		}()
	}
	wg.Wait()
	if failed.Load() != 10 || stored.Load() != 90 {
		t.Errorf("failed %d, stored %d; want 10 and 90", failed.Load(), stored.Load())
	}
}

// FirstDelay (the retry schedule's first entry) holds an event's first
// delivery attempt back.
func TestIngestorFirstDelay(t *testing.T) {
	db := storetest.New(t)
	tid := mustTenant(t, db)
	in := relay.NewIngestor(store.NewEventStore(db), relay.IngestorOptions{FirstDelay: time.Minute})
	defer in.Close()
	e := event(tid, "msg:1")
	if _, err := in.Append(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	ds := store.NewDeliveryStore(db)
	claim := func(at time.Time) int {
		jobs, err := ds.ClaimDue(context.Background(), delivery.Claim{Owner: "w", Now: at, LeaseUntil: at.Add(time.Minute), Limit: 10, PerTenant: 10})
		if err != nil {
			t.Fatal(err)
		}
		return len(jobs)
	}
	if n := claim(e.ReceiveTime.Add(59 * time.Second)); n != 0 {
		t.Errorf("claimed %d events before the first delay was over", n)
	}
	if n := claim(e.ReceiveTime.Add(61 * time.Second)); n != 1 {
		t.Errorf("claimed %d events after the first delay, want 1", n)
	}
}
