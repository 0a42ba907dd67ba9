package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
	"github.com/wxrelay/wxrelay/tenant"
)

// appids hands out a distinct appid to each tenant a test creates.
var appids atomic.Uint64

// mustCreateTenant stores a complete tenant with id and returns id.
func mustCreateTenant(tb testing.TB, db *store.DB, id string) tenant.ID {
	tb.Helper()
	tn := newTenant(id, fmt.Sprintf("wx%016x", 0xe000000000000000+appids.Add(1)))
	if err := store.NewTenantStore(db).Create(context.Background(), tn); err != nil {
		tb.Fatalf("create tenant %s: %v", id, err)
	}
	return tn.ID
}

// deleteAndPurge deletes tenant id and purges its history at once, as
// the background purge does later.
func deleteAndPurge(ctx context.Context, db *store.DB, id tenant.ID) error {
	s := store.NewTenantStore(db)
	if err := s.Delete(ctx, id); err != nil {
		return err
	}
	_, err := s.PurgeDeleted(ctx)
	return err
}

// newEvent returns an event of tenant tid with dedup key key, received now
// (microseconds, as both engines keep), with a fresh id.
func newEvent(tid tenant.ID, key string) *relay.Event {
	now := time.Now().UTC().Truncate(time.Microsecond)
	id := relay.NewEventID(now)
	return &relay.Event{
		ID:          id,
		TenantID:    tid,
		DedupKey:    key,
		Type:        "message.text",
		OpenID:      "oUser-" + key,
		CreateTime:  now.Truncate(time.Second),
		ReceiveTime: now,
		Raw:         []byte(`{"MsgId":"` + key + `","Content":"hi"}`),
		Payload:     []byte(`{"id":"` + string(id) + `","type":"message.text"}`),
	}
}

func mustAppend(tb testing.TB, s *store.EventStore, events ...*relay.Event) []relay.AppendResult {
	tb.Helper()
	res, err := s.AppendEvents(context.Background(), events)
	if err != nil {
		tb.Fatalf("AppendEvents: %v", err)
	}
	if got, want := len(res), len(events); got != want {
		tb.Fatalf("AppendEvents returned %d results for %d events", got, want)
	}
	return res
}

func mustFindEvent(tb testing.TB, s *store.EventStore, tid tenant.ID, id relay.EventID) *relay.Event {
	tb.Helper()
	e, err := s.FindEvent(context.Background(), tid, id)
	if err != nil {
		tb.Fatalf("FindEvent(%s, %s): %v", tid, id, err)
	}
	return e
}

// countEvents counts the stored events of tid with dedup key key, behind
// the store's back.
func countEvents(tb testing.TB, db *store.DB, tid tenant.ID, key string) int {
	tb.Helper()
	n, err := db.Bun().NewSelect().Table("events").
		Where("tenant_id = ?", string(tid)).Where("dedup_key = ?", key).
		Count(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return int(n)
}

// assertEvent compares events field by field, times as instants in UTC.
func assertEvent(t *testing.T, got, want *relay.Event) {
	t.Helper()
	g, w := *got, *want
	for _, p := range []struct {
		name string
		g, w *time.Time
	}{
		{"CreateTime", &g.CreateTime, &w.CreateTime},
		{"ReceiveTime", &g.ReceiveTime, &w.ReceiveTime},
		{"DueAt", &g.DueAt, &w.DueAt},
	} {
		if !p.g.Equal(*p.w) {
			t.Errorf("event %s: %s = %v, want %v", w.ID, p.name, *p.g, *p.w)
		}
		if p.g.Location() != time.UTC {
			t.Errorf("event %s: %s is in %v, want UTC", w.ID, p.name, p.g.Location())
		}
		*p.g, *p.w = time.Time{}, time.Time{}
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("event %s:\n got %+v\nwant %+v", w.ID, g, w)
	}
}

// stored is what FindEvent returns for a new event appended as e.
func stored(e *relay.Event) *relay.Event {
	s := *e
	s.State, s.AttemptCount = relay.StatePending, 0
	if s.DueAt.IsZero() {
		s.DueAt = s.ReceiveTime // read back, it is when the first attempt is due: at once
	}
	return &s
}

func TestEventStore_AppendNew(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := store.NewEventStore(db)
		tid := mustCreateTenant(t, db, "tn_a")
		e := newEvent(tid, "1001")
		// A caller's State and AttemptCount do not survive: a new event is
		// pending and has not been attempted.
		e.State, e.AttemptCount = relay.StateDelivered, 7

		res := mustAppend(t, s, e)
		if got, want := res[0], (relay.AppendResult{ID: e.ID}); got != want {
			t.Errorf("AppendEvents() = %+v, want %+v", got, want)
		}
		assertEvent(t, mustFindEvent(t, s, tid, e.ID), stored(e))

		// Due at once: the next attempt is at the receive time.
		var due time.Time
		err := db.Bun().NewSelect().Table("events").Column("next_attempt_at").
			Where("id = ?", string(e.ID)).Scan(context.Background(), &due)
		if err != nil {
			t.Fatal(err)
		}
		if !due.Equal(e.ReceiveTime) {
			t.Errorf("next_attempt_at = %v, want the receive time %v", due, e.ReceiveTime)
		}
	})
}

func TestEventStore_AppendEmpty(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		res, err := store.NewEventStore(db).AppendEvents(context.Background(), nil)
		if err != nil || len(res) != 0 {
			t.Errorf("AppendEvents(nil) = %v, %v; want no results, no error", res, err)
		}
	})
}

func TestEventStore_AppendDuplicateAcrossBatches(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := store.NewEventStore(db)
		tid := mustCreateTenant(t, db, "tn_a")
		orig := newEvent(tid, "1001")
		mustAppend(t, s, orig)

		// WeChat's retry: the same push, received again, gets a new id.
		retry := newEvent(tid, "1001")
		fresh := newEvent(tid, "1002")
		res := mustAppend(t, s, retry, fresh)
		want := []relay.AppendResult{{ID: orig.ID, Duplicate: true}, {ID: fresh.ID}}
		if !reflect.DeepEqual(res, want) {
			t.Errorf("AppendEvents(retry, fresh) = %+v, want %+v", res, want)
		}
		if got := countEvents(t, db, tid, "1001"); got != 1 {
			t.Errorf("dedup key 1001 stored %d times, want once", got)
		}
		if _, err := s.FindEvent(context.Background(), tid, retry.ID); !errors.Is(err, relay.ErrNotFound) {
			t.Errorf("FindEvent(retry's own id) error = %v, want %v", err, relay.ErrNotFound)
		}
		assertEvent(t, mustFindEvent(t, s, tid, orig.ID), stored(orig))

		// A batch of nothing but duplicates.
		res = mustAppend(t, s, newEvent(tid, "1002"), newEvent(tid, "1001"))
		want = []relay.AppendResult{{ID: fresh.ID, Duplicate: true}, {ID: orig.ID, Duplicate: true}}
		if !reflect.DeepEqual(res, want) {
			t.Errorf("AppendEvents(two retries) = %+v, want %+v", res, want)
		}
	})
}

func TestEventStore_AppendDuplicateInBatch(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := store.NewEventStore(db)
		tid := mustCreateTenant(t, db, "tn_a")
		old := newEvent(tid, "900")
		mustAppend(t, s, old)

		// WeChat retried while the first push was still queued: both land
		// in one batch, among others.
		a, b, a2, old2, a3 := newEvent(tid, "1001"), newEvent(tid, "1002"), newEvent(tid, "1001"), newEvent(tid, "900"), newEvent(tid, "1001")
		res := mustAppend(t, s, a, b, a2, old2, a3)
		want := []relay.AppendResult{
			{ID: a.ID},
			{ID: b.ID},
			{ID: a.ID, Duplicate: true},
			{ID: old.ID, Duplicate: true},
			{ID: a.ID, Duplicate: true},
		}
		if !reflect.DeepEqual(res, want) {
			t.Errorf("AppendEvents() =\n%+v\nwant\n%+v", res, want)
		}
		for _, key := range []string{"900", "1001", "1002"} {
			if got := countEvents(t, db, tid, key); got != 1 {
				t.Errorf("dedup key %s stored %d times, want once", key, got)
			}
		}

		// The very same event twice: the second is the duplicate.
		c := newEvent(tid, "1003")
		res = mustAppend(t, s, c, c)
		want = []relay.AppendResult{{ID: c.ID}, {ID: c.ID, Duplicate: true}}
		if !reflect.DeepEqual(res, want) {
			t.Errorf("AppendEvents(c, c) = %+v, want %+v", res, want)
		}
	})
}

func TestEventStore_SameKeyOtherTenant(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := store.NewEventStore(db)
		ta, tb := mustCreateTenant(t, db, "tn_a"), mustCreateTenant(t, db, "tn_b")
		// MsgIds are WeChat's per mini-program: two tenants may see the same.
		ea, eb := newEvent(ta, "1001"), newEvent(tb, "1001")
		res := mustAppend(t, s, ea, eb)
		want := []relay.AppendResult{{ID: ea.ID}, {ID: eb.ID}}
		if !reflect.DeepEqual(res, want) {
			t.Errorf("AppendEvents() = %+v, want %+v", res, want)
		}
		ec := newEvent(tb, "1002")
		if res := mustAppend(t, s, ec); res[0] != (relay.AppendResult{ID: ec.ID}) {
			t.Errorf("AppendEvents() = %+v, want %s stored", res, ec.ID)
		}
		assertEvent(t, mustFindEvent(t, s, ta, ea.ID), stored(ea))
		assertEvent(t, mustFindEvent(t, s, tb, eb.ID), stored(eb))
	})
}

func TestEventStore_TenantScope(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := store.NewEventStore(db)
		ctx := context.Background()
		ta, tb := mustCreateTenant(t, db, "tn_a"), mustCreateTenant(t, db, "tn_b")
		ea := newEvent(ta, "1001")
		mustAppend(t, s, ea)

		for _, tt := range []struct {
			name string
			tid  tenant.ID
			id   relay.EventID
		}{
			{"another tenant's event", tb, ea.ID},
			{"unknown tenant", "tn_nobody", ea.ID},
			{"unknown event", ta, "evt_00000000000000000000000000"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				e, err := s.FindEvent(ctx, tt.tid, tt.id)
				if !errors.Is(err, relay.ErrNotFound) {
					t.Errorf("FindEvent(%s, %s) = %v, %v; want %v", tt.tid, tt.id, e, err, relay.ErrNotFound)
				}
			})
		}

		evs, err := s.FindEvents(ctx, tb, relay.EventFilter{PageSize: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 0 {
			t.Errorf("FindEvents(%s) = %d events, want none of %s's", tb, len(evs), ta)
		}
	})
}

func TestEventStore_FindEventsPaging(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := store.NewEventStore(db)
		ctx := context.Background()
		ta, tb := mustCreateTenant(t, db, "tn_a"), mustCreateTenant(t, db, "tn_b")

		// 23 events of ta in batches of various sizes, interleaved with
		// tb's, which must not show.
		var appended []relay.EventID // oldest first
		for n, batch := 0, 1; n < 23; batch++ {
			var evs []*relay.Event
			for range min(batch, 23-n) {
				e := newEvent(ta, fmt.Sprint(n))
				evs = append(evs, e, newEvent(tb, fmt.Sprint(n)))
				appended = append(appended, e.ID)
				n++
			}
			mustAppend(t, s, evs...)
		}

		var got []relay.EventID
		var cursor int64
		for page := 0; ; page++ {
			evs, err := s.FindEvents(ctx, ta, relay.EventFilter{PageSize: 10, Before: cursor})
			if err != nil {
				t.Fatalf("page %d: %v", page, err)
			}
			if len(evs) > 10 {
				t.Fatalf("page %d holds %d events, want at most 10", page, len(evs))
			}
			if len(evs) == 0 {
				break
			}
			for _, e := range evs {
				if cursor > 0 && e.Cursor >= cursor {
					t.Errorf("page %d: cursor %d after %d; want strictly decreasing", page, e.Cursor, cursor)
				}
				if e.TenantID != ta {
					t.Errorf("page %d: event %s of tenant %s", page, e.ID, e.TenantID)
				}
				cursor = e.Cursor
				got = append(got, e.ID)
			}
		}
		want := make([]relay.EventID, len(appended))
		for i, id := range appended {
			want[len(want)-1-i] = id
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("pages hold\n%v\nwant, newest first, each once,\n%v", got, want)
		}

		// A page size that is not positive means the default.
		evs, err := s.FindEvents(ctx, ta, relay.EventFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(evs), 23; got != want {
			t.Errorf("FindEvents(no page size) = %d events, want all %d", got, want)
		}
	})
}

func TestEventStore_TenantDeleteCascades(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s, ctx := store.NewEventStore(db), context.Background()
		gone, kept := mustCreateTenant(t, db, "tn_gone"), mustCreateTenant(t, db, "tn_kept")
		eg, ek := newEvent(gone, "1001"), newEvent(kept, "1001")
		mustAppend(t, s, eg, ek, newEvent(gone, "1002"))

		if err := deleteAndPurge(ctx, db, gone); err != nil {
			t.Fatal(err)
		}
		n, err := db.Bun().NewSelect().Table("events").Where("tenant_id = ?", string(gone)).Count(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%d events of the deleted tenant remain, want none", n)
		}
		mustFindEvent(t, s, kept, ek.ID)

		// Events of a tenant that is gone fail the whole batch, storing
		// nothing of it.
		late := newEvent(kept, "1002")
		_, err = s.AppendEvents(ctx, []*relay.Event{late, newEvent(gone, "1003")})
		if !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("AppendEvents(event of a deleted tenant) error = %v, want %v", err, tenant.ErrNotFound)
		}
		if _, err := s.FindEvent(ctx, kept, late.ID); !errors.Is(err, relay.ErrNotFound) {
			t.Errorf("an event of a failed batch was stored: FindEvent error = %v, want %v", err, relay.ErrNotFound)
		}
	})
}

func TestEventStore_AppendInvalid(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s, ctx := store.NewEventStore(db), context.Background()
		tid := mustCreateTenant(t, db, "tn_a")
		for _, tt := range []struct {
			name   string
			mutate func(e *relay.Event)
		}{
			{"no id", func(e *relay.Event) { e.ID = "" }},
			{"no tenant", func(e *relay.Event) { e.TenantID = "" }},
			{"no dedup key", func(e *relay.Event) { e.DedupKey = "" }},
			{"no receive time", func(e *relay.Event) { e.ReceiveTime = time.Time{} }},
		} {
			t.Run(tt.name, func(t *testing.T) {
				good, bad := newEvent(tid, "ok-"+tt.name), newEvent(tid, "bad")
				tt.mutate(bad)
				_, err := s.AppendEvents(ctx, []*relay.Event{good, bad})
				if !errors.Is(err, relay.ErrInvalid) {
					t.Errorf("AppendEvents() error = %v, want %v", err, relay.ErrInvalid)
				}
				if got := countEvents(t, db, tid, good.DedupKey); got != 0 {
					t.Errorf("the valid event of a refused batch was stored")
				}
			})
		}
		if _, err := s.AppendEvents(ctx, []*relay.Event{nil}); !errors.Is(err, relay.ErrInvalid) {
			t.Errorf("AppendEvents(nil event) error = %v, want %v", err, relay.ErrInvalid)
		}
	})
}

// TestEventStore_Bytes checks that bodies come back byte for byte, whatever
// they hold: XML, ciphertext, bytes that are not UTF-8, NULs.
func TestEventStore_Bytes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s, ctx := store.NewEventStore(db), context.Background()
		tid := mustCreateTenant(t, db, "tn_a")
		all := make([]byte, 256)
		for i := range all {
			all[i] = byte(i)
		}
		for i, tt := range []struct {
			name         string
			raw, payload []byte
		}{
			{"every byte value", all, bytes.Repeat(all, 3)},
			{"invalid UTF-8", []byte("\xff\xfe\xc3\x28<xml>\x00</xml>\xa0\xa1"), []byte("{\"k\":\"\xed\xa0\x80\"}")},
			{"UTF-8", []byte("<xml><Content><![CDATA[你好 🎉]]></Content></xml>"), []byte(`{"data":{"Content":"你好 🎉"}}`)},
			{"hex and escape look-alikes", []byte(`\x00 X'ff' '\\'`), []byte("E'\\\\x41'")},
			{"empty", []byte{}, []byte{}},
			{"nil", nil, nil},
		} {
			t.Run(tt.name, func(t *testing.T) {
				e := newEvent(tid, fmt.Sprint(i))
				e.Raw, e.Payload = tt.raw, tt.payload
				mustAppend(t, s, e)
				got := mustFindEvent(t, s, tid, e.ID)
				if !bytes.Equal(got.Raw, tt.raw) {
					t.Errorf("Raw = %q, want %q", got.Raw, tt.raw)
				}
				if !bytes.Equal(got.Payload, tt.payload) {
					t.Errorf("Payload = %q, want %q", got.Payload, tt.payload)
				}
				// Listings leave the bodies out.
				evs, err := s.FindEvents(ctx, tid, relay.EventFilter{PageSize: 1})
				if err != nil {
					t.Fatal(err)
				}
				if len(evs) != 1 || evs[0].ID != e.ID {
					t.Fatalf("FindEvents() = %v, want event %s", evs, e.ID)
				}
				if evs[0].Raw != nil || evs[0].Payload != nil {
					t.Errorf("FindEvents() returned Raw %q, Payload %q; want neither", evs[0].Raw, evs[0].Payload)
				}
			})
		}
	})
}

// TestEventStore_Times checks that times come back as the same instants, in
// UTC, whatever zone they were given in.
func TestEventStore_Times(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := store.NewEventStore(db)
		tid := mustCreateTenant(t, db, "tn_a")
		shanghai := time.FixedZone("CST", 8*60*60)
		e := newEvent(tid, "1001")
		e.CreateTime = time.Date(2026, 11, 24, 1, 2, 3, 0, shanghai)
		e.ReceiveTime = time.Date(2026, 11, 24, 1, 2, 4, 567891000, shanghai)
		mustAppend(t, s, e)
		assertEvent(t, mustFindEvent(t, s, tid, e.ID), stored(e)) // checks UTC too
	})
}

// TestEventStore_AppendLargeBatch crosses the limits at which AppendEvents
// splits a batch into several statements: rows, bytes, and duplicates to
// look up.
func TestEventStore_AppendLargeBatch(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s, ctx := store.NewEventStore(db), context.Background()
		tid := mustCreateTenant(t, db, "tn_a")
		const n = 700
		var first []*relay.Event
		for i := range n {
			e := newEvent(tid, fmt.Sprint(i))
			if i%100 == 0 {
				e.Raw = bytes.Repeat([]byte{byte(i)}, 1<<20) // WeChat's limit
			}
			first = append(first, e)
		}
		res := mustAppend(t, s, first...)
		for i, r := range res {
			if r != (relay.AppendResult{ID: first[i].ID}) {
				t.Fatalf("result %d = %+v, want %s stored", i, r, first[i].ID)
			}
		}
		// All again, shuffled, with new ones among them.
		var again []*relay.Event
		for _, i := range rand.Perm(n) {
			again = append(again, newEvent(tid, fmt.Sprint(i)))
		}
		again = append(again, newEvent(tid, "new"))
		res = mustAppend(t, s, again...)
		for i, r := range res[:n] {
			want := first[mustAtoi(t, again[i].DedupKey)].ID
			if r != (relay.AppendResult{ID: want, Duplicate: true}) {
				t.Fatalf("result %d = %+v, want a duplicate of %s", i, r, want)
			}
		}
		if r := res[n]; r != (relay.AppendResult{ID: again[n].ID}) {
			t.Errorf("last result = %+v, want %s stored", r, again[n].ID)
		}
		if got := mustFindEvent(t, s, tid, first[300].ID); !bytes.Equal(got.Raw, first[300].Raw) {
			t.Errorf("1 MiB body did not round-trip")
		}
		total, err := db.Bun().NewSelect().Table("events").Count(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if total != n+1 {
			t.Errorf("%d events stored, want %d", total, n+1)
		}
	})
}

func mustAtoi(tb testing.TB, s string) int {
	tb.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		tb.Fatal(err)
	}
	return n
}

// TestEventStore_AppendConcurrently has many callers append overlapping
// batches at once, keys in random orders, as replicas receiving WeChat's
// retries would: each key must be stored once, and every caller told the
// id it is stored under.
func TestEventStore_AppendConcurrently(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s, ctx := store.NewEventStore(db), context.Background()
		tids := []tenant.ID{mustCreateTenant(t, db, "tn_a"), mustCreateTenant(t, db, "tn_b")}
		const callers, batches, keys = 16, 5, 24

		type told struct {
			tid tenant.ID
			key string
			res relay.AppendResult
			own relay.EventID
		}
		var mu sync.Mutex
		var all []told
		var wg sync.WaitGroup
		errs := make(chan error, callers*batches)
		for range callers {
			wg.Go(func() {
				for range batches {
					var evs []*relay.Event
					for range 1 + rand.IntN(12) {
						evs = append(evs, newEvent(tids[rand.IntN(len(tids))], fmt.Sprint(rand.IntN(keys))))
					}
					res, err := s.AppendEvents(ctx, evs)
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					for i, e := range evs {
						all = append(all, told{e.TenantID, e.DedupKey, res[i], e.ID})
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("AppendEvents: %v", err)
		}

		ids := map[[2]string]relay.EventID{}
		for _, x := range all {
			k := [2]string{string(x.tid), x.key}
			if id, ok := ids[k]; ok && id != x.res.ID {
				t.Errorf("tenant %s key %s: callers told %s and %s", x.tid, x.key, id, x.res.ID)
			}
			ids[k] = x.res.ID
			if got, want := x.res.Duplicate, x.res.ID != x.own; got != want {
				t.Errorf("tenant %s key %s: %+v for event %s; Duplicate should be %v", x.tid, x.key, x.res, x.own, want)
			}
		}
		for k, id := range ids {
			tid := tenant.ID(k[0])
			if got := countEvents(t, db, tid, k[1]); got != 1 {
				t.Errorf("tenant %s key %s stored %d times, want once", tid, k[1], got)
			}
			if e := mustFindEvent(t, s, tid, id); e.DedupKey != k[1] {
				t.Errorf("event %s has dedup key %s, want %s", id, e.DedupKey, k[1])
			}
		}
		news := 0
		for _, x := range all {
			if !x.res.Duplicate {
				news++
			}
		}
		if news != len(ids) {
			t.Errorf("%d callers were told their event is new, want %d, one per key", news, len(ids))
		}
	})
}

// TestEventStore_IndexUse checks on SQLite that the queries the indexes are
// there for use them: newest-first listing without sorting, and the age of
// the backlog (DeliveryStore.Stats). TestDeliveryStore_IndexUse checks the
// delivery queries themselves.
func TestEventStore_IndexUse(t *testing.T) {
	db := storetest.New(t)
	for _, tt := range []struct {
		name, query, want string
	}{
		{"listing", "SELECT id FROM events WHERE tenant_id = 'tn_a' AND seq < 100 ORDER BY seq DESC LIMIT 10", "events_tenant_seq"},
		{"duplicate lookup", "SELECT id FROM events WHERE (tenant_id, dedup_key) IN (VALUES ('tn_a', '1'), ('tn_a', '2'))", "sqlite_autoindex_events"},
		{"find", "SELECT id FROM events WHERE tenant_id = 'tn_a' AND id = 'evt_x'", "sqlite_autoindex_events"},
		{"oldest pending", "SELECT receive_time FROM events WHERE state = 'pending' ORDER BY receive_time LIMIT 1", "events_pending_received"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := db.Bun().QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+tt.query)
			if err != nil {
				t.Fatal(err)
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
			p := strings.Join(plan, "; ")
			// Walking an index in its order is fine (the oldest pending
			// event is the first entry of its index); reading the table is not.
			tableScan := strings.Contains(p, "SCAN events") && !strings.Contains(p, "SCAN events USING")
			if !strings.Contains(p, tt.want) || strings.Contains(p, "TEMP B-TREE") || tableScan {
				t.Errorf("plan: %s\nwant a search using %s, no table scan or sort", p, tt.want)
			}
		})
	}
}

// BenchmarkAppendEvents measures stored events per second by batch size on
// SQLite, each batch one transaction with a real fsync.
func BenchmarkAppendEvents(b *testing.B) {
	for _, size := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			db := storetest.New(b)
			s := store.NewEventStore(db)
			tid := mustCreateTenant(b, db, "tn_bench")
			payload := bytes.Repeat([]byte("x"), 600) // a typical push
			n := 0
			batch := make([]*relay.Event, size)
			for b.Loop() {
				for i := range batch {
					e := newEvent(tid, fmt.Sprint(n))
					e.Raw, e.Payload = payload, payload
					batch[i] = e
					n++
				}
				if _, err := s.AppendEvents(context.Background(), batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// TestEventStore_AppendDeadlock makes a batch deadlock on PostgreSQL with
// another transaction that holds the batch's keys in the opposite order, as
// two replicas receiving WeChat's retries may: the batch must still be
// stored, each key once.
func TestEventStore_AppendDeadlock(t *testing.T) {
	db := storetest.NewPostgres(t)
	s, ctx := store.NewEventStore(db), context.Background()
	tid := mustCreateTenant(t, db, "tn_a")
	insert := func(tx bun.Tx, e *relay.Event) error {
		_, err := tx.ExecContext(ctx, `WITH e AS (INSERT INTO events (id, tenant_id, dedup_key, type, openid, create_time, receive_time, state, next_attempt_at)
			VALUES (?, ?, ?, '', '', ?, ?, 'pending', ?) ON CONFLICT (tenant_id, dedup_key) DO NOTHING RETURNING seq)
			INSERT INTO event_bodies (seq, raw, payload) SELECT seq, '', '' FROM e`,
			e.ID, e.TenantID, e.DedupKey, e.CreateTime, e.ReceiveTime, e.ReceiveTime)
		return err
	}

	// The other transaction takes b, the batch then takes a and waits for
	// b, and the other transaction waits for a: a deadlock, which
	// PostgreSQL breaks after deadlock_timeout (1s by default) by aborting
	// the transaction that has waited longest: the batch's.
	otherA, otherB := newEvent(tid, "a"), newEvent(tid, "b")
	tx, err := db.Bun().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if err := insert(tx, otherB); err != nil {
		t.Fatal(err)
	}
	batch := []*relay.Event{newEvent(tid, "a"), newEvent(tid, "b")}
	done := make(chan error, 1)
	var res []relay.AppendResult
	go func() {
		var err error
		res, err = s.AppendEvents(ctx, batch)
		done <- err
	}()
	mustWaitForLockWait(t, db)
	if err := insert(tx, otherA); err != nil {
		// PostgreSQL picked the other transaction after all: then the
		// batch goes through on its first try.
		t.Logf("the other transaction was the deadlock's victim: %v", err)
		tx.Rollback()
		if err := <-done; err != nil {
			t.Fatalf("AppendEvents: %v", err)
		}
		want := []relay.AppendResult{{ID: batch[0].ID}, {ID: batch[1].ID}}
		if !reflect.DeepEqual(res, want) {
			t.Errorf("AppendEvents() = %+v, want %+v", res, want)
		}
		return
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
	want := []relay.AppendResult{{ID: otherA.ID, Duplicate: true}, {ID: otherB.ID, Duplicate: true}}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("AppendEvents() = %+v, want %+v", res, want)
	}
	for _, key := range []string{"a", "b"} {
		if got := countEvents(t, db, tid, key); got != 1 {
			t.Errorf("dedup key %s stored %d times, want once", key, got)
		}
	}
}

// mustWaitForLockWait waits until a session of db's schema waits for a lock.
func mustWaitForLockWait(t *testing.T, db *store.DB) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var n int
		err := db.Bun().QueryRowContext(context.Background(),
			`SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
	}
	t.Fatal("AppendEvents never waited for the other transaction's key")
}

// TestEventStore_SearchEvents: the operator's search finds an event by
// its id and a user's events by openid, across tenants, newest first,
// within the limit, and nothing of a tenant marked deleted.
func TestEventStore_SearchEvents(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		es := store.NewEventStore(db)
		a, b, gone := mustCreateTenant(t, db, "tn_searcha"), mustCreateTenant(t, db, "tn_searchb"), mustCreateTenant(t, db, "tn_searchgone")
		var mine []*relay.Event
		for i := range 4 {
			e := newEvent(a, fmt.Sprintf("sa%d", i))
			e.OpenID = "oSearchedUser"
			mine = append(mine, e)
			mustAppend(t, es, e)
		}
		other := newEvent(b, "sb")
		mustAppend(t, es, other, newEvent(gone, "sg"))
		ghost := newEvent(gone, "sg2")
		ghost.OpenID = "oSearchedUser"
		mustAppend(t, es, ghost)
		if err := store.NewTenantStore(db).Delete(ctx, gone); err != nil {
			t.Fatal(err)
		}

		got, err := es.SearchEvents(ctx, "oSearchedUser", 3)
		if err != nil || len(got) != 3 || got[0].ID != mine[3].ID || got[2].ID != mine[1].ID {
			t.Fatalf("SearchEvents(openid, 3) = %v, %v; want tenant a's newest 3, not the deleted tenant's", eventIDs(got...), err)
		}
		got, err = es.SearchEvents(ctx, string(other.ID), 50)
		if err != nil || len(got) != 1 || got[0].TenantID != b {
			t.Fatalf("SearchEvents(event id) = %v, %v; want tenant b's event", eventIDs(got...), err)
		}
		if got, _ := es.SearchEvents(ctx, "oNobody", 50); len(got) != 0 {
			t.Errorf("SearchEvents(unknown) = %v", eventIDs(got...))
		}
		// A tenant's events of one user.
		page, err := es.FindEvents(ctx, a, relay.EventFilter{OpenID: "oSearchedUser", PageSize: 10})
		if err != nil || len(page) != 4 {
			t.Errorf("FindEvents(openid) = %d, %v; want 4", len(page), err)
		}
		if page, _ := es.FindEvents(ctx, b, relay.EventFilter{OpenID: "oSearchedUser"}); len(page) != 0 {
			t.Errorf("FindEvents of tenant b for a's user = %d events", len(page))
		}
	})
}
