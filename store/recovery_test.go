package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
	"github.com/wxrelay/wxrelay/tenant"
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
		appendMany(t, es, a, n)
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

// TestRecoveriesTakeTurns: a tenant has one recovery running at a time,
// also when replicas ask at once, and the running recoveries of all
// tenants take a step each in turn: a long one does not make a short one
// of another tenant wait until it ends.
func TestRecoveriesTakeTurns(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		es, rs := store.NewEventStore(db), store.NewRecoveryStore(db)
		long, short, raced := mustCreateTenant(t, db, "tn_turnlong"), mustCreateTenant(t, db, "tn_turnshort"), mustCreateTenant(t, db, "tn_turnraced")
		appendMany(t, es, long, 4100) // three steps of the scan's 2,000
		mustAppend(t, es, newEvent(short, "s1"), newEvent(short, "s2"), newEvent(raced, "r1"))
		now := time.Now().UTC()
		if _, err := db.Bun().ExecContext(ctx, `UPDATE events SET state = 'failed', finished_at = ?`, now); err != nil {
			t.Fatal(err)
		}
		since := now.Add(-time.Hour)

		first, err := rs.CreateRecovery(ctx, long, since, "ops", now)
		if err != nil {
			t.Fatal(err)
		}
		_, err = rs.CreateRecovery(ctx, long, since, "ops", now)
		if running, ok := errors.AsType[*relay.RecoveryRunningError](err); !ok || running.Running.ID != first.ID || !errors.Is(err, tenant.ErrConflict) {
			t.Fatalf("a second recovery while one runs: %v; want a RecoveryRunningError naming %s", err, first.ID)
		}
		second, err := rs.CreateRecovery(ctx, short, since, "ops", now.Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		// Long's first step, then short's only one, then long's others.
		var order []string
		for step := 1; step <= 10; step++ {
			_, running, err := rs.StepRecoveries(ctx, now.Add(time.Duration(step)*time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			if !running {
				break
			}
			l, _ := rs.Recovery(ctx, long, first.ID)
			s, _ := rs.Recovery(ctx, short, second.ID)
			order = append(order, fmt.Sprintf("long %d/%d short %d/%d", l.Recovered, l.Total, s.Recovered, s.Total))
		}
		want := []string{"long 2000/4100 short 0/2", "long 2000/4100 short 2/2", "long 4000/4100 short 2/2", "long 4100/4100 short 2/2"}
		if fmt.Sprint(order) != fmt.Sprint(want) {
			t.Errorf("progress step by step:\n%s\nwant\n%s", strings.Join(order, "\n"), strings.Join(want, "\n"))
		}
		if _, err := rs.CreateRecovery(ctx, long, since, "ops", now.Add(time.Hour)); err != nil {
			t.Errorf("a recovery after the last one finished: %v", err)
		}

		// Replicas asking at once: one recovery starts, the others are told.
		var wg sync.WaitGroup
		var mu sync.Mutex
		started, refused := 0, 0
		for range 8 {
			wg.Go(func() {
				_, err := rs.CreateRecovery(ctx, raced, since, "ops", now)
				mu.Lock()
				defer mu.Unlock()
				if _, ok := errors.AsType[*relay.RecoveryRunningError](err); ok {
					refused++
				} else if err == nil {
					started++
				} else {
					t.Errorf("CreateRecovery at once: %v", err)
				}
			})
		}
		wg.Wait()
		if started != 1 || refused != 7 {
			t.Errorf("8 recoveries asked at once: %d started, %d refused as running; want 1 and 7", started, refused)
		}
	})
}

// TestMigrate_RecoveriesTakeTurns: the migration that allows one running
// recovery per tenant keeps the oldest of those that ran side by side
// before it, and ends the others with their progress.
func TestMigrate_RecoveriesTakeTurns(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		a, b := mustCreateTenant(t, db, "tn_migratea"), mustCreateTenant(t, db, "tn_migrateb")
		m, turns := migrationNamed(t, db, "recoveries_take_turns")
		if err := turns.Down(ctx, m, turns); err != nil {
			t.Fatalf("down: %v", err)
		}
		t0 := time.Now().UTC().Truncate(time.Second)
		for _, r := range []struct {
			id  string
			tid tenant.ID
			at  time.Duration
		}{{"rcv_a_second", a, time.Minute}, {"rcv_a_first", a, 0}, {"rcv_a_third", a, 2 * time.Minute}, {"rcv_b_only", b, 3 * time.Minute}} {
			if _, err := db.Bun().ExecContext(ctx, `INSERT INTO recoveries (id, tenant_id, since, requested_by, state, total, recovered, create_time)
				VALUES (?, ?, ?, 'ops', 'running', 5, 1, ?)`, r.id, string(r.tid), t0, t0.Add(r.at)); err != nil {
				t.Fatal(err)
			}
		}
		if err := turns.Up(ctx, m, turns); err != nil {
			t.Fatalf("up: %v", err)
		}
		rs := store.NewRecoveryStore(db)
		for id, wantDone := range map[string]bool{"rcv_a_first": false, "rcv_a_second": true, "rcv_a_third": true, "rcv_b_only": false} {
			tid := a
			if id == "rcv_b_only" {
				tid = b
			}
			r, err := rs.Recovery(ctx, tid, id)
			if err != nil || r.Done != wantDone || r.Recovered != 1 {
				t.Errorf("after the migration %s = %+v, %v; want done %v, its progress kept", id, r, err, wantDone)
			}
		}
		// And the first goes on, stepped in its turn.
		if _, running, err := rs.StepRecoveries(ctx, time.Now()); err != nil || !running {
			t.Errorf("stepping after the migration: running %v, %v", running, err)
		}
	})
}

// appendMany stores n events of tid, in batches of 500.
func appendMany(t *testing.T, es *store.EventStore, tid tenant.ID, n int) {
	t.Helper()
	for start := 0; start < n; start += 500 {
		var batch []*relay.Event
		for i := start; i < min(start+500, n); i++ {
			batch = append(batch, newEvent(tid, fmt.Sprint(i)))
		}
		mustAppend(t, es, batch...)
	}
}
