package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

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
// Claims, outcomes and releases commit without waiting for the disk
// (DB.relaxed): a crash may forget the last of them, and then an event is
// attempted again under the same webhook-id, which at-least-once delivery
// allows. Each of them would otherwise cost an fsync per transaction, three
// per event with ingest, and the disk would set the delivery rate.
// Redelivery, asked for by a person, is durable, and so is pruning: a
// relaxed delete of a batch of events left its WAL pages for the next
// durable commit, a push's, to sync (each batch is paced by relay/pace
// and pays its own fsync instead).
type DeliveryStore struct {
	db     *DB
	engine deliveryEngine
}

var _ delivery.Store = (*DeliveryStore)(nil)

// NewDeliveryStore returns a DeliveryStore on db.
func NewDeliveryStore(db *DB) *DeliveryStore {
	s := &DeliveryStore{db: db}
	if db.Dialect() == "pg" {
		s.engine = &pgDelivery{db: db}
	} else {
		s.engine = &sqliteDelivery{db: db}
	}
	return s
}

// deliveryEngine is what the engines do their own way: claims and records
// are the delivery's hot path, and each engine's fastest SQL differs
// (PostgreSQL's LATERAL and row locks, SQLite's prepared statements run
// per row), so each has a file of its own, delivery_pg.go and
// delivery_sqlite.go. Everything else about delivery is written once here,
// and the conformance tests (storetest.Each) run every method on both.
type deliveryEngine interface {
	// claim is ClaimDue's work, c validated and the write turn held.
	claim(ctx context.Context, c delivery.Claim) ([]*delivery.Job, error)
	// record stores recs, validated, the write turn held.
	record(ctx context.Context, recs []outcomeRecord) error
}

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
	return s.engine.claim(ctx, c)
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
	if err := s.engine.record(ctx, recs); err != nil {
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
