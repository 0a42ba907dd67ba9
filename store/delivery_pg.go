package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/wxrelay/wxrelay/relay/delivery"
)

// pgDelivery is the delivery engine of PostgreSQL (see deliveryEngine).
type pgDelivery struct {
	db *DB

	// cursor is the last tenant of the previous claim's window (window):
	// the next one starts after it.
	mu     sync.Mutex
	cursor string
}

// walkTenants is how many tenants with pending events one claim looks at
// (a variable for tests).
var walkTenants = 512

// windowQuery finds a claim's window: up to ?walk tenants with pending
// events after ?cursor (pt1), then, if that reached the last, from the
// first on, up to the cursor, as many as make up ?walk (pt2). Part says
// which walk found each. The scalar subqueries are what lets PostgreSQL
// jump through the index instead of reading every pending event.
const windowQuery = `WITH RECURSIVE pt1(id, depth) AS (
	SELECT (SELECT min(tenant_id) FROM events WHERE state = 'pending' AND tenant_id > ?0), 1
	UNION ALL
	SELECT (SELECT min(n.tenant_id) FROM events AS n WHERE n.state = 'pending' AND n.tenant_id > pt1.id), pt1.depth + 1
	FROM pt1 WHERE pt1.id IS NOT NULL AND pt1.depth < ?1
), found AS (SELECT count(*) AS n FROM pt1 WHERE id IS NOT NULL),
pt2(id, depth) AS (
	SELECT (SELECT min(tenant_id) FROM events WHERE state = 'pending'), 1
	UNION ALL
	SELECT (SELECT min(n.tenant_id) FROM events AS n WHERE n.state = 'pending' AND n.tenant_id > pt2.id), pt2.depth + 1
	FROM pt2 WHERE pt2.id IS NOT NULL AND pt2.id < ?0 AND pt2.depth < ?1 - (SELECT n FROM found)
)
SELECT id, 1 AS part FROM pt1 WHERE id IS NOT NULL
UNION ALL
SELECT id, 2 AS part FROM pt2 WHERE id IS NOT NULL AND id <= ?0 AND (SELECT n FROM found) < ?1`

// window returns the tenants this claim looks at, and moves the cursor
// past them. With fewer tenants pending than walkTenants it is all of
// them, every claim, as before there were windows; with more, successive
// claims go round them all, walkTenants at a time. Looking at every
// pending tenant in every claim cost a probe and a lateral subquery per
// tenant: with 10,000 tenants each with a push pending at once, two
// replicas' claims took most of PostgreSQL's CPU and pushes waited (p99
// 0.9 s, docs/benchmarks.md, component mode).
func (e *pgDelivery) window(ctx context.Context) (ids []string, wrapped bool, err error) {
	e.mu.Lock()
	cursor := e.cursor
	e.mu.Unlock()
	var rows []struct {
		ID   string `bun:"id"`
		Part int    `bun:"part"`
	}
	if err := e.db.relaxed.NewRaw(windowQuery, cursor, walkTenants).Scan(ctx, &rows); err != nil {
		return nil, false, fmt.Errorf("claim due events: tenants with pending events: %w", err)
	}
	ids = make([]string, len(rows))
	var last1, last2 string // the greatest id each walk found
	found1 := 0
	for i, r := range rows {
		ids[i] = r.ID
		if r.Part == 1 {
			last1, found1 = max(last1, r.ID), found1+1
		} else {
			last2 = max(last2, r.ID)
		}
	}
	// The next window starts after this one: after the wrap's last, or
	// after the first walk's last if it stopped short of the end, or at
	// the first tenant if it reached the end and nothing wrapped.
	next := ""
	switch {
	case last2 != "":
		next = last2
	case found1 >= walkTenants:
		next = last1
	}
	e.mu.Lock()
	e.cursor = next
	e.mu.Unlock()
	// Reaching the last tenant (and starting again at the first) ends a
	// round: every pending tenant has been looked at since the cursor.
	return ids, last2 != "" || next == "", nil
}

// claim is ClaimDue on PostgreSQL: one statement, whose steps the
// comment of ClaimDue describes.
func (e *pgDelivery) claim(ctx context.Context, c delivery.Claim) ([]*delivery.Job, error) {
	// Window after window until one yields events, or a round ends: an
	// empty claim tells the dispatcher that nothing is due, and it waits
	// for its next poll; windows of tenants whose events all wait out a
	// backoff must not hide the due events of the next.
	for windows := 0; ; windows++ {
		window, wrapped, err := e.window(ctx)
		if err != nil || len(window) == 0 {
			return nil, err
		}
		jobs, err := e.claimIn(ctx, c, window)
		if err != nil || len(jobs) > 0 || wrapped || windows >= maxWindows {
			return jobs, err
		}
	}
}

// maxWindows bounds the windows one claim looks through (a round of
// maxWindows × walkTenants tenants), should tenants keep coming.
const maxWindows = 1000

// claimIn claims due events of the tenants of window.
func (e *pgDelivery) claimIn(ctx context.Context, c delivery.Claim, window []string) ([]*delivery.Job, error) {
	db, now := e.db.relaxed, c.Now.UTC()

	// 1. pt(id): the tenants with pending events this claim looks at.
	pendingTenants := db.NewSelect().TableExpr("unnest(?::text[]) AS w(id)", pgdialect.Array(window)).ColumnExpr("w.id AS id")

	// 2. The claimable events of tenant t, soonest due first: a correlated
	// subquery, run for each tenant of pt.
	earlier := db.NewSelect().TableExpr("events AS p").ColumnExpr("1").
		Where("p.tenant_id = e.tenant_id").
		Where("p.openid = e.openid").
		Where("p.state = 'pending'").
		// True of every event of an ordered tenant; said literally so that
		// events_pending_openid, partial on it, serves the search.
		Where("p.ordered").
		Where("(p.create_time, p.seq) < (e.create_time, e.seq)")
	claimable := db.NewSelect().TableExpr("events AS e").
		Column("e.seq").
		Where("e.tenant_id = t.id").
		Where("e.state = 'pending'").
		Where("e.next_attempt_at <= ?", now).
		Where("(e.lease_expires_at IS NULL OR e.lease_expires_at < ?)", now).
		Where("(NOT t.ordered_delivery OR NOT EXISTS (?))", earlier).
		OrderExpr("e.next_attempt_at, e.seq").
		Limit(int64(perTenantLimit(c)))
	picked := db.NewSelect().TableExpr("pt").
		Join("JOIN tenants AS t ON t.id = pt.id").
		Column("x.seq").
		OrderExpr("x.next_attempt_at, x.seq").
		Limit(int64(c.Limit))
	// LATERAL runs the subquery per tenant; its row locks are what lets
	// concurrent claims pass each other.
	claimable = claimable.Column("e.next_attempt_at").For("UPDATE OF e SKIP LOCKED")
	picked = picked.Join("CROSS JOIN LATERAL (?) AS x", claimable)
	// A disabled tenant's events wait, unclaimed, until it is enabled:
	// claiming them only to release them took two writes per event a minute.
	picked = picked.Where("t.state = 'active'")
	if len(c.Exclude) > 0 {
		picked = picked.Where("t.id NOT IN (?)", bun.List(c.Exclude))
	}

	// 3. Lease what was picked, if it is still claimable. MATERIALIZED
	// runs the locking step once, whatever plan the UPDATE gets.
	var rows []claimedRow
	err := db.NewUpdate().Table("events").
		With("pt", pendingTenants).
		WithQuery(bun.NewWithQuery("picked", picked).Materialized()).
		Set("lease_owner = ?", c.Owner).
		Set("lease_expires_at = ?", c.LeaseUntil.UTC()).
		Where("seq IN (SELECT seq FROM picked)").
		Where("state = 'pending'").
		Where("(lease_expires_at IS NULL OR lease_expires_at < ?)", now).
		Returning("seq, id, tenant_id, "+claimedPayload+", receive_time, next_attempt_at, attempt_count, retry_index").
		Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("claim due events: %w", err)
	}

	return claimedJobs(rows, c), nil
}

// record is Record on PostgreSQL, run again should a deadlock with another
// transaction (a tenant's update, say) roll it back.
func (e *pgDelivery) record(ctx context.Context, recs []outcomeRecord) error {
	var err error
	for attempt := 1; ; attempt++ {
		err = e.db.relaxed.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			return record(ctx, tx, recs)
		})
		if err == nil || !isDeadlock(err) || attempt == recordAttempts {
			return err
		}
	}
}

// record stores recs in tx on PostgreSQL. It may run more than once.
//
// It finds the events first, and then writes by seq: an UPDATE that names
// the event by id and tenant gave PostgreSQL's planner, before the table's
// first ANALYZE, the choice of events_pending_openid (tenant_id, ...) over
// the unique index on id, which made each update read the tenant's whole
// backlog (0.8 ms an outcome with 600 pending events per tenant). Nothing
// competes with the primary key.
func record(ctx context.Context, tx bun.Tx, recs []outcomeRecord) error {
	// Which events still exist, and their tenants, which the attempts take
	// (the outcome's job says the same, unless its caller erred). On
	// PostgreSQL this also locks the events, in id order, so that a tenant
	// being deleted waits for this transaction instead of removing an event
	// between this look-up and the insert of its attempt.
	ids := make([]string, 0, len(recs))
	for _, r := range recs {
		ids = append(ids, string(r.o.Job.EventID))
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	type found struct {
		Seq      int64  `bun:"seq"`
		ID       string `bun:"id"`
		TenantID string `bun:"tenant_id"`
	}
	events := make(map[string]found, len(ids))
	for start := 0; start < len(ids); start += lookupChunkRows {
		var rows []found
		q := tx.NewSelect().Model((*eventRow)(nil)).Column("seq", "id", "tenant_id").
			Where("id IN (?)", bun.List(ids[start:min(start+lookupChunkRows, len(ids))])).
			OrderExpr("id").
			For("NO KEY UPDATE")
		if err := q.Scan(ctx, &rows); err != nil {
			return fmt.Errorf("find events: %w", err)
		}
		for _, f := range rows {
			events[f.ID] = f
		}
	}

	live := make([]*outcomeRecord, 0, len(recs))
	for i := range recs {
		r := &recs[i]
		f, ok := events[r.attempt.EventID]
		if !ok {
			r.seq = 0
			continue
		}
		r.seq, r.attempt.TenantID = f.Seq, f.TenantID
		live = append(live, r)
	}
	if len(live) == 0 {
		return nil
	}
	return recordMultiRow(ctx, tx, live)
}

// recordMultiRow is record's writing on PostgreSQL, where each statement
// is a round trip: the attempts go in multi-row INSERTs, and the events'
// next states in UPDATEs that each join up to lookupChunkRows outcomes.
func recordMultiRow(ctx context.Context, tx bun.Tx, recs []*outcomeRecord) error {
	attempts := make([]*attemptRow, len(recs))
	for i, r := range recs {
		attempts[i] = r.attempt
	}
	for start := 0; start < len(attempts); start += appendChunkRows {
		chunk := attempts[start:min(start+appendChunkRows, len(attempts))]
		if _, err := tx.NewInsert().Model(&chunk).Exec(ctx); err != nil {
			return fmt.Errorf("insert attempts: %w", err)
		}
	}

	// In one statement, an event that several outcomes of the same owner
	// name would be updated by any one of them. Applied one by one, the
	// first would end the lease and the others find it gone: keep the
	// first. Outcomes of different owners may stay, as only the one whose
	// owner holds the lease matches.
	type key struct {
		seq   int64
		owner string
	}
	seen := make(map[key]bool, len(recs))
	var rows []*outcomeRecord
	for _, r := range recs {
		if k := (key{r.seq, r.o.Owner}); !seen[k] {
			seen[k] = true
			rows = append(rows, r)
		}
	}
	for start := 0; start < len(rows); start += lookupChunkRows {
		chunk := rows[start:min(start+lookupChunkRows, len(rows))]
		var values strings.Builder
		args := make([]any, 0, 6*len(chunk))
		for i, r := range chunk {
			if i > 0 {
				values.WriteString(", ")
			}
			// Typed, as VALUES does not take its types from the columns
			// it is compared with or assigned to.
			values.WriteString("(?::bigint, ?::text, ?::text, ?::integer, ?::timestamptz, ?::timestamptz)")
			next, finished := r.nextTimes()
			args = append(args, r.seq, r.o.Owner, r.state, r.o.RetryIndex, next, finished)
		}
		_, err := tx.NewRaw(`UPDATE events AS e SET
	state = o.state, attempt_count = e.attempt_count + 1, retry_index = o.retry_index,
	next_attempt_at = coalesce(o.next_attempt_at, e.next_attempt_at), finished_at = o.finished_at,
	lease_owner = NULL, lease_expires_at = NULL
FROM (VALUES `+values.String()+`) AS o (seq, owner, state, retry_index, next_attempt_at, finished_at)
WHERE e.seq = o.seq AND e.state = 'pending' AND e.lease_owner = o.owner`, args...).Exec(ctx)
		if err != nil {
			return fmt.Errorf("update events: %w", err)
		}
	}
	return nil
}
