package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/uptrace/bun/dialect"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/relay/delivery"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
	"github.com/wxrelay/wxrelay/tenant"
)

// t0 is the delivery tests' "now": events fall due around it.
var t0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

// mustCreateOrderedTenant is mustCreateTenant for a tenant with ordered
// delivery.
func mustCreateOrderedTenant(tb testing.TB, db *store.DB, id string) tenant.ID {
	tb.Helper()
	tn := newTenant(id, fmt.Sprintf("wx%016x", 0xe000000000000000+appids.Add(1)))
	tn.OrderedDelivery = true
	if err := store.NewTenantStore(db).Create(context.Background(), tn); err != nil {
		tb.Fatalf("create tenant %s: %v", id, err)
	}
	return tn.ID
}

// dueEvent returns an event of tid from openid, created at the second of at
// and received, so due, at at.
func dueEvent(tid tenant.ID, key, openid string, at time.Time) *relay.Event {
	e := newEvent(tid, key)
	e.OpenID = openid
	e.CreateTime = at.Truncate(time.Second)
	e.ReceiveTime = at
	return e
}

// claimAt asks for up to 64 events due at now, leased for a minute.
func claimAt(owner string, now time.Time) delivery.Claim {
	return delivery.Claim{Owner: owner, Now: now, LeaseUntil: now.Add(time.Minute), Limit: 64, PerTenant: 64}
}

func mustClaim(tb testing.TB, ds *store.DeliveryStore, c delivery.Claim) []*delivery.Job {
	tb.Helper()
	jobs, err := ds.ClaimDue(context.Background(), c)
	if err != nil {
		tb.Fatalf("ClaimDue(%+v): %v", c, err)
	}
	return jobs
}

// mustClaimOne claims at now and expects exactly the event e.
func mustClaimOne(tb testing.TB, ds *store.DeliveryStore, owner string, now time.Time, e *relay.Event) *delivery.Job {
	tb.Helper()
	jobs := mustClaim(tb, ds, claimAt(owner, now))
	if got, want := jobIDs(jobs), []relay.EventID{e.ID}; !slices.Equal(got, want) {
		tb.Fatalf("ClaimDue(%s at %v) = %v, want %v", owner, now, got, want)
	}
	return jobs[0]
}

func mustRecord(tb testing.TB, ds *store.DeliveryStore, outcomes ...delivery.Outcome) {
	tb.Helper()
	if err := ds.Record(context.Background(), outcomes); err != nil {
		tb.Fatalf("Record: %v", err)
	}
}

func jobIDs(jobs []*delivery.Job) []relay.EventID {
	ids := make([]relay.EventID, len(jobs))
	for i, j := range jobs {
		ids[i] = j.EventID
	}
	return ids
}

func eventIDs(events ...*relay.Event) []relay.EventID {
	ids := make([]relay.EventID, len(events))
	for i, e := range events {
		ids[i] = e.ID
	}
	return ids
}

// delivered is a successful attempt at job made at at by owner.
func delivered(job *delivery.Job, owner string, at time.Time) delivery.Outcome {
	return delivery.Outcome{
		Job:   job,
		Owner: owner,
		State: relay.StateDelivered,
		Attempt: relay.Attempt{Time: at, HTTPStatus: 200, Latency: 120 * time.Millisecond, ResponseBody: []byte("ok"),
			ResponseHeaders: "Content-Type: text/plain; charset=utf-8\nX-Request-Id: 42\n"},
	}
}

// retried is a failed attempt at job made at at, to be retried at next, at
// position index of the schedule.
func retried(job *delivery.Job, owner string, at, next time.Time, index int) delivery.Outcome {
	return delivery.Outcome{
		Job:           job,
		Owner:         owner,
		State:         relay.StatePending,
		NextAttemptAt: next,
		RetryIndex:    index,
		Attempt: relay.Attempt{
			Time: at, HTTPStatus: 503, Latency: 2 * time.Second,
			ErrorClass: relay.ErrorHTTPStatus, Error: "503 Service Unavailable", ResponseBody: []byte("busy"),
			ResponseHeaders: "Content-Type: text/plain\nRetry-After: 30\n",
		},
	}
}

// failed is a last attempt at job made at at, after which the schedule ran out.
func failed(job *delivery.Job, owner string, at time.Time) delivery.Outcome {
	return delivery.Outcome{
		Job:     job,
		Owner:   owner,
		State:   relay.StateFailed,
		Attempt: relay.Attempt{Time: at, Latency: 10 * time.Second, ErrorClass: relay.ErrorTimeout, Error: "no answer within 10s"},
	}
}

// deliveryRow holds the delivery columns of an event, read behind the
// store's back.
type deliveryRow struct {
	State          string     `bun:"state"`
	AttemptCount   int        `bun:"attempt_count"`
	RetryIndex     int        `bun:"retry_index"`
	NextAttemptAt  time.Time  `bun:"next_attempt_at"`
	FinishedAt     *time.Time `bun:"finished_at"`
	LeaseOwner     *string    `bun:"lease_owner"`
	LeaseExpiresAt *time.Time `bun:"lease_expires_at"`
}

func mustDeliveryRow(tb testing.TB, db *store.DB, id relay.EventID) deliveryRow {
	tb.Helper()
	var r deliveryRow
	err := db.Bun().NewSelect().Table("events").
		Column("state", "attempt_count", "retry_index", "next_attempt_at", "finished_at", "lease_owner", "lease_expires_at").
		Where("id = ?", string(id)).
		Scan(context.Background(), &r)
	if err != nil {
		tb.Fatalf("read delivery columns of %s: %v", id, err)
	}
	return r
}

// String shows times in UTC and pointers by what they point to.
func (r deliveryRow) String() string {
	tm := func(t *time.Time) string {
		if t == nil {
			return "NULL"
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	owner := "NULL"
	if r.LeaseOwner != nil {
		owner = *r.LeaseOwner
	}
	return fmt.Sprintf("{state %s, attempts %d, retry index %d, next %s, finished %s, lease %s until %s}",
		r.State, r.AttemptCount, r.RetryIndex, tm(&r.NextAttemptAt), tm(r.FinishedAt), owner, tm(r.LeaseExpiresAt))
}

// assertDeliveryRow compares the delivery columns of event id with want;
// times compare as instants.
func assertDeliveryRow(t *testing.T, db *store.DB, id relay.EventID, want deliveryRow) {
	t.Helper()
	got := mustDeliveryRow(t, db, id)
	eqTime := func(a, b *time.Time) bool {
		return (a == nil) == (b == nil) && (a == nil || a.Equal(*b))
	}
	eqStr := func(a, b *string) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
	if got.State != want.State || got.AttemptCount != want.AttemptCount || got.RetryIndex != want.RetryIndex ||
		!got.NextAttemptAt.Equal(want.NextAttemptAt) || !eqTime(got.FinishedAt, want.FinishedAt) ||
		!eqStr(got.LeaseOwner, want.LeaseOwner) || !eqTime(got.LeaseExpiresAt, want.LeaseExpiresAt) {
		t.Errorf("event %s:\n got %v\nwant %v", id, got, want)
	}
}

func ptr[T any](v T) *T { return &v }

func countAttempts(tb testing.TB, db *store.DB, ids ...relay.EventID) int {
	tb.Helper()
	n, err := db.Bun().NewSelect().Table("attempts").
		Where("event_id IN (?)", bun.List(ids)).
		Count(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return int(n)
}

// countBodies counts the rows of event_bodies, and of those the ones whose
// event is gone.
func countBodies(tb testing.TB, db *store.DB) (all, orphans int) {
	tb.Helper()
	ctx := context.Background()
	n, err := db.Bun().NewSelect().Table("event_bodies").Count(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	o, err := db.Bun().NewSelect().Table("event_bodies").Where("seq NOT IN (SELECT seq FROM events)").Count(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	return int(n), int(o)
}

func TestDeliveryStore_ClaimDue(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		es, ds := store.NewEventStore(db), store.NewDeliveryStore(db)
		tid := mustCreateTenant(t, db, "tn_a")
		early, late := dueEvent(tid, "1", "oA", t0), dueEvent(tid, "2", "oB", t0.Add(time.Minute))
		mustAppend(t, es, late, early) // stored out of due order

		if jobs := mustClaim(t, ds, claimAt("w1", t0.Add(-time.Microsecond))); len(jobs) != 0 {
			t.Errorf("ClaimDue before anything is due = %v, want nothing", jobIDs(jobs))
		}

		// Due at its next attempt time, not only after it.
		job := mustClaimOne(t, ds, "w1", t0, early)
		want := &delivery.Job{
			EventID:     early.ID,
			TenantID:    tid,
			Payload:     early.Payload,
			ReceiveTime: t0,
			LeaseUntil:  t0.Add(time.Minute),
			DueAt:       t0,
		}
		if !reflect.DeepEqual(job, want) {
			t.Errorf("job =\n%+v\nwant\n%+v", job, want)
		}
		assertDeliveryRow(t, db, early.ID, deliveryRow{
			State: "pending", NextAttemptAt: t0, LeaseOwner: ptr("w1"), LeaseExpiresAt: ptr(t0.Add(time.Minute)),
		})

		// A lease holds until it ends: at t0+1m, early's lease ends but has
		// not run out, and only late is due and free.
		mustClaimOne(t, ds, "w2", t0.Add(time.Minute), late)

		// Once early's lease has run out, another worker takes it over;
		// late's lease, taken at t0+1m, still holds.
		job = mustClaimOne(t, ds, "w3", t0.Add(time.Minute+time.Microsecond), early)
		if got, want := job.LeaseUntil, t0.Add(2*time.Minute+time.Microsecond); !got.Equal(want) {
			t.Errorf("LeaseUntil = %v, want %v", got, want)
		}
		assertDeliveryRow(t, db, early.ID, deliveryRow{
			State: "pending", NextAttemptAt: t0, LeaseOwner: ptr("w3"), LeaseExpiresAt: ptr(t0.Add(2*time.Minute + time.Microsecond)),
		})

		// Both leases run out: oldest due first.
		jobs := mustClaim(t, ds, claimAt("w4", t0.Add(time.Hour)))
		if got, want := jobIDs(jobs), eventIDs(early, late); !slices.Equal(got, want) {
			t.Errorf("ClaimDue after the leases ran out = %v, want %v", got, want)
		}
	})
}

// TestDeliveryStore_ClaimForms runs the claim tests on SQLite with each
// form of a claim's step 2 (see store/delivery.go): a query per tenant
// whatever the tenants, and one query for all whatever the tenants. The
// tests run as they are with the default, where both forms occur.
func TestDeliveryStore_ClaimForms(t *testing.T) {
	tests := map[string]func(*testing.T){
		"ClaimDue": TestDeliveryStore_ClaimDue, "ClaimExclude": TestDeliveryStore_ClaimExclude,
		"ClaimFair": TestDeliveryStore_ClaimFair, "ClaimOrdered": TestDeliveryStore_ClaimOrdered,
		"ClaimConcurrently": TestDeliveryStore_ClaimConcurrently, "OrderedToggle": TestDeliveryStore_OrderedToggle,
	}
	for form, max := range map[string]int{"per tenant": math.MaxInt, "one query": 0} {
		t.Run(form, func(t *testing.T) {
			defer store.SetClaimPerTenantMax(max)()
			for name, test := range tests {
				t.Run(name, test)
			}
		})
	}
}

func TestDeliveryStore_ClaimInvalid(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ds := store.NewDeliveryStore(db)
		for _, tt := range []struct {
			name   string
			mutate func(c *delivery.Claim)
		}{
			{"no owner", func(c *delivery.Claim) { c.Owner = "" }},
			{"no time", func(c *delivery.Claim) { c.Now = time.Time{} }},
			{"lease ends now", func(c *delivery.Claim) { c.LeaseUntil = c.Now }},
			{"no limit", func(c *delivery.Claim) { c.Limit = 0 }},
			{"no per-tenant limit", func(c *delivery.Claim) { c.PerTenant = 0 }},
		} {
			t.Run(tt.name, func(t *testing.T) {
				c := claimAt("w1", t0)
				tt.mutate(&c)
				if _, err := ds.ClaimDue(context.Background(), c); !errors.Is(err, relay.ErrInvalid) {
					t.Errorf("ClaimDue(%+v) error = %v, want %v", c, err, relay.ErrInvalid)
				}
			})
		}
	})
}

func TestDeliveryStore_ClaimExclude(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		es, ds := store.NewEventStore(db), store.NewDeliveryStore(db)
		ta, tb := mustCreateTenant(t, db, "tn_a"), mustCreateTenant(t, db, "tn_b")
		ea, eb := dueEvent(ta, "1", "o1", t0), dueEvent(tb, "1", "o1", t0)
		mustAppend(t, es, ea, eb)

		for _, tt := range []struct {
			name    string
			exclude []tenant.ID
			want    []relay.EventID
		}{
			{"both", []tenant.ID{ta, tb}, nil},
			{"one", []tenant.ID{ta}, eventIDs(eb)},
			// eb is leased now.
			{"an unknown tenant", []tenant.ID{"tn_nobody"}, eventIDs(ea)},
		} {
			t.Run(tt.name, func(t *testing.T) {
				c := claimAt("w1", t0)
				c.Exclude = tt.exclude
				if got := jobIDs(mustClaim(t, ds, c)); !slices.Equal(got, tt.want) {
					t.Errorf("ClaimDue(excluding %v) = %v, want %v", tt.exclude, got, tt.want)
				}
			})
		}
	})
}

// TestDeliveryStore_ClaimFair checks the per-tenant cap: a tenant with a
// large backlog takes no more than its share of a claim, however much older
// its events are.
func TestDeliveryStore_ClaimFair(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		es, ds := store.NewEventStore(db), store.NewDeliveryStore(db)
		ta, tb, tc := mustCreateTenant(t, db, "tn_a"), mustCreateTenant(t, db, "tn_b"), mustCreateTenant(t, db, "tn_c")

		const backlog = 10_000
		var as []*relay.Event
		for i := range backlog {
			as = append(as, dueEvent(ta, fmt.Sprint(i), fmt.Sprint("o", i%100), t0.Add(time.Duration(i)*time.Millisecond)))
		}
		for start := 0; start < backlog; start += 1000 {
			mustAppend(t, es, as[start:start+1000]...)
		}
		var bs []*relay.Event
		for i := range 10 {
			bs = append(bs, dueEvent(tb, fmt.Sprint(i), "o1", t0.Add(time.Hour+time.Duration(i)*time.Second)))
		}
		mustAppend(t, es, bs...)
		// tc's event is due after the claims: it never shows.
		mustAppend(t, es, dueEvent(tc, "1", "o1", t0.Add(3*time.Hour)))
		now := t0.Add(2 * time.Hour)

		// The limit cuts the oldest first: all of a's share, then b's.
		c := delivery.Claim{Owner: "w1", Now: now, LeaseUntil: now.Add(time.Minute), Limit: 12, PerTenant: 8}
		want := append(eventIDs(as[:8]...), eventIDs(bs[:4]...)...)
		if got := jobIDs(mustClaim(t, ds, c)); !slices.Equal(got, want) {
			t.Errorf("ClaimDue(limit 12, 8 per tenant) =\n%v\nwant\n%v", got, want)
		}

		// The case the cap is for: b's 6 remaining events are not crowded
		// out by a's thousands of older ones.
		c.Owner, c.Limit = "w2", 64
		want = append(eventIDs(as[8:16]...), eventIDs(bs[4:]...)...)
		if got := jobIDs(mustClaim(t, ds, c)); !slices.Equal(got, want) {
			t.Errorf("ClaimDue(limit 64, 8 per tenant) =\n%v\nwant\n%v", got, want)
		}

		// A cap larger than the limit leaves the limit to cut.
		c.Owner, c.PerTenant = "w3", 100
		want = eventIDs(as[16:80]...)
		if got := jobIDs(mustClaim(t, ds, c)); !slices.Equal(got, want) {
			t.Errorf("ClaimDue(limit 64, 100 per tenant) =\n%v\nwant\n%v", got, want)
		}
	})
}

// TestDeliveryStore_ClaimOrdered checks ordered delivery: a later event of
// an openid waits while an earlier one is pending, leased or not.
func TestDeliveryStore_ClaimOrdered(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		es, ds := store.NewEventStore(db), store.NewDeliveryStore(db)
		ordered, plain := mustCreateOrderedTenant(t, db, "tn_ordered"), mustCreateTenant(t, db, "tn_plain")

		// For each tenant: three events of u1, stored newest first so that
		// store order and creation order disagree; one of u2; and two of
		// u3 created in the same second, where store order decides.
		type events struct {
			u1           [3]*relay.Event
			u2, u3a, u3b *relay.Event
		}
		mk := func(tid tenant.ID) events {
			var ev events
			for i := range ev.u1 {
				ev.u1[i] = dueEvent(tid, fmt.Sprint("u1-", i), "u1", t0.Add(time.Duration(i)*time.Second))
			}
			ev.u2 = dueEvent(tid, "u2", "u2", t0.Add(time.Second))
			ev.u3a = dueEvent(tid, "u3a", "u3", t0.Add(2*time.Second))
			ev.u3b = dueEvent(tid, "u3b", "u3", t0.Add(2*time.Second))
			mustAppend(t, es, ev.u1[2], ev.u1[1], ev.u1[0], ev.u2, ev.u3a)
			mustAppend(t, es, ev.u3b)
			return ev
		}
		o, p := mk(ordered), mk(plain)
		now := t0.Add(time.Minute)
		// Leases of an hour: they run out only where the test says so.
		claimAt := func(owner string, now time.Time) delivery.Claim {
			c := claimAt(owner, now)
			c.LeaseUntil = now.Add(time.Hour)
			return c
		}
		mustClaimOne := func(owner string, now time.Time, e *relay.Event) *delivery.Job {
			t.Helper()
			jobs := mustClaim(t, ds, claimAt(owner, now))
			if got, want := jobIDs(jobs), eventIDs(e); !slices.Equal(got, want) {
				t.Fatalf("ClaimDue(%s at %v) = %v, want %v", owner, now, got, want)
			}
			return jobs[0]
		}
		owned := func(tid tenant.ID, jobs []*delivery.Job) []relay.EventID {
			var ids []relay.EventID
			for _, j := range jobs {
				if j.TenantID == tid {
					ids = append(ids, j.EventID)
				}
			}
			slices.Sort(ids)
			return ids
		}
		sorted := func(ids ...relay.EventID) []relay.EventID { slices.Sort(ids); return ids }

		jobs := mustClaim(t, ds, claimAt("w1", now))
		if got, want := owned(ordered, jobs), sorted(o.u1[0].ID, o.u2.ID, o.u3a.ID); !slices.Equal(got, want) {
			t.Errorf("ordered tenant: first claim = %v, want the first event of each openid %v", got, want)
		}
		if got, want := owned(plain, jobs), sorted(p.u1[0].ID, p.u1[1].ID, p.u1[2].ID, p.u2.ID, p.u3a.ID, p.u3b.ID); !slices.Equal(got, want) {
			t.Errorf("tenant without ordering: first claim = %v, want all %v", got, want)
		}
		byID := map[relay.EventID]*delivery.Job{}
		var plainDone []delivery.Outcome
		for _, j := range jobs {
			byID[j.EventID] = j
			if j.TenantID == plain {
				plainDone = append(plainDone, delivered(j, "w1", now))
			}
		}
		mustRecord(t, ds, plainDone...)

		// The first events are leased and pending: the later ones wait.
		if jobs := mustClaim(t, ds, claimAt("w2", now)); len(jobs) != 0 {
			t.Errorf("claim while the first events are leased = %v, want nothing", jobIDs(jobs))
		}

		// A retry keeps u1's first event pending, and the others waiting.
		mustRecord(t, ds, retried(byID[o.u1[0].ID], "w1", now, now.Add(5*time.Minute), 1))
		if jobs := mustClaim(t, ds, claimAt("w2", now.Add(time.Minute))); len(jobs) != 0 {
			t.Errorf("claim while u1's first event waits for its retry = %v, want nothing", jobIDs(jobs))
		}
		job := mustClaimOne("w2", now.Add(5*time.Minute), o.u1[0])

		// Delivered: the next one comes up; a failure also lets the next go.
		mustRecord(t, ds, delivered(job, "w2", now.Add(5*time.Minute)), delivered(byID[o.u3a.ID], "w1", now))
		jobs = mustClaim(t, ds, claimAt("w3", now.Add(6*time.Minute)))
		if got, want := jobIDs(jobs), eventIDs(o.u1[1], o.u3b); !slices.Equal(got, want) {
			t.Fatalf("claim after u1's and u3's first were delivered = %v, want %v", got, want)
		}
		mustRecord(t, ds, failed(jobs[0], "w3", now.Add(6*time.Minute)), delivered(jobs[1], "w3", now.Add(6*time.Minute)))
		mustClaimOne("w4", now.Add(7*time.Minute), o.u1[2])

		// A redelivered early event holds up the later ones again.
		mustRecord(t, ds, delivered(byID[o.u2.ID], "w1", now))
		u2b := dueEvent(ordered, "u2b", "u2", t0.Add(time.Hour))
		mustAppend(t, es, u2b)
		if err := ds.Redeliver(context.Background(), ordered, o.u2.ID, t0.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		mustClaimOne("w5", t0.Add(90*time.Minute), o.u1[2]) // w4's lease ran out; u2b waits
		jobs = mustClaim(t, ds, claimAt("w6", t0.Add(2*time.Hour)))
		if got, want := jobIDs(jobs), eventIDs(o.u2); !slices.Equal(got, want) {
			t.Errorf("claim after u2's first event was redelivered = %v, want only it, %v", got, want)
		}
	})
}

func TestDeliveryStore_RecordDelivered(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		es, ds, ctx := store.NewEventStore(db), store.NewDeliveryStore(db), context.Background()
		tid := mustCreateTenant(t, db, "tn_a")
		e := dueEvent(tid, "1", "o1", t0)
		mustAppend(t, es, e)

		job := mustClaimOne(t, ds, "w1", t0, e)
		at := t0.Add(1500 * time.Millisecond)
		mustRecord(t, ds, delivered(job, "w1", at))

		assertDeliveryRow(t, db, e.ID, deliveryRow{State: "delivered", AttemptCount: 1, NextAttemptAt: t0, FinishedAt: &at})
		got := mustFindEvent(t, es, tid, e.ID)
		if got.State != relay.StateDelivered || got.AttemptCount != 1 {
			t.Errorf("FindEvent() state %v, %d attempts; want delivered, 1", got.State, got.AttemptCount)
		}
		attempts, err := es.FindAttempts(ctx, tid, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		if want := []relay.Attempt{delivered(job, "w1", at).Attempt}; !reflect.DeepEqual(attempts, want) {
			t.Errorf("FindAttempts() =\n%+v\nwant\n%+v", attempts, want)
		}
		if jobs := mustClaim(t, ds, claimAt("w2", t0.Add(time.Hour))); len(jobs) != 0 {
			t.Errorf("a delivered event was claimed again: %v", jobIDs(jobs))
		}
	})
}

func TestDeliveryStore_RecordRetryAndFail(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		es, ds := store.NewEventStore(db), store.NewDeliveryStore(db)
		tid := mustCreateTenant(t, db, "tn_a")
		e := dueEvent(tid, "1", "o1", t0)
		mustAppend(t, es, e)

		job := mustClaimOne(t, ds, "w1", t0, e)
		next := t0.Add(5 * time.Second)
		mustRecord(t, ds, retried(job, "w1", t0, next, 1))
		assertDeliveryRow(t, db, e.ID, deliveryRow{State: "pending", AttemptCount: 1, RetryIndex: 1, NextAttemptAt: next})

		if jobs := mustClaim(t, ds, claimAt("w2", next.Add(-time.Microsecond))); len(jobs) != 0 {
			t.Errorf("claimed before its retry was due: %v", jobIDs(jobs))
		}
		job = mustClaimOne(t, ds, "w2", next, e)
		if job.AttemptCount != 1 || job.RetryIndex != 1 {
			t.Errorf("retry job has %d attempts at retry index %d, want 1 at 1", job.AttemptCount, job.RetryIndex)
		}

		at := next.Add(10 * time.Second)
		mustRecord(t, ds, failed(job, "w2", at))
		assertDeliveryRow(t, db, e.ID, deliveryRow{State: "failed", AttemptCount: 2, NextAttemptAt: next, FinishedAt: &at})
		if jobs := mustClaim(t, ds, claimAt("w3", t0.Add(time.Hour))); len(jobs) != 0 {
			t.Errorf("a failed event was claimed again: %v", jobIDs(jobs))
		}
		if got := countAttempts(t, db, e.ID); got != 2 {
			t.Errorf("%d attempts stored, want 2", got)
		}
	})
}

// TestDeliveryStore_RecordLostLease checks that a worker whose lease was
// lost records its attempt but leaves the event to whoever holds it now.
func TestDeliveryStore_RecordLostLease(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		es, ds, ctx := store.NewEventStore(db), store.NewDeliveryStore(db), context.Background()
		tid := mustCreateTenant(t, db, "tn_a")

		t.Run("lease ran out and was taken over", func(t *testing.T) {
			e := dueEvent(tid, "1", "o1", t0)
			mustAppend(t, es, e)
			slow := mustClaimOne(t, ds, "w1", t0, e)
			later := t0.Add(2 * time.Minute)
			fresh := mustClaimOne(t, ds, "w2", later, e)

			mustRecord(t, ds, retried(slow, "w1", later, later.Add(time.Hour), 1))
			taken := deliveryRow{State: "pending", NextAttemptAt: t0, LeaseOwner: ptr("w2"), LeaseExpiresAt: ptr(later.Add(time.Minute))}
			assertDeliveryRow(t, db, e.ID, taken)
			if got := countAttempts(t, db, e.ID); got != 1 {
				t.Errorf("%d attempts stored, want the lost lease's 1", got)
			}

			mustRecord(t, ds, delivered(fresh, "w2", later.Add(time.Second)))
			assertDeliveryRow(t, db, e.ID, deliveryRow{State: "delivered", AttemptCount: 1, NextAttemptAt: t0, FinishedAt: ptr(later.Add(time.Second))})
			attempts, err := es.FindAttempts(ctx, tid, e.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(attempts) != 2 || attempts[0].HTTPStatus != 503 || attempts[1].HTTPStatus != 200 {
				t.Errorf("FindAttempts() = %+v, want the lost 503 and then the 200", attempts)
			}
		})

		t.Run("redelivered during the attempt", func(t *testing.T) {
			e := dueEvent(tid, "2", "o2", t0.Add(time.Hour))
			mustAppend(t, es, e)
			job := mustClaimOne(t, ds, "w1", t0.Add(time.Hour), e)
			redelivered := t0.Add(time.Hour + time.Second)
			if err := ds.Redeliver(ctx, tid, e.ID, redelivered); err != nil {
				t.Fatal(err)
			}
			mustRecord(t, ds, failed(job, "w1", redelivered.Add(time.Second)))
			assertDeliveryRow(t, db, e.ID, deliveryRow{State: "pending", NextAttemptAt: redelivered})
			if got := countAttempts(t, db, e.ID); got != 1 {
				t.Errorf("%d attempts stored, want 1", got)
			}
			// Out of the next subtest's way.
			job = mustClaimOne(t, ds, "w2", redelivered, e)
			mustRecord(t, ds, delivered(job, "w2", redelivered))
		})

		t.Run("same event twice in a batch", func(t *testing.T) {
			e := dueEvent(tid, "3", "o3", t0.Add(2*time.Hour))
			mustAppend(t, es, e)
			job := mustClaimOne(t, ds, "w1", t0.Add(2*time.Hour), e)
			at := t0.Add(2*time.Hour + time.Second)
			// The first ends the lease; the second finds it gone.
			mustRecord(t, ds, delivered(job, "w1", at), failed(job, "w1", at.Add(time.Second)))
			assertDeliveryRow(t, db, e.ID, deliveryRow{State: "delivered", AttemptCount: 1, NextAttemptAt: e.ReceiveTime, FinishedAt: &at})
			if got := countAttempts(t, db, e.ID); got != 2 {
				t.Errorf("%d attempts stored, want 2", got)
			}
		})
	})
}

// TestDeliveryStore_RecordDeletedEvent records a batch in which one event's
// tenant was deleted while it was being attempted.
func TestDeliveryStore_RecordDeletedEvent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		es, ds, ctx := store.NewEventStore(db), store.NewDeliveryStore(db), context.Background()
		gone, kept := mustCreateTenant(t, db, "tn_gone"), mustCreateTenant(t, db, "tn_kept")
		eg, ek := dueEvent(gone, "1", "o1", t0), dueEvent(kept, "1", "o1", t0)
		mustAppend(t, es, eg, ek)
		jobs := mustClaim(t, ds, claimAt("w1", t0))
		if len(jobs) != 2 {
			t.Fatalf("ClaimDue() = %v, want both events", jobIDs(jobs))
		}
		if err := deleteAndPurge(ctx, db, gone); err != nil {
			t.Fatal(err)
		}

		var outcomes []delivery.Outcome
		for _, j := range jobs {
			outcomes = append(outcomes, delivered(j, "w1", t0.Add(time.Second)))
		}
		mustRecord(t, ds, outcomes...)
		if got := countAttempts(t, db, eg.ID); got != 0 {
			t.Errorf("%d attempts stored for the deleted event, want none", got)
		}
		assertDeliveryRow(t, db, ek.ID, deliveryRow{State: "delivered", AttemptCount: 1, NextAttemptAt: t0, FinishedAt: ptr(t0.Add(time.Second))})
	})
}

func TestDeliveryStore_RecordInvalid(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		es, ds, ctx := store.NewEventStore(db), store.NewDeliveryStore(db), context.Background()
		tid := mustCreateTenant(t, db, "tn_a")
		e := dueEvent(tid, "1", "o1", t0)
		mustAppend(t, es, e)
		job := mustClaimOne(t, ds, "w1", t0, e)

		if err := ds.Record(ctx, nil); err != nil {
			t.Errorf("Record(no outcomes) = %v, want nil", err)
		}
		for _, tt := range []struct {
			name   string
			mutate func(o *delivery.Outcome)
		}{
			{"no job", func(o *delivery.Outcome) { o.Job = nil }},
			{"no owner", func(o *delivery.Outcome) { o.Owner = "" }},
			{"no attempt time", func(o *delivery.Outcome) { o.Attempt.Time = time.Time{} }},
			{"no state", func(o *delivery.Outcome) { o.State = relay.StateUnspecified }},
			{"pending without a next time", func(o *delivery.Outcome) { o.State = relay.StatePending }},
			{"negative latency", func(o *delivery.Outcome) { o.Attempt.Latency = -time.Second }},
		} {
			t.Run(tt.name, func(t *testing.T) {
				good, bad := delivered(job, "w1", t0), delivered(job, "w1", t0)
				tt.mutate(&bad)
				err := ds.Record(ctx, []delivery.Outcome{good, bad})
				if !errors.Is(err, relay.ErrInvalid) {
					t.Errorf("Record() error = %v, want %v", err, relay.ErrInvalid)
				}
				if got := countAttempts(t, db, e.ID); got != 0 {
					t.Errorf("the valid outcome of a refused batch was stored")
				}
			})
		}
		assertDeliveryRow(t, db, e.ID, deliveryRow{State: "pending", NextAttemptAt: t0, LeaseOwner: ptr("w1"), LeaseExpiresAt: ptr(t0.Add(time.Minute))})
	})
}

func TestDeliveryStore_Release(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		es, ds, ctx := store.NewEventStore(db), store.NewDeliveryStore(db), context.Background()
		tid := mustCreateTenant(t, db, "tn_a")
		e := dueEvent(tid, "1", "o1", t0)
		mustAppend(t, es, e)
		job := mustClaimOne(t, ds, "w1", t0, e)
		leased := deliveryRow{State: "pending", NextAttemptAt: t0, LeaseOwner: ptr("w1"), LeaseExpiresAt: ptr(t0.Add(time.Minute))}

		// Not the owner's: nothing happens.
		if err := ds.Release(ctx, delivery.Release{Job: job, Owner: "w2", NextAttemptAt: t0}); err != nil {
			t.Fatal(err)
		}
		assertDeliveryRow(t, db, e.ID, leased)

		next := t0.Add(30 * time.Second)
		if err := ds.Release(ctx, delivery.Release{Job: job, Owner: "w1", NextAttemptAt: next}); err != nil {
			t.Fatal(err)
		}
		assertDeliveryRow(t, db, e.ID, deliveryRow{State: "pending", NextAttemptAt: next})
		if jobs := mustClaim(t, ds, claimAt("w2", next.Add(-time.Microsecond))); len(jobs) != 0 {
			t.Errorf("claimed before the time it was released to: %v", jobIDs(jobs))
		}
		job = mustClaimOne(t, ds, "w2", next, e)
		if job.AttemptCount != 0 || job.RetryIndex != 0 {
			t.Errorf("released job has %d attempts at retry index %d, want a release to count as no attempt", job.AttemptCount, job.RetryIndex)
		}

		// A lease lost to another worker cannot be released by the first.
		taken := mustClaimOne(t, ds, "w3", next.Add(2*time.Minute), e)
		if err := ds.Release(ctx, delivery.Release{Job: job, Owner: "w2", NextAttemptAt: t0.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		assertDeliveryRow(t, db, e.ID, deliveryRow{State: "pending", NextAttemptAt: next, LeaseOwner: ptr("w3"), LeaseExpiresAt: ptr(taken.LeaseUntil)})

		for _, r := range []delivery.Release{{Owner: "w3", NextAttemptAt: t0}, {Job: job, NextAttemptAt: t0}, {Job: job, Owner: "w3"}} {
			if err := ds.Release(ctx, r); !errors.Is(err, relay.ErrInvalid) {
				t.Errorf("Release(%+v) error = %v, want %v", r, err, relay.ErrInvalid)
			}
		}
	})
}

func TestDeliveryStore_Redeliver(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		es, ds, ctx := store.NewEventStore(db), store.NewDeliveryStore(db), context.Background()
		ta, tb := mustCreateTenant(t, db, "tn_a"), mustCreateTenant(t, db, "tn_b")
		e := dueEvent(ta, "1", "o1", t0)
		mustAppend(t, es, e)

		// Two attempts, the second the schedule's last.
		job := mustClaimOne(t, ds, "w1", t0, e)
		mustRecord(t, ds, retried(job, "w1", t0, t0.Add(time.Minute), 1))
		job = mustClaimOne(t, ds, "w1", t0.Add(time.Minute), e)
		mustRecord(t, ds, failed(job, "w1", t0.Add(time.Minute)))

		now := t0.Add(time.Hour)
		for _, tt := range []struct {
			name string
			tid  tenant.ID
			id   relay.EventID
		}{
			{"another tenant's event", tb, e.ID},
			{"unknown event", ta, "evt_00000000000000000000000000"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				if err := ds.Redeliver(ctx, tt.tid, tt.id, now); !errors.Is(err, relay.ErrNotFound) {
					t.Errorf("Redeliver(%s, %s) error = %v, want %v", tt.tid, tt.id, err, relay.ErrNotFound)
				}
			})
		}
		assertDeliveryRow(t, db, e.ID, deliveryRow{State: "failed", AttemptCount: 2, NextAttemptAt: t0.Add(time.Minute), FinishedAt: ptr(t0.Add(time.Minute))})

		if err := ds.Redeliver(ctx, ta, e.ID, now); err != nil {
			t.Fatalf("Redeliver: %v", err)
		}
		// At the start of the schedule; the attempts made before still count.
		assertDeliveryRow(t, db, e.ID, deliveryRow{State: "pending", AttemptCount: 2, NextAttemptAt: now})
		job = mustClaimOne(t, ds, "w2", now, e)
		if job.AttemptCount != 2 || job.RetryIndex != 0 {
			t.Errorf("redelivered job has %d attempts at retry index %d, want 2 at 0", job.AttemptCount, job.RetryIndex)
		}
		if !bytes.Equal(job.Payload, e.Payload) {
			t.Errorf("redelivered payload = %q, want the original %q", job.Payload, e.Payload)
		}
		if err := ds.Redeliver(ctx, ta, e.ID, time.Time{}); !errors.Is(err, relay.ErrInvalid) {
			t.Errorf("Redeliver(no time) error = %v, want %v", err, relay.ErrInvalid)
		}
	})
}

func TestDeliveryStore_PruneEvents(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		es, ds, ctx := store.NewEventStore(db), store.NewDeliveryStore(db), context.Background()
		tid, other := mustCreateTenant(t, db, "tn_a"), mustCreateTenant(t, db, "tn_other")
		day := 24 * time.Hour
		cutoff := t0.Add(-day)

		// Events of tid finish at their due time, in due order, each one
		// claimed and recorded alone.
		finish := func(key string, at time.Time, outcome func(*delivery.Job, string, time.Time) delivery.Outcome) *relay.Event {
			e := dueEvent(tid, key, "o1", at)
			mustAppend(t, es, e)
			c := claimAt("setup", at)
			c.Exclude = []tenant.ID{other}
			jobs := mustClaim(t, ds, c)
			if got, want := jobIDs(jobs), eventIDs(e); !slices.Equal(got, want) {
				t.Fatalf("setup claim = %v, want %v", got, want)
			}
			mustRecord(t, ds, outcome(jobs[0], "setup", at))
			return e
		}
		oldFailed := finish("f", t0.Add(-3*day-time.Second), failed)
		d1 := finish("d1", t0.Add(-3*day), delivered)
		d2 := finish("d2", t0.Add(-2*day), delivered)
		d3 := finish("d3", t0.Add(-day-time.Microsecond), delivered)
		atCutoff := finish("d4", cutoff, delivered) // not before the cutoff
		recent := finish("r", t0.Add(-time.Hour), delivered)

		// Pending events, however old, are never pruned, nor their attempts.
		pendingOld := dueEvent(other, "p", "o1", t0.Add(-10*day))
		retrying := dueEvent(other, "q", "o2", t0.Add(-9*day))
		mustAppend(t, es, pendingOld, retrying)
		c := claimAt("setup", t0.Add(-9*day))
		c.Exclude, c.Limit = []tenant.ID{tid}, 2
		jobs := mustClaim(t, ds, c)
		if len(jobs) != 2 {
			t.Fatalf("setup claim = %v, want 2 events", jobIDs(jobs))
		}
		if err := ds.Release(ctx, delivery.Release{Job: jobs[0], Owner: "setup", NextAttemptAt: t0.Add(day)}); err != nil {
			t.Fatal(err)
		}
		mustRecord(t, ds, retried(jobs[1], "setup", t0.Add(-9*day), t0.Add(day), 3))

		prune := func(state relay.State, limit, want int) {
			t.Helper()
			n, err := ds.PruneEvents(ctx, state, cutoff, limit)
			if err != nil {
				t.Fatalf("PruneEvents(%v, limit %d): %v", state, limit, err)
			}
			if n != want {
				t.Errorf("PruneEvents(%v, limit %d) = %d, want %d", state, limit, n, want)
			}
		}
		prune(relay.StateDelivered, 2, 2) // the oldest two
		for _, e := range []*relay.Event{d1, d2} {
			if _, err := es.FindEvent(ctx, tid, e.ID); !errors.Is(err, relay.ErrNotFound) {
				t.Errorf("event %s after pruning: error = %v, want %v", e.DedupKey, err, relay.ErrNotFound)
			}
		}
		mustFindEvent(t, es, tid, d3.ID)
		prune(relay.StateDelivered, 2, 1)
		prune(relay.StateDelivered, 2, 0)
		prune(relay.StateFailed, 100, 1)
		prune(relay.StateFailed, 100, 0)

		if got := countAttempts(t, db, oldFailed.ID, d1.ID, d2.ID, d3.ID); got != 0 {
			t.Errorf("%d attempts of pruned events remain, want none", got)
		}
		// The bodies go with their events: 4 kept, none left behind.
		if all, orphans := countBodies(t, db); all != 4 || orphans != 0 {
			t.Errorf("%d event bodies, %d of them of pruned events; want 4 and 0", all, orphans)
		}
		for _, e := range []*relay.Event{atCutoff, recent, pendingOld, retrying} {
			mustFindEvent(t, es, e.TenantID, e.ID)
		}
		if got := countAttempts(t, db, atCutoff.ID, recent.ID, retrying.ID); got != 3 {
			t.Errorf("%d attempts of kept events remain, want 3", got)
		}

		for _, tt := range []struct {
			state relay.State
			limit int
		}{{relay.StatePending, 10}, {relay.StateUnspecified, 10}, {relay.StateDelivered, 0}} {
			if _, err := ds.PruneEvents(ctx, tt.state, t0, tt.limit); !errors.Is(err, relay.ErrInvalid) {
				t.Errorf("PruneEvents(%v, limit %d) error = %v, want %v", tt.state, tt.limit, err, relay.ErrInvalid)
			}
		}
	})
}

func TestDeliveryStore_Stats(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		es, ds, ctx := store.NewEventStore(db), store.NewDeliveryStore(db), context.Background()
		stats := func() delivery.Stats {
			t.Helper()
			st, err := ds.Stats(ctx)
			if err != nil {
				t.Fatalf("Stats: %v", err)
			}
			return st
		}
		if got := stats(); got != (delivery.Stats{}) {
			t.Errorf("Stats() of an empty store = %+v, want zero", got)
		}

		ta, tb := mustCreateTenant(t, db, "tn_a"), mustCreateTenant(t, db, "tn_b")
		oldest := dueEvent(tb, "1", "o1", t0.Add(-time.Hour))
		mustAppend(t, es, dueEvent(ta, "1", "o1", t0), oldest, dueEvent(ta, "2", "o1", t0.Add(time.Hour)))
		// Leased events are pending still.
		jobs := mustClaim(t, ds, claimAt("w1", t0.Add(2*time.Hour)))
		if got := stats(); got.Pending != 3 || !got.OldestPending.Equal(oldest.ReceiveTime) || got.OldestPending.Location() != time.UTC {
			t.Errorf("Stats() = %+v, want 3 pending, the oldest received at %v (UTC)", got, oldest.ReceiveTime)
		}
		mustRecord(t, ds, delivered(jobs[0], "w1", t0.Add(2*time.Hour)), failed(jobs[1], "w1", t0.Add(2*time.Hour)))
		if got, want := stats(), (delivery.Stats{Pending: 1, OldestPending: t0.Add(time.Hour)}); got.Pending != want.Pending || !got.OldestPending.Equal(want.OldestPending) {
			t.Errorf("Stats() = %+v, want %+v", got, want)
		}
	})
}

func TestEventStore_FindAttempts(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		es, ds, ctx := store.NewEventStore(db), store.NewDeliveryStore(db), context.Background()
		ta, tb := mustCreateTenant(t, db, "tn_a"), mustCreateTenant(t, db, "tn_b")
		e, quiet := dueEvent(ta, "1", "o1", t0), dueEvent(ta, "2", "o1", t0.Add(time.Hour))
		mustAppend(t, es, e, quiet)

		long := bytes.Repeat([]byte("0123456789abcdef"), 300) // 4800 bytes: cut to 4 KiB
		var want []relay.Attempt
		for i, tt := range []struct {
			latency time.Duration
			body    []byte
		}{
			{1234567 * time.Microsecond, []byte("\x00\xff not UTF-8")},
			{499 * time.Microsecond, long},
			{0, nil},
		} {
			at := t0.Add(time.Duration(i) * time.Minute)
			job := mustClaimOne(t, ds, "w1", at, e)
			o := retried(job, "w1", at.Add(time.Second), at.Add(time.Minute), i+1)
			o.Attempt.Latency, o.Attempt.ResponseBody = tt.latency, tt.body
			o.Attempt.HTTPStatus = 500 + i
			mustRecord(t, ds, o)
			a := o.Attempt
			a.Latency = a.Latency.Round(time.Millisecond) // stored in milliseconds
			a.ResponseBody = bytes.Clone(a.ResponseBody[:min(len(a.ResponseBody), 4096)])
			if a.ResponseBody == nil {
				a.ResponseBody = []byte{}
			}
			want = append(want, a)
		}

		got, err := es.FindAttempts(ctx, ta, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("FindAttempts() =\n%+v\nwant, oldest first,\n%+v", got, want)
		}
		for _, a := range got {
			if a.Time.Location() != time.UTC {
				t.Errorf("attempt time %v is not in UTC", a.Time)
			}
		}

		if got, err := es.FindAttempts(ctx, ta, quiet.ID); err != nil || len(got) != 0 {
			t.Errorf("FindAttempts(event not attempted yet) = %v, %v; want none, no error", got, err)
		}
		for _, tt := range []struct {
			name string
			tid  tenant.ID
			id   relay.EventID
		}{
			{"another tenant's event", tb, e.ID},
			{"another tenant's unattempted event", tb, quiet.ID},
			{"unknown event", ta, "evt_00000000000000000000000000"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				if got, err := es.FindAttempts(ctx, tt.tid, tt.id); !errors.Is(err, relay.ErrNotFound) {
					t.Errorf("FindAttempts(%s, %s) = %v, %v; want %v", tt.tid, tt.id, got, err, relay.ErrNotFound)
				}
			})
		}
	})
}

// TestDeliveryStore_ClaimConcurrently has workers claim from one backlog at
// once, as the worker pools of several replicas do: every event must be
// claimed exactly once. On PostgreSQL this is where SKIP LOCKED and the
// UPDATE's re-check earn their keep.
func TestDeliveryStore_ClaimConcurrently(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		es, ds := store.NewEventStore(db), store.NewDeliveryStore(db)
		const tenants, perTenant, workers = 5, 100, 8
		var all []*relay.Event
		for i := range tenants {
			tid := mustCreateTenant(t, db, fmt.Sprint("tn_", i))
			var evs []*relay.Event
			for j := range perTenant {
				evs = append(evs, dueEvent(tid, fmt.Sprint(j), fmt.Sprint("o", j), t0.Add(time.Duration(j)*time.Millisecond)))
			}
			mustAppend(t, es, evs...)
			all = append(all, evs...)
		}

		var mu sync.Mutex
		claimedBy := map[relay.EventID][]string{}
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			owner := fmt.Sprint("w", w)
			wg.Go(func() {
				for {
					// Leases outlast the test: nothing may be claimed twice.
					c := delivery.Claim{Owner: owner, Now: t0.Add(time.Second), LeaseUntil: t0.Add(time.Hour), Limit: 16, PerTenant: 4}
					jobs, err := ds.ClaimDue(context.Background(), c)
					if err != nil {
						errs <- err
						return
					}
					if len(jobs) == 0 {
						return
					}
					mu.Lock()
					for _, j := range jobs {
						claimedBy[j.EventID] = append(claimedBy[j.EventID], owner)
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("ClaimDue: %v", err)
		}

		for _, e := range all {
			if owners := claimedBy[e.ID]; len(owners) != 1 {
				t.Errorf("event %s of %s claimed by %v, want exactly one worker", e.DedupKey, e.TenantID, owners)
			}
		}
		if got, want := len(claimedBy), len(all); got != want {
			t.Errorf("%d events claimed, want %d", got, want)
		}
		if jobs := mustClaim(t, ds, claimAt("late", t0.Add(time.Second))); len(jobs) != 0 {
			t.Errorf("%d events left to claim after the workers stopped, want none", len(jobs))
		}
	})
}

// TestDeliveryStore_ClaimOrderedConcurrently has workers claim and deliver
// an ordered tenant's events at once: the events of an openid must still go
// one at a time, in order.
func TestDeliveryStore_ClaimOrderedConcurrently(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		es, ds := store.NewEventStore(db), store.NewDeliveryStore(db)
		tid := mustCreateOrderedTenant(t, db, "tn_ordered")
		const openids, perOpenID, workers = 20, 5, 8
		prev := map[relay.EventID]relay.EventID{} // an event → the one before it of its openid
		var all []*relay.Event
		for i := range openids {
			for j := range perOpenID {
				// All due at once, and stored an openid at a time: without
				// ordering, a claim would take several events of an openid.
				e := dueEvent(tid, fmt.Sprint(i, "-", j), fmt.Sprint("o", i), t0)
				e.CreateTime = t0.Add(time.Duration(j) * time.Second)
				if j > 0 {
					prev[e.ID] = all[len(all)-1].ID
				}
				all = append(all, e)
			}
		}
		mustAppend(t, es, all...)

		var mu sync.Mutex
		recording := map[relay.EventID]bool{} // Record was called for it
		claimed := map[relay.EventID]int{}
		var wg sync.WaitGroup
		var errs []error
		report := func(err error) {
			mu.Lock()
			defer mu.Unlock()
			errs = append(errs, err)
		}
		for w := range workers {
			owner := fmt.Sprint("w", w)
			wg.Go(func() {
				for idle := 0; idle < 20; {
					c := delivery.Claim{Owner: owner, Now: t0.Add(time.Minute), LeaseUntil: t0.Add(time.Hour), Limit: 4, PerTenant: 4}
					jobs, err := ds.ClaimDue(context.Background(), c)
					if err != nil {
						report(err)
						return
					}
					if len(jobs) == 0 {
						// The next events may be waiting for another worker
						// to record their predecessors.
						idle++
						time.Sleep(time.Millisecond)
						continue
					}
					idle = 0
					var outcomes []delivery.Outcome
					mu.Lock()
					for _, j := range jobs {
						claimed[j.EventID]++
						// Its predecessor's Record had to commit before this
						// claim could see it delivered, so it was called.
						if p, ok := prev[j.EventID]; ok && !recording[p] {
							errs = append(errs, fmt.Errorf("event %s claimed while the one before it, %s, was not yet recorded", j.EventID, p))
						}
						outcomes = append(outcomes, delivered(j, owner, t0.Add(time.Minute)))
					}
					mu.Unlock()
					time.Sleep(time.Millisecond) // the attempt: the others claim meanwhile
					mu.Lock()
					for _, j := range jobs {
						recording[j.EventID] = true
					}
					mu.Unlock()
					if err := ds.Record(context.Background(), outcomes); err != nil {
						report(err)
						return
					}
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			t.Error(err)
		}
		for _, e := range all {
			if n := claimed[e.ID]; n != 1 {
				t.Errorf("event %s claimed %d times, want once", e.DedupKey, n)
			}
		}
	})
}

// TestDeliveryStore_IndexUse checks on SQLite that the delivery queries, as
// the store sends them, search indexes rather than scan tables.
func TestDeliveryStore_IndexUse(t *testing.T) {
	db := storetest.New(t)
	es, ds, ctx := store.NewEventStore(db), store.NewDeliveryStore(db), context.Background()
	ordered, plain := mustCreateOrderedTenant(t, db, "tn_ordered"), mustCreateTenant(t, db, "tn_plain")
	mustAppend(t, es, dueEvent(ordered, "1", "o1", t0), dueEvent(ordered, "2", "o1", t0), dueEvent(plain, "1", "o1", t0))

	hook := &queryLog{}
	db.AddQueryHook(hook)
	c := claimAt("w1", t0)
	c.Exclude = []tenant.ID{"tn_nobody"}
	jobs := mustClaim(t, ds, c)
	mustRecord(t, ds, delivered(jobs[0], "w1", t0), retried(jobs[1], "w1", t0, t0.Add(time.Minute), 1))
	if err := ds.Release(ctx, delivery.Release{Job: jobs[1], Owner: "w1", NextAttemptAt: t0}); err != nil {
		t.Fatal(err)
	}
	if err := ds.Redeliver(ctx, jobs[0].TenantID, jobs[0].EventID, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := ds.PruneEvents(ctx, relay.StateDelivered, t0, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := ds.Stats(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := es.FindAttempts(ctx, jobs[0].TenantID, jobs[0].EventID); err != nil {
		t.Fatal(err)
	}
	queries := hook.queries
	queries = append(queries,
		// What ON DELETE CASCADE runs for each pruned event.
		"DELETE FROM attempts WHERE event_id = 'evt_x'",
	)
	// The claim and Record's statements, prepared, which bun does not see.
	queries = append(queries, store.SQLiteDeliveryStatements...)

	// A table scan shows as "SCAN <table or alias>" without an index; the
	// recursive CTE pt and constant rows are meant to be scanned.
	tableScan := regexp.MustCompile(`^SCAN (events|tenants|attempts|[a-z])( |$)`)
	// By the longest prefix of the query that is listed.
	wantIndex := map[string]string{
		"WITH":                          "events_tenant_due", // the claim's tenants
		"SELECT e.seq":                  "events_tenant_due", // a tenant's due events
		"SELECT x.seq":                  "events_tenant_due", // the due events of many tenants
		"UPDATE events SET lease_owner": "INTEGER PRIMARY KEY",
		"DELETE FROM attempts":          "attempts_event",
		"UPDATE events SET":             "(id=?)",
		"INSERT INTO attempts":          "(id=?)",
	}
	seen := 0
	for _, q := range queries {
		if (strings.HasPrefix(q, "INSERT") && !strings.Contains(q, "SELECT")) || strings.HasPrefix(q, "BEGIN") || strings.HasPrefix(q, "COMMIT") {
			continue
		}
		seen++
		plan := explainSQLite(t, db, q)
		for _, line := range plan {
			if tableScan.MatchString(line) && !strings.Contains(line, "USING") {
				t.Errorf("query\n%s\nscans a table: %s\nplan: %s", q, line, strings.Join(plan, "; "))
			}
		}
		longest := ""
		for prefix := range wantIndex {
			if strings.HasPrefix(q, prefix) && len(prefix) > len(longest) {
				longest = prefix
			}
		}
		if index := wantIndex[longest]; longest != "" && !strings.Contains(strings.Join(plan, "; "), index) {
			t.Errorf("query\n%s\ndoes not use %s: %s", q, index, strings.Join(plan, "; "))
		}
		if strings.Contains(q, "DELETE FROM \"events\"") && !strings.Contains(strings.Join(plan, "; "), "events_finished") {
			t.Errorf("pruning does not use events_finished: %s", strings.Join(plan, "; "))
		}
		if strings.Contains(q, "pending") && strings.Contains(q, "openid") && !strings.Contains(strings.Join(plan, "; "), "events_pending_openid") {
			t.Errorf("the claim's ordering check does not use events_pending_openid: %s", strings.Join(plan, "; "))
		}
	}
	if seen < 8 {
		t.Errorf("checked %d queries, want every delivery query: %q", seen, queries)
	}
}

// queryLog records the SQL that bun sends.
type queryLog struct {
	mu      sync.Mutex
	queries []string
}

func (l *queryLog) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

func (l *queryLog) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.queries = append(l.queries, e.Query)
}

// explainSQLite returns the lines of SQLite's plan for query.
func explainSQLite(t *testing.T, db *store.DB, query string) []string {
	t.Helper()
	// Prepared statements' parameters, unbound: NULL, which plans alike.
	n := 0
	for _, m := range regexp.MustCompile(`\?([0-9]*)`).FindAllStringSubmatch(query, -1) {
		if k, err := strconv.Atoi(m[1]); err == nil {
			n = max(n, k) // ?NNN
		} else {
			n++
		}
	}
	args := make([]any, n)
	rows, err := db.Bun().DB.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatalf("EXPLAIN QUERY PLAN %s: %v", query, err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan
}

// BenchmarkDeliveryStore_ClaimRecord measures the store's ceiling for
// delivery on SQLite: claims of 64 events from a backlog of 10,000 (of one
// tenant, of 16, or of 1,000 with 10 each), each batch then recorded as
// delivered in one transaction. The webhook calls cost nothing here; what
// remains is the database.
func BenchmarkDeliveryStore_ClaimRecord(b *testing.B) {
	for _, tt := range []struct {
		tenants, perTenant int
	}{{1, 64}, {16, 8}, {1000, 16}} {
		b.Run(fmt.Sprintf("tenants=%d", tt.tenants), func(b *testing.B) {
			db := storetest.New(b)
			es, ds, ctx := store.NewEventStore(db), store.NewDeliveryStore(db), context.Background()
			var tids []tenant.ID
			for i := range tt.tenants {
				tids = append(tids, mustCreateTenant(b, db, fmt.Sprint("tn_", i)))
			}
			payload := bytes.Repeat([]byte("x"), 600) // a typical push
			const backlog = 10_000
			n, batches := 0, 0
			refill := func() {
				var evs []*relay.Event
				for i := range backlog {
					e := dueEvent(tids[i%len(tids)], fmt.Sprint(n+i), fmt.Sprint("o", i%1000), t0)
					e.Raw, e.Payload = payload, payload
					evs = append(evs, e)
				}
				for start := 0; start < backlog; start += 500 {
					mustAppend(b, es, evs[start:start+500]...)
				}
			}
			refill()
			delivered := 0
			for b.Loop() {
				c := delivery.Claim{Owner: "bench", Now: t0.Add(time.Minute), LeaseUntil: t0.Add(time.Hour), Limit: 64, PerTenant: tt.perTenant}
				jobs, err := ds.ClaimDue(ctx, c)
				if err != nil {
					b.Fatal(err)
				}
				if len(jobs) == 0 {
					b.StopTimer()
					n += backlog
					refill()
					b.StartTimer()
					continue
				}
				outcomes := make([]delivery.Outcome, len(jobs))
				for i, j := range jobs {
					outcomes[i] = delivery.Outcome{
						Job: j, Owner: "bench", State: relay.StateDelivered,
						Attempt: relay.Attempt{Time: t0.Add(time.Minute), HTTPStatus: 200, Latency: 30 * time.Millisecond, ResponseBody: []byte("ok")},
					}
				}
				if err := ds.Record(ctx, outcomes); err != nil {
					b.Fatal(err)
				}
				delivered += len(jobs)
				batches++
			}
			b.ReportMetric(float64(delivered)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(delivered)/float64(max(batches, 1)), "events/claim")
		})
	}
}

// TestDeliveryStore_OrderedToggle checks that turning ordered delivery on
// or off applies to the events stored before: each event carries the
// setting for the index of the ordering check.
func TestDeliveryStore_OrderedToggle(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		es, ds, ts, ctx := store.NewEventStore(db), store.NewDeliveryStore(db), store.NewTenantStore(db), context.Background()
		tid := mustCreateTenant(t, db, "tn_toggle")
		first, second := dueEvent(tid, "1", "o1", t0), dueEvent(tid, "2", "o1", t0.Add(time.Second))
		mustAppend(t, es, first, second)
		setOrdered := func(on bool) {
			t.Helper()
			tn, err := ts.FindByID(ctx, tid)
			if err != nil {
				t.Fatal(err)
			}
			tn.OrderedDelivery = on
			if err := ts.Update(ctx, tn); err != nil {
				t.Fatal(err)
			}
		}
		setOrdered(true)
		now := t0.Add(time.Minute)
		mustClaimOne(t, ds, "w1", now, first) // second waits for first
		setOrdered(false)
		mustClaimOne(t, ds, "w2", now, second)
		// Stored while ordered: waits again once ordered.
		setOrdered(true)
		third := dueEvent(tid, "3", "o2", t0)
		fourth := dueEvent(tid, "4", "o2", t0.Add(time.Second))
		mustAppend(t, es, third, fourth)
		mustClaimOne(t, ds, "w3", now, third)
	})
}

// TestDeliveryStore_ClaimSkipsDisabledTenants: a disabled tenant's due
// events are not claimed, in either form of the claim on SQLite (a query
// per tenant, one for many) nor on PostgreSQL, and are once it is enabled.
func TestDeliveryStore_ClaimSkipsDisabledTenants(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		es, ds, ts := store.NewEventStore(db), store.NewDeliveryStore(db), store.NewTenantStore(db)
		var ids []tenant.ID
		for i := range 5 { // more than claimPerTenantMax: the one-query form too
			tid := mustCreateTenant(t, db, fmt.Sprintf("tn_%d", i))
			ids = append(ids, tid)
			mustAppend(t, es, dueEvent(tid, "k1", "o1", t0), dueEvent(tid, "k2", "o2", t0))
		}
		setState := func(tid tenant.ID, st tenant.State) {
			tn, err := ts.FindByID(ctx, tid)
			if err != nil {
				t.Fatal(err)
			}
			tn.State = st
			if err := ts.Update(ctx, tn); err != nil {
				t.Fatal(err)
			}
		}
		setState(ids[0], tenant.StateDisabled)
		setState(ids[3], tenant.StateDisabled)
		jobs := mustClaim(t, ds, claimAt("w1", t0))
		for _, j := range jobs {
			if j.TenantID == ids[0] || j.TenantID == ids[3] {
				t.Errorf("claimed %s of disabled tenant %s", j.EventID, j.TenantID)
			}
		}
		if len(jobs) != 6 {
			t.Errorf("claimed %d events, want the 6 of the 3 active tenants", len(jobs))
		}
		setState(ids[0], tenant.StateActive)
		if jobs := mustClaim(t, ds, claimAt("w2", t0)); len(jobs) != 2 || jobs[0].TenantID != ids[0] {
			t.Errorf("after enabling %s: claimed %v, want its 2 events", ids[0], jobIDs(jobs))
		}
	})
}

// TestDeliveryStore_ClaimWalksABoundedWindow: with more tenants pending
// than a PostgreSQL claim looks at, each claim takes a window of them, and
// successive claims go round them all: every due event is claimed within
// one round, and a claim whose window has nothing due (tenants whose
// events wait out a backoff) looks at the next window rather than report
// nothing due.
func TestDeliveryStore_ClaimWalksABoundedWindow(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		const walk, tenants = 4, 60
		defer store.SetWalkTenants(walk)()
		es, ds := store.NewEventStore(db), store.NewDeliveryStore(db)
		due := map[tenant.ID]bool{}
		for i := range tenants {
			tid := mustCreateTenant(t, db, fmt.Sprintf("tn_w%02d", i))
			at := t0
			if i < tenants/2 {
				at = t0.Add(time.Hour) // the first half waits
			} else {
				due[tid] = true
			}
			mustAppend(t, es, dueEvent(tid, "k1", "o1", at))
		}
		claimed := map[tenant.ID]bool{}
		claims := 0
		for ; len(claimed) < len(due) && claims < 100; claims++ {
			jobs := mustClaim(t, ds, claimAt(fmt.Sprintf("w%d", claims), t0))
			if db.Bun().Dialect().Name() == dialect.PG && len(jobs) > walk {
				t.Fatalf("a claim took %d events, more than its window of %d tenants", len(jobs), walk)
			}
			for _, j := range jobs {
				if !due[j.TenantID] {
					t.Fatalf("claimed %s of %s, not due", j.EventID, j.TenantID)
				}
				claimed[j.TenantID] = true
			}
		}
		if len(claimed) < len(due) {
			t.Errorf("%d of %d due events claimed after %d claims", len(claimed), len(due), claims)
		}
		if round := (len(due)+walk-1)/walk + 1; claims > round {
			t.Errorf("the due events took %d claims, want at most %d: a claim whose window has nothing due looks at the next", claims, round)
		}
	})
}

// TestTenantStore_OrderedToggleTouchesPendingOnly: turning ordered
// delivery on rewrites the tenant's pending events, not its history (which
// held every other tenant's pushes behind it), and an event redelivered
// afterwards is ordered as the tenant is then.
func TestTenantStore_OrderedToggleTouchesPendingOnly(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		es, ds, ts := store.NewEventStore(db), store.NewDeliveryStore(db), store.NewTenantStore(db)
		tid := mustCreateTenant(t, db, "tn_a")
		done, pending := dueEvent(tid, "k1", "o1", t0), dueEvent(tid, "k2", "o2", t0)
		mustAppend(t, es, done, pending)
		job := mustClaim(t, ds, claimAt("w1", t0))
		var finished *delivery.Job
		for _, j := range job {
			if j.EventID == done.ID {
				finished = j
			}
		}
		if finished == nil {
			t.Fatal("no job for the event to finish")
		}
		if err := ds.Record(ctx, []delivery.Outcome{{Job: finished, Owner: "w1", State: relay.StateDelivered,
			Attempt: relay.Attempt{Time: t0, HTTPStatus: 204}}}); err != nil {
			t.Fatal(err)
		}
		tn, err := ts.FindByID(ctx, tid)
		if err != nil {
			t.Fatal(err)
		}
		tn.OrderedDelivery = true
		if err := ts.Update(ctx, tn); err != nil {
			t.Fatal(err)
		}
		ordered := func(id relay.EventID) bool {
			var o bool
			if err := db.Bun().NewSelect().Table("events").Column("ordered").Where("id = ?", string(id)).Scan(ctx, &o); err != nil {
				t.Fatal(err)
			}
			return o
		}
		if ordered(done.ID) || !ordered(pending.ID) {
			t.Errorf("after the toggle: delivered ordered=%v (want false, untouched), pending ordered=%v (want true)", ordered(done.ID), ordered(pending.ID))
		}
		if err := ds.Redeliver(ctx, tid, done.ID, t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if !ordered(done.ID) {
			t.Error("a redelivered event is not ordered as its tenant now is")
		}
	})
}
