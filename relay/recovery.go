package relay

import (
	"context"
	"fmt"
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
	// since since. tenant.ErrNotFound; a *RecoveryRunningError while tid
	// has one running.
	CreateRecovery(ctx context.Context, tid tenant.ID, since time.Time, requestedBy string, now time.Time) (*Recovery, error)
	// Recovery returns one of tid's recoveries. ErrNotFound.
	Recovery(ctx context.Context, tid tenant.ID, id string) (*Recovery, error)
	// Recoveries returns tid's latest recoveries, newest first.
	Recoveries(ctx context.Context, tid tenant.ID, limit int) ([]*Recovery, error)
	// StepRecoveries advances the running recovery whose last step is the
	// oldest by one bounded batch, so that tenants' recoveries take turns,
	// and reports how many events it queued, and whether any recovery was
	// running.
	StepRecoveries(ctx context.Context, now time.Time) (queued int, running bool, err error)
}

// RecoveryRunningError is the answer to a recovery asked for while the
// tenant has one running: a tenant has one at a time, so that its
// requests cannot pile up work that other tenants' recoveries wait behind.
type RecoveryRunningError struct{ Running *Recovery }

func (e *RecoveryRunningError) Error() string {
	r := e.Running
	return fmt.Sprintf("recovery %s, of the failed events since %s, is still running (%d of %d queued again): "+
		"a tenant has one recovery at a time; follow it at recoveries/%s and ask again once it is done",
		r.ID, r.Since.Format(time.RFC3339), r.Recovered, r.Total, r.ID)
}

// Is makes errors.Is(err, tenant.ErrConflict) hold: the API answers 409.
func (e *RecoveryRunningError) Is(target error) bool { return target == tenant.ErrConflict }
