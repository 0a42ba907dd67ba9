// Package delivery hands stored events to tenants' webhooks: signed with
// Standard Webhooks, at least once, retried on a schedule, one tenant's
// failing endpoint never slowing another's.
package delivery

import (
	"context"
	"time"

	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/tenant"
)

// Job is a claimed event: the worker holding it has a lease on it until
// LeaseUntil, after which another worker may claim it again.
type Job struct {
	EventID      relay.EventID
	TenantID     tenant.ID
	Payload      []byte
	ReceiveTime  time.Time
	AttemptCount int // attempts made so far, across redeliveries
	// RetryIndex is the position in the retry schedule of this attempt:
	// 0 for the first, reset to 0 by a redelivery.
	RetryIndex int
	LeaseUntil time.Time
	// DueAt is when the event was due (its next_attempt_at as claimed):
	// what a release puts back for an event the dispatcher did not start.
	DueAt time.Time
}

// Claim asks for due events.
type Claim struct {
	Owner      string    // this worker pool: leases name it
	Now        time.Time // events with next_attempt_at <= Now are due
	LeaseUntil time.Time
	Limit      int // at most this many events in all
	// PerTenant caps the events of any one tenant in this claim, so that a
	// tenant with a large backlog cannot take every free worker.
	PerTenant int
	// Exclude lists tenants to skip: at their concurrency cap, or behind
	// an open circuit breaker.
	Exclude []tenant.ID
}

// Outcome is the result of one attempt, recorded with the event's next
// state in one transaction.
type Outcome struct {
	Job     *Job
	Owner   string
	Attempt relay.Attempt
	// State is StateDelivered, StatePending (retry at NextAttemptAt) or
	// StateFailed (the schedule ran out).
	State         relay.State
	NextAttemptAt time.Time
	RetryIndex    int // the schedule position of the next attempt
}

// Release gives a claimed event back without an attempt, due at
// NextAttemptAt: used when its endpoint's breaker is open or the worker is
// shutting down before it could try.
type Release struct {
	Job           *Job
	Owner         string
	NextAttemptAt time.Time
}

// Stats describe the backlog, for metrics.
type Stats struct {
	Pending       int
	OldestPending time.Time // zero when nothing is pending
}

// Store is what delivery needs from the database.
type Store interface {
	// ClaimDue leases due, pending, unleased (or lease-expired) events,
	// oldest first, fairly across tenants (at most c.PerTenant each). For
	// a tenant with ordered delivery an event is due only when no earlier
	// event (by CreateTime) of the same openid is still pending.
	ClaimDue(ctx context.Context, c Claim) ([]*Job, error)
	// Record stores a batch of outcomes in one transaction (one commit
	// for many attempts: delivery is as write-heavy as ingest). For each:
	// the attempt, and the event's next state if o.Owner still holds the
	// lease (otherwise only the attempt). Outcomes of deleted events are
	// skipped.
	Record(ctx context.Context, outcomes []Outcome) error
	// Release ends a lease without an attempt.
	Release(ctx context.Context, r Release) error
	// Redeliver makes an event pending and due at now, at the start of the
	// retry schedule, whatever its state. relay.ErrNotFound.
	Redeliver(ctx context.Context, tid tenant.ID, id relay.EventID, now time.Time) error
	// PruneEvents deletes up to limit events in state finished before
	// cutoff (delivered_at or last attempt), with their attempts, and
	// reports how many it deleted.
	PruneEvents(ctx context.Context, state relay.State, cutoff time.Time, limit int) (int, error)
	// Stats reports the pending backlog.
	Stats(ctx context.Context) (Stats, error)
}
