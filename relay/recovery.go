package relay

import (
	"context"
	"time"

	"github.com/wxrelay/wxrelay/tenant"
)

// Recovery is a bulk redelivery: a tenant's events that failed, received
// since a time, queued for delivery again in the background, a batch at
// a time, so that a tenant back from a long outage is caught up with one
// request and the relay's other work goes on beside it.
type Recovery struct {
	ID          string
	TenantID    tenant.ID
	Since       time.Time
	RequestedBy string
	Done        bool
	// Total is how many failed events there were when it was asked for;
	// Recovered how many are queued again so far.
	Total, Recovered int64
	CreateTime       time.Time
	FinishTime       time.Time // zero while running
}

// RecoveryStore keeps recoveries and makes their progress;
// *store.RecoveryStore is one.
type RecoveryStore interface {
	// CreateRecovery starts a recovery of tid's failed events received
	// since since. tenant.ErrNotFound.
	CreateRecovery(ctx context.Context, tid tenant.ID, since time.Time, requestedBy string, now time.Time) (*Recovery, error)
	// Recovery returns one of tid's recoveries. ErrNotFound.
	Recovery(ctx context.Context, tid tenant.ID, id string) (*Recovery, error)
	// Recoveries returns tid's latest recoveries, newest first.
	Recoveries(ctx context.Context, tid tenant.ID, limit int) ([]*Recovery, error)
	// StepRecoveries advances the oldest running recovery by one bounded
	// batch and reports how many events it queued, and whether any
	// recovery was running.
	StepRecoveries(ctx context.Context, now time.Time) (queued int, running bool, err error)
}
