package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
)

// TestRecoveryStore: a recovery queues again exactly the tenant's failed
// events received since its time, in bounded steps that say their
// progress, and finishes; another tenant's events are not touched.
func TestRecoveryStore(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		es, rs := store.NewEventStore(db), store.NewRecoveryStore(db)
		a, b := mustCreateTenant(t, db, "tn_recovera"), mustCreateTenant(t, db, "tn_recoverb")
		const n = 4100 // three steps of the scan's 2,000
		for start := 0; start < n; start += 500 {
			var batch []*relay.Event
			for i := start; i < min(start+500, n); i++ {
				batch = append(batch, newEvent(a, fmt.Sprint(i)))
			}
			mustAppend(t, es, batch...)
		}
		mustAppend(t, es, newEvent(b, "b1"))
		now := time.Now().UTC()
		since := now.Add(-time.Hour)
		// Every 10th event failed; the first 1,000 were received before since.
		exec := func(q string, args ...any) {
			t.Helper()
			if _, err := db.Bun().ExecContext(ctx, q, args...); err != nil {
				t.Fatal(err)
			}
		}
		exec(`UPDATE events SET state = 'failed', finished_at = ? WHERE seq % 10 = 0`, now)
		exec(`UPDATE events SET receive_time = ? WHERE tenant_id = ? AND seq IN (SELECT seq FROM events WHERE tenant_id = ? ORDER BY seq LIMIT 1000)`,
			now.Add(-2*time.Hour), string(a), string(a))
		var want int
		if err := db.Bun().NewSelect().Table("events").ColumnExpr("count(*)").Where("tenant_id = ?", string(a)).
			Where("state = 'failed'").Where("receive_time >= ?", since).Scan(ctx, &want); err != nil {
			t.Fatal(err)
		}

		r, err := rs.CreateRecovery(ctx, a, since, "ops", now)
		if err != nil || r.Total != int64(want) || r.Done || r.Recovered != 0 || r.RequestedBy != "ops" {
			t.Fatalf("CreateRecovery = %+v, %v; want %d to recover, running", r, err, want)
		}
		steps, queued := 0, 0
		for {
			q, running, err := rs.StepRecoveries(ctx, now)
			if err != nil {
				t.Fatal(err)
			}
			if !running {
				break
			}
			steps++
			queued += q
			if steps == 1 {
				mid, _ := rs.Recovery(ctx, a, r.ID)
				if mid.Done || mid.Recovered == 0 || mid.Recovered >= mid.Total {
					t.Errorf("after one step: %+v, want some recovered, running", mid)
				}
			}
			if steps > 10 {
				t.Fatal("the recovery does not finish")
			}
		}
		got, err := rs.Recovery(ctx, a, r.ID)
		if err != nil || !got.Done || got.Recovered != int64(want) || queued != want || steps != 3 || got.FinishTime.IsZero() {
			t.Errorf("after %d steps: %+v, %v, queued %d; want done with %d recovered in 3 steps", steps, got, err, queued, want)
		}
		var pending, stillFailed, old int
		db.Bun().NewSelect().Table("events").ColumnExpr("count(*)").Where("tenant_id = ?", string(a)).Where("state = 'pending'").Where("seq % 10 = 0").Scan(ctx, &pending)
		db.Bun().NewSelect().Table("events").ColumnExpr("count(*)").Where("state = 'failed'").Where("receive_time >= ?", since).Scan(ctx, &stillFailed)
		db.Bun().NewSelect().Table("events").ColumnExpr("count(*)").Where("tenant_id = ?", string(a)).Where("state = 'failed'").Where("receive_time < ?", since).Scan(ctx, &old)
		if pending != want || old != 100 {
			t.Errorf("%d of tenant a's failed events pending again, %d older ones still failed; want %d and 100", pending, old, want)
		}
		if stillFailed != 0 && stillFailed != 1 { // tenant b's one event may be a 10th
			t.Errorf("%d events since the time still failed", stillFailed)
		}

		list, err := rs.Recoveries(ctx, a, 10)
		if err != nil || len(list) != 1 || list[0].ID != r.ID {
			t.Errorf("Recoveries = %+v, %v", list, err)
		}
		if _, err := rs.Recovery(ctx, b, r.ID); !errors.Is(err, relay.ErrNotFound) {
			t.Errorf("another tenant's recovery: %v, want ErrNotFound", err)
		}
		// Nothing failed since: done at once.
		none, err := rs.CreateRecovery(ctx, b, now.Add(time.Minute), "ops", now)
		if err != nil || !none.Done || none.Total != 0 {
			t.Errorf("a recovery of nothing: %+v, %v; want done at once", none, err)
		}
	})
}
