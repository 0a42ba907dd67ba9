package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/tenant"
)

// RecoveryStore keeps bulk recoveries (relay.Recovery) in recoveries.
type RecoveryStore struct{ db *DB }

var _ relay.RecoveryStore = (*RecoveryStore)(nil)

// NewRecoveryStore returns a RecoveryStore on db.
func NewRecoveryStore(db *DB) *RecoveryStore { return &RecoveryStore{db: db} }

// recoveryScan is how many of a tenant's events, in seq order, one step
// looks at: a step's read is bounded whatever the tenant's history, and
// its write (the failed ones among them) is one short transaction.
const recoveryScan = 2000

type recoveryRow struct {
	bun.BaseModel `bun:"table:recoveries"`

	ID          string    `bun:"id,pk"`
	TenantID    string    `bun:"tenant_id"`
	Since       time.Time `bun:"since"`
	RequestedBy string    `bun:"requested_by"`
	State       string    `bun:"state"`
	Total       int64     `bun:"total"`
	Recovered   int64     `bun:"recovered"`
	LastSeq     int64     `bun:"last_seq"`
	CreateTime  time.Time `bun:"create_time"`
	FinishTime  time.Time `bun:"finish_time,nullzero"`
	// StepTime is when it last took a step (its creation before the
	// first): running recoveries take turns in its order.
	StepTime time.Time `bun:"step_time"`
}

func (r *recoveryRow) toDomain() *relay.Recovery {
	return &relay.Recovery{ID: r.ID, TenantID: tenant.ID(r.TenantID), Since: r.Since.UTC(), RequestedBy: r.RequestedBy,
		Done: r.State == "done", Total: r.Total, Recovered: r.Recovered, CreateTime: r.CreateTime.UTC(), FinishTime: r.FinishTime.UTC()}
}

// CreateRecovery implements relay.RecoveryStore. Its total is counted now,
// by a read that holds no write lock, once it is known that the tenant
// has no recovery running; the partial unique index
// recoveries_one_running settles a race between replicas.
func (s *RecoveryStore) CreateRecovery(ctx context.Context, tid tenant.ID, since time.Time, requestedBy string, now time.Time) (*relay.Recovery, error) {
	if err := s.refuseIfRunning(ctx, tid); err != nil {
		return nil, err
	}
	total, err := s.db.bun.NewSelect().Table("events").Where("tenant_id = ?", string(tid)).
		Where("state = 'failed'").Where("receive_time >= ?", since.UTC()).Count(ctx)
	if err != nil {
		return nil, fmt.Errorf("recover failed events of tenant %s: count: %w", tid, err)
	}
	created := now.UTC().Truncate(time.Microsecond)
	row := &recoveryRow{ID: "rcv_" + rand.Text()[:16], TenantID: string(tid), Since: since.UTC(), RequestedBy: requestedBy,
		State: "running", Total: int64(total), CreateTime: created, StepTime: created}
	if total == 0 {
		row.State, row.FinishTime = "done", row.CreateTime
	}
	defer s.db.serialize()()
	_, err = s.db.bun.NewInsert().Model(row).Exec(ctx)
	switch {
	case isForeignKeyViolation(err):
		return nil, fmt.Errorf("recover failed events of tenant %s: %w", tid, tenant.ErrNotFound)
	case isUniqueViolation(err):
		if err := s.refuseIfRunning(ctx, tid); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("recover failed events of tenant %s: %w", tid, err)
	case err != nil:
		return nil, fmt.Errorf("recover failed events of tenant %s: %w", tid, err)
	}
	return row.toDomain(), nil
}

// refuseIfRunning answers a *relay.RecoveryRunningError if tid has a
// recovery running.
func (s *RecoveryStore) refuseIfRunning(ctx context.Context, tid tenant.ID) error {
	var running recoveryRow
	err := s.db.bun.NewSelect().Model(&running).Where("tenant_id = ?", string(tid)).Where("state = 'running'").Limit(1).Scan(ctx)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("recover failed events of tenant %s: %w", tid, err)
	}
	return &relay.RecoveryRunningError{Running: running.toDomain()}
}

// Recovery implements relay.RecoveryStore.
func (s *RecoveryStore) Recovery(ctx context.Context, tid tenant.ID, id string) (*relay.Recovery, error) {
	var row recoveryRow
	err := s.db.bun.NewSelect().Model(&row).Where("tenant_id = ?", string(tid)).Where("id = ?", id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("recovery %s of tenant %s: %w", id, tid, relay.ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("recovery %s of tenant %s: %w", id, tid, err)
	}
	return row.toDomain(), nil
}

// Recoveries implements relay.RecoveryStore.
func (s *RecoveryStore) Recoveries(ctx context.Context, tid tenant.ID, limit int) ([]*relay.Recovery, error) {
	var rows []recoveryRow
	err := s.db.bun.NewSelect().Model(&rows).Where("tenant_id = ?", string(tid)).
		OrderExpr("create_time DESC").Limit(int64(limit)).Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("recoveries of tenant %s: %w", tid, err)
	}
	out := make([]*relay.Recovery, len(rows))
	for i := range rows {
		out[i] = rows[i].toDomain()
	}
	return out, nil
}

// StepRecoveries implements relay.RecoveryStore: the running recovery
// that stepped longest ago (tenants take turns, one recovery each) looks at the next recoveryScan events of its tenant, read
// outside the write lock, and queues the failed ones among them in one
// short transaction, as Redeliver queues one; it is done once the scan
// reaches the tenant's newest event. An event that changed meanwhile (a
// redelivery of its own) is left as it is.
func (s *RecoveryStore) StepRecoveries(ctx context.Context, now time.Time) (int, bool, error) {
	var r recoveryRow
	err := s.db.bun.NewSelect().Model(&r).Where("state = 'running'").OrderExpr("step_time, id").Limit(1).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	} else if err != nil {
		return 0, false, fmt.Errorf("step recoveries: %w", err)
	}
	var events []struct {
		Seq         int64     `bun:"seq"`
		State       string    `bun:"state"`
		ReceiveTime time.Time `bun:"receive_time"`
	}
	err = s.db.bun.NewSelect().Table("events").Column("seq", "state", "receive_time").
		Where("tenant_id = ?", r.TenantID).Where("seq > ?", r.LastSeq).
		OrderExpr("seq").Limit(recoveryScan).Scan(ctx, &events)
	if err != nil {
		return 0, true, fmt.Errorf("recovery %s: scan: %w", r.ID, err)
	}
	var due []int64
	last := r.LastSeq
	for _, e := range events {
		last = e.Seq
		if e.State == "failed" && !e.ReceiveTime.Before(r.Since) {
			due = append(due, e.Seq)
		}
	}
	done := len(events) < recoveryScan
	defer s.db.serialize()()
	queued := 0
	err = s.db.bun.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if len(due) > 0 {
			res, err := tx.NewUpdate().Model((*eventRow)(nil)).
				Set("state = 'pending'").Set("retry_index = 0").Set("next_attempt_at = ?", now.UTC()).
				Set("lease_owner = NULL").Set("lease_expires_at = NULL").Set("finished_at = NULL").
				Set("ordered = (SELECT t.ordered_delivery FROM tenants AS t WHERE t.id = ?)", r.TenantID).
				Where("seq IN (?)", bun.List(due)).Where("state = 'failed'").
				Exec(ctx)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			queued = int(n)
		}
		q := tx.NewUpdate().Model((*recoveryRow)(nil)).
			Set("recovered = recovered + ?", queued).Set("last_seq = ?", last).Set("step_time = ?", now.UTC()).
			Where("id = ?", r.ID).Where("state = 'running'").Where("last_seq = ?", r.LastSeq)
		if done {
			q = q.Set("state = 'done'").Set("finish_time = ?", now.UTC())
		}
		res, err := q.Exec(ctx)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			// Another replica stepped it meanwhile: undo this step's
			// queueing, which that one counts.
			return errStepTaken
		}
		return nil
	})
	if errors.Is(err, errStepTaken) {
		return 0, true, nil
	}
	if err != nil {
		return 0, true, fmt.Errorf("recovery %s: queue: %w", r.ID, err)
	}
	return queued, true, nil
}

var errStepTaken = errors.New("recovery stepped by another replica")
