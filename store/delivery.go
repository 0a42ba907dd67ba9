package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/relay/delivery"
	"github.com/wxrelay/wxrelay/tenant"
)

// DeliveryStore keeps the delivery state of events: leases, attempts, the
// retry schedule and retention. Every write that ends a lease checks that
// its caller still holds it, so that a worker whose lease ran out while it
// was attempting cannot overwrite the work of the worker that took over.
//
// Leases make delivery safe with several claimers at once, in one process
// or in several replicas sharing a PostgreSQL database: see ClaimDue.
//
// Claims, outcomes, releases and pruning commit without waiting for the
// disk (DB.relaxed): a crash may forget the last of them, and then an event
// is attempted again under the same webhook-id, which at-least-once
// delivery allows. Each of them would otherwise cost an fsync per
// transaction, three per event with ingest, and the disk would set the
// delivery rate. Redelivery, asked for by a person, is durable.
type DeliveryStore struct {
	db *DB
}

var _ delivery.Store = (*DeliveryStore)(nil)

// NewDeliveryStore returns a DeliveryStore on db.
func NewDeliveryStore(db *DB) *DeliveryStore { return &DeliveryStore{db: db} }

// ClaimDue leases due events to c.Owner until c.LeaseUntil and returns them
// with their payloads, soonest due first.
//
// An event is claimable when it is pending, due (next_attempt_at <=
// c.Now), not leased or its lease ran out (lease_expires_at < c.Now), its
// tenant is active and not in c.Exclude, and, for a tenant with ordered delivery, no
// event of the same openid with an earlier (create_time, seq) is pending,
// leased or not. Of those, a claim takes the first c.PerTenant of each
// tenant, and of these the first c.Limit in all: a tenant with a large
// backlog takes no more than its share, whoever else is waiting.
//
// The claim is one transaction in three steps, one statement on
// PostgreSQL and a few on SQLite (see ClaimDue's statements on SQLite):
//
//  1. pt: the tenants that have pending events, found by skipping through
//     the index events_tenant_due one tenant at a time: as many index
//     probes as such tenants, whatever their backlogs.
//  2. picked: for each of them, its first min(c.PerTenant, c.Limit)
//     claimable events from the same index, and the first c.Limit of all
//     these.
//  3. an UPDATE that leases the picked events, re-checking on each row
//     that it is still pending and unleased.
//
// Reading a tenant's first few events from an index, rather than ranking
// every due event with row_number() over the partition of its tenant,
// keeps the cost of a claim independent of the backlog: with 200,000 due
// events of one tenant and 10 of each of 999 others, the ranking took half
// a second a claim on SQLite, this about 20 ms, most of it visiting the
// 1,000 tenants. On SQLite, a claim of 64 from a backlog of 10,000 and the
// record of their outcomes take about 2 ms together
// (BenchmarkDeliveryStore_ClaimRecord).
//
// On SQLite the database's single write lock serialises claims. On
// PostgreSQL the per-tenant step locks the rows it reads FOR UPDATE SKIP
// LOCKED (which could not share a query level with a window function): a
// concurrent claim passes over them to the next events instead of waiting,
// so that claims never wait for each other. Without it, claims locked
// overlapping rows in different orders and deadlocked
// (TestDeliveryStore_ClaimOrderedConcurrently). The price is that a claim
// locks up to min(c.PerTenant, c.Limit) rows of every tenant with due
// events, more than it may lease, for its few milliseconds. What rules out
// a double claim is the UPDATE's own check of state and lease on each
// row: under READ
// COMMITTED, PostgreSQL re-evaluates it on the newest version of a row that
// another transaction changed meanwhile.
//
// relay.ErrInvalid if c lacks an owner, a time, a lease end after c.Now, or
// positive limits.
func (s *DeliveryStore) ClaimDue(ctx context.Context, c delivery.Claim) ([]*delivery.Job, error) {
	defer s.db.serialize()()
	if err := validateClaim(c); err != nil {
		return nil, fmt.Errorf("claim due events: %w", err)
	}
	if s.db.Dialect() != "pg" {
		return s.claimSQLite(ctx, c)
	}
	db, now := s.db.relaxed, c.Now.UTC()

	// 1. pt(id): the first pending tenant, then each time the next one.
	// The scalar subqueries are what lets both engines jump through the
	// index instead of reading every pending event.
	pendingTenants := db.NewSelect().
		ColumnExpr("(?) AS id", db.NewSelect().TableExpr("events").
			ColumnExpr("min(tenant_id)").
			Where("state = 'pending'")).
		UnionAll(db.NewSelect().TableExpr("pt").
			ColumnExpr("(?)", db.NewSelect().TableExpr("events AS n").
				ColumnExpr("min(n.tenant_id)").
				Where("n.state = 'pending'").
				Where("n.tenant_id > pt.id")).
			Where("pt.id IS NOT NULL"))

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
		WithRecursive("pt", pendingTenants).
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

// claimedJobs turns the rows a claim leased into jobs, soonest due first.
func claimedJobs(rows []claimedRow, c delivery.Claim) []*delivery.Job {
	// RETURNING promises no order.
	slices.SortFunc(rows, func(a, b claimedRow) int {
		return cmp.Or(a.NextAttemptAt.Compare(b.NextAttemptAt), cmp.Compare(a.Seq, b.Seq))
	})
	jobs := make([]*delivery.Job, len(rows))
	for i, r := range rows {
		jobs[i] = &delivery.Job{
			EventID:      relay.EventID(r.ID),
			TenantID:     tenant.ID(r.TenantID),
			Payload:      r.Payload,
			ReceiveTime:  r.ReceiveTime.UTC(),
			AttemptCount: r.AttemptCount,
			RetryIndex:   r.RetryIndex,
			LeaseUntil:   c.LeaseUntil.UTC(),
			DueAt:        r.NextAttemptAt.UTC(),
		}
	}
	return jobs
}

// ClaimDue's statements on SQLite: the same three steps as the query
// ClaimDue builds for PostgreSQL, as statements in one transaction, with
// parameters, so that each is prepared once per connection (see
// DB.prepared). SQLite's single write lock, taken at BEGIN, serialises
// claims, so nothing is locked row by row.
//
// SQLite has no LATERAL. Step 2 has two forms: a query per tenant, or one
// query for all of them, the per-tenant subquery correlated with the
// tenant in a join condition (x.seq IN (...)). The one query costs about
// 6 µs a tenant, but some 80 µs more whatever the number of tenants; a
// query per tenant costs about 40 µs. So a claim among a few tenants, as
// when one tenant's backlog drains, runs a query per tenant, and a claim
// among more runs the one query: with 1,000 tenants with due events, 6 ms
// a claim against 39 ms.
const (
	// 1. pt: the tenants that have pending events, active and not
	// excluded. ?1 is the excluded tenants as a JSON array.
	sqliteClaimTenants = `WITH RECURSIVE pt(id) AS (
	SELECT (SELECT min(tenant_id) FROM events WHERE state = 'pending')
	UNION ALL
	SELECT (SELECT min(n.tenant_id) FROM events AS n WHERE n.state = 'pending' AND n.tenant_id > pt.id)
	FROM pt WHERE pt.id IS NOT NULL
)
SELECT t.id, t.ordered_delivery FROM pt JOIN tenants AS t ON t.id = pt.id
WHERE t.state = 'active' AND t.id NOT IN (SELECT value FROM json_each(?1))`

	// 2. A tenant's first claimable events, soonest due first: ?1 the
	// tenant, ?2 now, ?3 how many. Two queries: without ordered delivery,
	// and with it.
	sqliteClaimTenantDue = `SELECT e.seq, e.next_attempt_at FROM events AS e
WHERE e.tenant_id = ?1 AND ` + sqliteClaimable + `
ORDER BY e.next_attempt_at, e.seq
LIMIT ?3`
	sqliteClaimTenantDueOrdered = `SELECT e.seq, e.next_attempt_at FROM events AS e
WHERE e.tenant_id = ?1 AND ` + sqliteClaimable + ` AND ` + sqliteNoEarlierPending + `
ORDER BY e.next_attempt_at, e.seq
LIMIT ?3`

	// 2, for many tenants at once: the first ?3 claimable events of each
	// tenant of ?1 (a JSON array of tenant ids), and of those the first ?4,
	// soonest due first.
	sqliteClaimTenantsDue = `SELECT x.seq, x.next_attempt_at FROM json_each(?1) AS pt
JOIN tenants AS t ON t.id = pt.value
JOIN events AS x ON x.seq IN (
	SELECT e.seq FROM events AS e
	WHERE e.tenant_id = t.id AND ` + sqliteClaimable + `
		AND (NOT t.ordered_delivery OR ` + sqliteNoEarlierPending + `)
	ORDER BY e.next_attempt_at, e.seq
	LIMIT ?3)
ORDER BY x.next_attempt_at, x.seq
LIMIT ?4`

	// Step 2's conditions on an event e at ?2, now: pending, due, and not
	// leased or its lease ran out; and, for ordered delivery, no event of
	// the same openid with an earlier (create_time, seq) is pending.
	sqliteClaimable        = `e.state = 'pending' AND e.next_attempt_at <= ?2 AND (e.lease_expires_at IS NULL OR e.lease_expires_at < ?2)`
	sqliteNoEarlierPending = `NOT EXISTS (
		SELECT 1 FROM events AS p
		WHERE p.tenant_id = e.tenant_id AND p.openid = e.openid
			AND p.state = 'pending' AND p.ordered
			AND (p.create_time, p.seq) < (e.create_time, e.seq))`

	// 3. Lease the picked events (?1, a JSON array of seqs) to ?3 until
	// ?4, if they are still claimable at ?2.
	sqliteClaimLease = `UPDATE events SET lease_owner = ?3, lease_expires_at = ?4
WHERE seq IN (SELECT value FROM json_each(?1)) AND state = 'pending'
	AND (lease_expires_at IS NULL OR lease_expires_at < ?2)
RETURNING seq, id, tenant_id, ` + claimedPayload + `, receive_time, next_attempt_at, attempt_count, retry_index`
)

// claimedPayload is the webhook body of the event a claim leases, read in
// its RETURNING clause: the bodies are not in the events row.
const claimedPayload = `(SELECT b.payload FROM event_bodies AS b WHERE b.seq = events.seq) AS payload`

// claimSQLite is ClaimDue on SQLite.
func (s *DeliveryStore) claimSQLite(ctx context.Context, c delivery.Claim) (jobs []*delivery.Job, err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("claim due events: %w", err)
		}
	}()
	exclude, err := jsonArray(c.Exclude, func(id tenant.ID) tenant.ID { return id })
	if err != nil {
		return nil, err
	}
	var st claimStmts
	for _, p := range []struct {
		st    **sql.Stmt
		query string
	}{
		{&st.tenants, sqliteClaimTenants}, {&st.due, sqliteClaimTenantDue}, {&st.dueOrdered, sqliteClaimTenantDueOrdered},
		{&st.dueMany, sqliteClaimTenantsDue}, {&st.lease, sqliteClaimLease},
	} {
		if *p.st, err = s.stmt(ctx, p.query); err != nil {
			return nil, err
		}
	}

	ctx = uncancellable(ctx)
	tx, err := s.db.relaxed.DB.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback() // after Commit, does nothing
	tenants, err := appendRows(ctx, tx.StmtContext(ctx, st.tenants), nil, func(rs *sql.Rows, t *tenantDue) error {
		return rs.Scan(&t.id, &t.ordered)
	}, exclude)
	if err != nil {
		return nil, err
	}
	picked, err := pickDue(ctx, tx, &st, tenants, c)
	if err != nil {
		return nil, err
	}
	if len(picked) == 0 {
		return nil, tx.Commit()
	}
	seqs, err := jsonArray(picked, func(d dueEvent) int64 { return d.seq })
	if err != nil {
		return nil, err
	}
	rows, err := appendRows(ctx, tx.StmtContext(ctx, st.lease), make([]claimedRow, 0, len(picked)), func(rs *sql.Rows, r *claimedRow) error {
		return rs.Scan(&r.Seq, &r.ID, &r.TenantID, &r.Payload, &r.ReceiveTime, &r.NextAttemptAt, &r.AttemptCount, &r.RetryIndex)
	}, seqs, sqliteTime(c.Now), c.Owner, sqliteTime(c.LeaseUntil))
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return claimedJobs(rows, c), nil
}

// claimStmts are a claim's statements on SQLite, prepared.
type claimStmts struct {
	tenants, due, dueOrdered, dueMany, lease *sql.Stmt
}

// pickDue is step 2 of a claim on SQLite: the first claimable events of
// each of tenants, at most c.PerTenant each and c.Limit in all, soonest
// due first.
func pickDue(ctx context.Context, tx *sql.Tx, st *claimStmts, tenants []tenantDue, c delivery.Claim) ([]dueEvent, error) {
	now, perTenant := sqliteTime(c.Now), perTenantLimit(c)
	scan := func(rs *sql.Rows, d *dueEvent) error { return rs.Scan(&d.seq, &d.next) }
	if len(tenants) > claimPerTenantMax {
		ids, err := jsonArray(tenants, func(t tenantDue) string { return t.id })
		if err != nil {
			return nil, err
		}
		return appendRows(ctx, tx.StmtContext(ctx, st.dueMany), nil, scan, ids, now, perTenant, c.Limit)
	}
	var picked []dueEvent
	for _, t := range tenants {
		q := st.due
		if t.ordered {
			q = st.dueOrdered
		}
		var err error
		if picked, err = appendRows(ctx, tx.StmtContext(ctx, q), picked, scan, t.id, now, perTenant); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(picked, func(a, b dueEvent) int {
		return cmp.Or(a.next.Compare(b.next), cmp.Compare(a.seq, b.seq))
	})
	return picked[:min(len(picked), c.Limit)], nil
}

// claimPerTenantMax is the most tenants with pending events for which a
// claim on SQLite runs step 2 as a query per tenant (see ClaimDue's
// statements on SQLite above).
var claimPerTenantMax = 3

// tenantDue is a tenant with pending events, as step 1 of a claim finds it.
type tenantDue struct {
	id      string
	ordered bool
}

// dueEvent is a claimable event, as step 2 of a claim finds it.
type dueEvent struct {
	seq  int64
	next time.Time
}

// jsonArray is f of each of xs as a JSON array, "[]" for none: how a list
// reaches a SQLite statement, which reads it with json_each.
func jsonArray[T, V any](xs []T, f func(T) V) (string, error) {
	vs := make([]V, len(xs))
	for i, x := range xs {
		vs[i] = f(x)
	}
	b, err := json.Marshal(vs)
	return string(b), err
}

// appendRows runs st with args and appends to to a value per row, read by
// scan.
func appendRows[T any](ctx context.Context, st *sql.Stmt, to []T, scan func(*sql.Rows, *T) error, args ...any) ([]T, error) {
	rs, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	for rs.Next() {
		var v T
		if err := scan(rs, &v); err != nil {
			return nil, err
		}
		to = append(to, v)
	}
	return to, rs.Err()
}

// uncancellable is ctx for SQLite's hot statements. Given a context that
// can end, the driver runs each statement in a goroutine of its own, to
// interrupt it on cancellation, and database/sql watches each transaction
// and result set with another goroutine: switches that cost more than the
// statements, which take microseconds and never wait long (this process's
// writes take turns in serialize; the busy timeout bounds a wait for
// another process's).
func uncancellable(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// stmt returns query prepared on the relaxed pool. bun writes values into
// a statement's text, and SQLite compiled the claim afresh at every call, a
// quarter of its CPU.
func (s *DeliveryStore) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	return s.db.prepared(ctx, s.db.relaxed, query)
}

// claimedRow is what ClaimDue reads back of a leased event.
type claimedRow struct {
	Seq           int64     `bun:"seq"`
	ID            string    `bun:"id"`
	TenantID      string    `bun:"tenant_id"`
	Payload       []byte    `bun:"payload"`
	ReceiveTime   time.Time `bun:"receive_time"`
	NextAttemptAt time.Time `bun:"next_attempt_at"`
	AttemptCount  int       `bun:"attempt_count"`
	RetryIndex    int       `bun:"retry_index"`
}

// perTenantLimit is how many events a claim reads of each tenant: no more
// than it may take in all. A claim for the few workers that just came free
// then reads a few events, not c.PerTenant of every tenant only to keep
// the first few.
func perTenantLimit(c delivery.Claim) int { return min(c.PerTenant, c.Limit) }

func validateClaim(c delivery.Claim) error {
	switch {
	case c.Owner == "":
		return fmt.Errorf("no owner: %w", relay.ErrInvalid)
	case c.Now.IsZero():
		return fmt.Errorf("no time: %w", relay.ErrInvalid)
	case !c.LeaseUntil.After(c.Now):
		return fmt.Errorf("lease ends at %v, not after %v: %w", c.LeaseUntil, c.Now, relay.ErrInvalid)
	case c.Limit <= 0 || c.PerTenant <= 0:
		return fmt.Errorf("limit %d, per tenant %d: want both positive: %w", c.Limit, c.PerTenant, relay.ErrInvalid)
	}
	return nil
}

// recordAttempts bounds how often Record runs a batch that PostgreSQL
// aborted as a deadlock victim: a tenant's deletion, cascading through
// its events in an order of its own, can deadlock with a batch that locked
// some of them (see record). The batch, rolled back, is safe to run again.
const recordAttempts = 3

// Record stores a batch of outcomes in one transaction, so that the batch
// costs one durable commit. For each outcome it stores the attempt and, if
// o.Owner still holds the event's lease, the event's next state: o.State,
// one more attempt, o.RetryIndex, and o.NextAttemptAt when pending or the
// attempt's time as finished_at when delivered or failed; the lease ends.
//
// When the lease was lost (it ran out and another worker claimed the
// event, or the event was redelivered meanwhile) only the attempt is
// stored: it did happen, but the event's state is no longer this worker's
// to set, and its attempt count is not raised. Outcomes of events that no
// longer exist, their tenant having been deleted, are skipped. Outcomes of
// the same event apply in batch order.
//
// relay.ErrInvalid, storing nothing of the batch, if an outcome lacks a job,
// an owner or an attempt time, has a negative status, latency or retry
// index, a state other than pending, delivered or failed, or is pending
// without a next attempt time.
func (s *DeliveryStore) Record(ctx context.Context, outcomes []delivery.Outcome) error {
	defer s.db.serialize()()
	if len(outcomes) == 0 {
		return nil
	}
	recs := make([]outcomeRecord, len(outcomes))
	for i, o := range outcomes {
		if err := validateOutcome(o); err != nil {
			return fmt.Errorf("record outcome %d: %w", i, err)
		}
		state, err := eventStates.encode("state", o.State)
		if err != nil {
			return fmt.Errorf("record outcome %d: event %s: %w: %w", i, o.Job.EventID, err, relay.ErrInvalid)
		}
		recs[i] = outcomeRecord{o: o, state: state, attempt: newAttemptRow(o.Job.TenantID, o.Job.EventID, o.Attempt)}
	}
	pg := s.db.Dialect() == "pg"
	var ins, upd *sql.Stmt
	if !pg {
		var err error
		if ins, err = s.stmt(ctx, sqliteInsertAttempt); err != nil {
			return fmt.Errorf("record %d outcomes: %w", len(outcomes), err)
		}
		if upd, err = s.stmt(ctx, sqliteRecordOutcome); err != nil {
			return fmt.Errorf("record %d outcomes: %w", len(outcomes), err)
		}
	}
	var err error
	if !pg {
		ctx = uncancellable(ctx)
	}
	for attempt := 1; ; attempt++ {
		err = s.db.relaxed.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			if !pg {
				return recordPrepared(ctx, tx, ins, upd, recs)
			}
			return record(ctx, tx, recs)
		})
		if err == nil || !isDeadlock(err) || attempt == recordAttempts {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("record %d outcomes: %w", len(outcomes), err)
	}
	return nil
}

// outcomeRecord is an outcome ready to store.
type outcomeRecord struct {
	o       delivery.Outcome
	state   string
	attempt *attemptRow
	// seq is the event's, found by record; 0 when the event is gone.
	seq int64
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

// sqliteInsertAttempt and sqliteRecordOutcome are recordPrepared's
// statements, prepared once per connection (see DB.prepared) and
// run per outcome with bound parameters: SQLite has no round trips to
// save, and a statement per row costs less than one holding the batch's
// values (response bodies in hex) in its text. Both find the event by its
// id, through its unique index, so that no look-up precedes them.
const (
	// The attempt, if its event still exists; its tenant is the event's.
	sqliteInsertAttempt = `INSERT INTO attempts (event_id, tenant_id, time, http_status, latency_ms, error_class, error, response_body)
SELECT id, tenant_id, ?, ?, ?, ?, ?, ? FROM events WHERE id = ?`
	// The event's next state, if the outcome's owner holds its lease.
	sqliteRecordOutcome = `UPDATE events SET
	state = ?, attempt_count = attempt_count + 1, retry_index = ?,
	next_attempt_at = coalesce(?, next_attempt_at), finished_at = ?,
	lease_owner = NULL, lease_expires_at = NULL
WHERE id = ? AND state = 'pending' AND lease_owner = ?`
)

// recordPrepared is Record on SQLite: the outcomes apply one by one, in
// batch order. SQLite's write lock, taken at BEGIN, keeps a tenant's
// deletion from coming between an event and its attempt.
func recordPrepared(ctx context.Context, tx bun.Tx, ins, upd *sql.Stmt, recs []outcomeRecord) error {
	ins, upd = tx.Tx.StmtContext(ctx, ins), tx.Tx.StmtContext(ctx, upd)
	defer ins.Close()
	defer upd.Close()
	for i := range recs {
		r := &recs[i]
		a := r.attempt
		_, err := ins.ExecContext(ctx, sqliteTime(a.Time), a.HTTPStatus, a.LatencyMS, a.ErrorClass, a.Error, a.ResponseBody, a.EventID)
		if err != nil {
			return fmt.Errorf("insert attempt at event %s: %w", a.EventID, err)
		}
		next, finished := r.nextTimes()
		if _, err := upd.ExecContext(ctx, r.state, r.o.RetryIndex, sqliteNullTime(next), sqliteNullTime(finished), a.EventID, r.o.Owner); err != nil {
			return fmt.Errorf("update event %s: %w", a.EventID, err)
		}
	}
	return nil
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

// nextTimes returns the event's next attempt time, when the outcome
// leaves it pending, and its finishing time, when it does not; nil for the
// other.
func (r *outcomeRecord) nextTimes() (next, finished *time.Time) {
	if r.o.State == relay.StatePending {
		t := r.o.NextAttemptAt.UTC()
		return &t, nil
	}
	t := r.attempt.Time
	return nil, &t
}

// sqliteNullTime is sqliteTime for a time that may be NULL.
func sqliteNullTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return sqliteTime(*t)
}

func validateOutcome(o delivery.Outcome) error {
	switch {
	case o.Job == nil || o.Job.EventID == "" || o.Job.TenantID == "":
		return fmt.Errorf("no job: %w", relay.ErrInvalid)
	case o.Owner == "":
		return fmt.Errorf("event %s: no owner: %w", o.Job.EventID, relay.ErrInvalid)
	case o.Attempt.Time.IsZero():
		return fmt.Errorf("event %s: no attempt time: %w", o.Job.EventID, relay.ErrInvalid)
	case o.Attempt.HTTPStatus < 0 || o.Attempt.Latency < 0 || o.RetryIndex < 0:
		return fmt.Errorf("event %s: negative status, latency or retry index: %w", o.Job.EventID, relay.ErrInvalid)
	case o.State == relay.StatePending && o.NextAttemptAt.IsZero():
		return fmt.Errorf("event %s: pending without a next attempt time: %w", o.Job.EventID, relay.ErrInvalid)
	}
	return nil
}

// Release ends r.Owner's lease on r.Job's event without an attempt, making
// it due at r.NextAttemptAt. It does nothing if the lease was lost or the
// event is gone. relay.ErrInvalid if r lacks a job, an owner or a time.
func (s *DeliveryStore) Release(ctx context.Context, r delivery.Release) error {
	defer s.db.serialize()()
	switch {
	case r.Job == nil || r.Job.EventID == "":
		return fmt.Errorf("release event: no job: %w", relay.ErrInvalid)
	case r.Owner == "" || r.NextAttemptAt.IsZero():
		return fmt.Errorf("release event %s: no owner or no next attempt time: %w", r.Job.EventID, relay.ErrInvalid)
	}
	// Only pending events are leased, so the lease says it all. Naming
	// the state or the tenant too would offer PostgreSQL's planner, before
	// the table's first ANALYZE, the partial index events_pending_openid
	// (tenant_id, ...) in place of the unique index on id (see record).
	_, err := s.db.relaxed.NewUpdate().Model((*eventRow)(nil)).
		Set("next_attempt_at = ?", r.NextAttemptAt.UTC()).
		Set("lease_owner = NULL").
		Set("lease_expires_at = NULL").
		Where("id = ?", string(r.Job.EventID)).
		Where("lease_owner = ?", r.Owner).
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("release event %s: %w", r.Job.EventID, err)
	}
	return nil
}

// Redeliver makes tenant tid's event id pending and due at now, at the
// start of the retry schedule (retry index 0), whatever its state. Any
// lease ends: a worker attempting the event meanwhile records its attempt
// but not the event's state. The attempt count is kept, as it counts every
// attempt ever made. relay.ErrNotFound, also for another tenant's event;
// relay.ErrInvalid if now is zero.
func (s *DeliveryStore) Redeliver(ctx context.Context, tid tenant.ID, id relay.EventID, now time.Time) error {
	defer s.db.serialize()()
	if now.IsZero() {
		return fmt.Errorf("redeliver event %s: no time: %w", id, relay.ErrInvalid)
	}
	res, err := s.db.bun.NewUpdate().Model((*eventRow)(nil)).
		Set("state = 'pending'").
		Set("retry_index = 0").
		Set("next_attempt_at = ?", now.UTC()).
		Set("lease_owner = NULL").
		Set("lease_expires_at = NULL").
		Set("finished_at = NULL").
		// Pending again, it is ordered as its tenant orders now: a finished
		// event keeps the ordered of its day (Update rewrites pending ones
		// only).
		Set("ordered = (SELECT t.ordered_delivery FROM tenants AS t WHERE t.id = ?)", string(tid)).
		Where("tenant_id = ?", string(tid)).
		Where("id = ?", string(id)).
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("redeliver event %s of tenant %s: %w", id, tid, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("redeliver event %s of tenant %s: %w", id, tid, err)
	} else if n == 0 {
		return fmt.Errorf("redeliver event %s of tenant %s: %w", id, tid, relay.ErrNotFound)
	}
	return nil
}

// PruneEvents deletes up to limit events that finished in state (delivered
// or failed) before cutoff, oldest first, together with their attempts
// (the schema cascades), and reports how many it deleted. Each call is one
// statement, so one short transaction: callers delete a large history in
// batches, a call at a time, and never hold up ingest for long. Pending
// events are never deleted. relay.ErrInvalid for another state or a limit
// that is not positive.
func (s *DeliveryStore) PruneEvents(ctx context.Context, state relay.State, cutoff time.Time, limit int) (int, error) {
	defer s.db.serialize()()
	if state != relay.StateDelivered && state != relay.StateFailed {
		return 0, fmt.Errorf("prune events: state %v is not a finished one: %w", state, relay.ErrInvalid)
	}
	if limit <= 0 {
		return 0, fmt.Errorf("prune events: limit %d: %w", limit, relay.ErrInvalid)
	}
	name, err := eventStates.encode("state", state)
	if err != nil {
		return 0, fmt.Errorf("prune events: %w", err)
	}
	cutoff = cutoff.UTC()
	batch := s.db.relaxed.NewSelect().TableExpr("events").Column("seq").
		Where("state = ?", name).
		Where("finished_at < ?", cutoff).
		OrderExpr("finished_at").
		Limit(int64(limit))
	// The outer conditions repeat the batch's: on PostgreSQL, an event
	// redelivered after the batch was read is re-checked, and kept.
	res, err := s.db.relaxed.NewDelete().Model((*eventRow)(nil)).
		Where("seq IN (?)", batch).
		Where("state = ?", name).
		Where("finished_at < ?", cutoff).
		Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("prune %s events: %w", name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("prune %s events: %w", name, err)
	}
	return int(n), nil
}

// Stats counts the pending events, leased or not, due or not, and finds
// the oldest one's receive time.
func (s *DeliveryStore) Stats(ctx context.Context) (delivery.Stats, error) {
	var st delivery.Stats
	n, err := s.db.bun.NewSelect().Model((*eventRow)(nil)).
		Where("state = 'pending'").
		Count(ctx)
	if err != nil {
		return st, fmt.Errorf("delivery stats: %w", err)
	}
	st.Pending = int(n)
	if n == 0 {
		return st, nil
	}
	// ORDER BY and LIMIT rather than min(), whose result SQLite hands back
	// as text rather than as a time.
	err = s.db.bun.NewSelect().Model((*eventRow)(nil)).
		Column("receive_time").
		Where("state = 'pending'").
		OrderExpr("receive_time").
		Limit(1).
		Scan(ctx, &st.OldestPending)
	if errors.Is(err, sql.ErrNoRows) {
		// Delivered between the two queries.
		return st, nil
	} else if err != nil {
		return st, fmt.Errorf("delivery stats: %w", err)
	}
	st.OldestPending = st.OldestPending.UTC()
	return st, nil
}
