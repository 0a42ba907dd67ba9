package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
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
// tenant is not in c.Exclude, and, for a tenant with ordered delivery, no
// event of the same openid with an earlier (create_time, seq) is pending,
// leased or not. Of those, a claim takes the first c.PerTenant of each
// tenant, and of these the first c.Limit in all: a tenant with a large
// backlog takes no more than its share, whoever else is waiting.
//
// The claim is one statement, so one transaction, in three steps:
//
//  1. pt: the tenants that have pending events, found by skipping through
//     the index events_tenant_due one tenant at a time: as many index
//     probes as such tenants, whatever their backlogs.
//  2. picked: for each of them, its first c.PerTenant claimable events
//     from the same index, and the first c.Limit of all these.
//  3. an UPDATE that leases the picked events, re-checking on each row
//     that it is still pending and unleased.
//
// Reading a tenant's first few events from an index, rather than ranking
// every due event with row_number() over the partition of its tenant,
// keeps the cost of a claim independent of the backlog: with 200,000 due
// events of one tenant the ranking took half a second on SQLite, this
// about 20 ms.
//
// On SQLite the database's single writer lock serialises claims. On
// PostgreSQL the per-tenant step locks the rows it reads FOR UPDATE SKIP
// LOCKED: a concurrent claim skips them and moves on to the next events
// instead of waiting for them, and a row that a claim committed meanwhile
// is re-read and re-checked before it is locked. The UPDATE's own check of
// state and lease is what makes a double claim impossible even without the
// locks: under READ COMMITTED, PostgreSQL re-evaluates it on the newest
// version of a row another transaction changed.
//
// relay.ErrInvalid if c lacks an owner, a time, a lease end after c.Now, or
// positive limits.
func (s *DeliveryStore) ClaimDue(ctx context.Context, c delivery.Claim) ([]*delivery.Job, error) {
	if err := validateClaim(c); err != nil {
		return nil, fmt.Errorf("claim due events: %w", err)
	}
	db, pg := s.db.bun, s.db.Dialect() == "pg"
	now := c.Now.UTC()

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
		Where("(p.create_time, p.seq) < (e.create_time, e.seq)")
	claimable := db.NewSelect().TableExpr("events AS e").
		Column("e.seq").
		Where("e.tenant_id = t.id").
		Where("e.state = 'pending'").
		Where("e.next_attempt_at <= ?", now).
		Where("(e.lease_expires_at IS NULL OR e.lease_expires_at < ?)", now).
		Where("(NOT t.ordered_delivery OR NOT EXISTS (?))", earlier).
		OrderExpr("e.next_attempt_at, e.seq").
		Limit(int64(c.PerTenant))
	picked := db.NewSelect().TableExpr("pt").
		Join("JOIN tenants AS t ON t.id = pt.id").
		Column("x.seq").
		OrderExpr("x.next_attempt_at, x.seq").
		Limit(int64(c.Limit))
	if pg {
		// LATERAL runs the subquery per tenant; its row locks are what
		// lets concurrent claims pass each other.
		claimable = claimable.Column("e.next_attempt_at").For("UPDATE OF e SKIP LOCKED")
		picked = picked.Join("CROSS JOIN LATERAL (?) AS x", claimable)
	} else {
		// SQLite has no LATERAL: the subquery correlated with t in the
		// join condition does the same, looked up by rowid.
		picked = picked.Join("JOIN events AS x ON x.seq IN (?)", claimable)
	}
	if len(c.Exclude) > 0 {
		picked = picked.Where("t.id NOT IN (?)", bun.In(c.Exclude))
	}

	// 3. Lease what was picked, if it is still claimable. MATERIALIZED
	// (PostgreSQL only; SQLite evaluates an IN list once anyway) runs the
	// locking step once, whatever plan the UPDATE gets.
	var rows []claimedRow
	err := db.NewUpdate().Table("events").
		WithRecursive("pt", pendingTenants).
		WithQuery(bun.NewWithQuery("picked", picked).Materialized()).
		Set("lease_owner = ?", c.Owner).
		Set("lease_expires_at = ?", c.LeaseUntil.UTC()).
		Where("seq IN (SELECT seq FROM picked)").
		Where("state = 'pending'").
		Where("(lease_expires_at IS NULL OR lease_expires_at < ?)", now).
		Returning("seq, id, tenant_id, payload, receive_time, next_attempt_at, attempt_count, retry_index").
		Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("claim due events: %w", err)
	}

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
		}
	}
	return jobs, nil
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
// aborted as a deadlock victim (see record).
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
	var err error
	for attempt := 1; ; attempt++ {
		err = s.db.bun.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			return record(ctx, tx, pg, recs)
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
}

// record stores recs in tx. It may run more than once.
func record(ctx context.Context, tx bun.Tx, pg bool, recs []outcomeRecord) error {
	// Which events still exist. On PostgreSQL this also locks them, in
	// id order, so that a tenant being deleted waits for this transaction
	// instead of removing an event between this look-up and the insert of
	// its attempt; SQLite's write lock, taken at BEGIN, does the same.
	ids := make([]string, 0, len(recs))
	for _, r := range recs {
		ids = append(ids, string(r.o.Job.EventID))
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	exists := make(map[string]bool, len(ids))
	for start := 0; start < len(ids); start += lookupChunkRows {
		var found []string
		q := tx.NewSelect().Model((*eventRow)(nil)).Column("id").
			Where("id IN (?)", bun.In(ids[start:min(start+lookupChunkRows, len(ids))])).
			OrderExpr("id")
		if pg {
			q = q.For("NO KEY UPDATE")
		}
		if err := q.Scan(ctx, &found); err != nil {
			return fmt.Errorf("find events: %w", err)
		}
		for _, id := range found {
			exists[id] = true
		}
	}

	attempts := make([]*attemptRow, 0, len(recs))
	for _, r := range recs {
		if exists[r.attempt.EventID] {
			attempts = append(attempts, r.attempt)
		}
	}
	for start := 0; start < len(attempts); start += appendChunkRows {
		chunk := attempts[start:min(start+appendChunkRows, len(attempts))]
		if _, err := tx.NewInsert().Model(&chunk).Exec(ctx); err != nil {
			return fmt.Errorf("insert attempts: %w", err)
		}
	}

	// A statement per event: each sets its own values, and only where the
	// lease is still the outcome's owner's.
	for _, r := range recs {
		if !exists[r.attempt.EventID] {
			continue
		}
		q := tx.NewUpdate().Model((*eventRow)(nil)).
			Set("state = ?", r.state).
			Set("attempt_count = attempt_count + 1").
			Set("retry_index = ?", r.o.RetryIndex).
			Set("lease_owner = NULL").
			Set("lease_expires_at = NULL").
			Where("id = ?", r.attempt.EventID).
			Where("tenant_id = ?", r.attempt.TenantID).
			Where("state = 'pending'").
			Where("lease_owner = ?", r.o.Owner)
		if r.o.State == relay.StatePending {
			q = q.Set("next_attempt_at = ?", r.o.NextAttemptAt.UTC())
		} else {
			q = q.Set("finished_at = ?", r.attempt.Time)
		}
		if _, err := q.Exec(ctx); err != nil {
			return fmt.Errorf("update event %s: %w", r.attempt.EventID, err)
		}
	}
	return nil
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
	switch {
	case r.Job == nil || r.Job.EventID == "":
		return fmt.Errorf("release event: no job: %w", relay.ErrInvalid)
	case r.Owner == "" || r.NextAttemptAt.IsZero():
		return fmt.Errorf("release event %s: no owner or no next attempt time: %w", r.Job.EventID, relay.ErrInvalid)
	}
	_, err := s.db.bun.NewUpdate().Model((*eventRow)(nil)).
		Set("next_attempt_at = ?", r.NextAttemptAt.UTC()).
		Set("lease_owner = NULL").
		Set("lease_expires_at = NULL").
		Where("id = ?", string(r.Job.EventID)).
		Where("tenant_id = ?", string(r.Job.TenantID)).
		Where("state = 'pending'").
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
	batch := s.db.bun.NewSelect().TableExpr("events").Column("seq").
		Where("state = ?", name).
		Where("finished_at < ?", cutoff).
		OrderExpr("finished_at").
		Limit(int64(limit))
	// The outer conditions repeat the batch's: on PostgreSQL, an event
	// redelivered after the batch was read is re-checked, and kept.
	res, err := s.db.bun.NewDelete().Model((*eventRow)(nil)).
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
