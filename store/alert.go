package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/uptrace/bun"

	"github.com/wxrelay/wxrelay/relay/alert"
	"github.com/wxrelay/wxrelay/relay/health"
	"github.com/wxrelay/wxrelay/tenant"
)

var _ alert.Store = (*HealthStore)(nil)

type reasonRow struct {
	bun.BaseModel `bun:"table:health_reasons"`

	TenantID string    `bun:"tenant_id,pk"`
	Kind     string    `bun:"kind,pk"`
	Since    time.Time `bun:"since"`
}

type alertRow struct {
	bun.BaseModel `bun:"table:health_alerts"`

	Seq           int64      `bun:"seq,pk,autoincrement"`
	ID            string     `bun:"id"`
	TenantID      string     `bun:"tenant_id"`
	CreatedAt     time.Time  `bun:"created_at"`
	Body          string     `bun:"body"`
	Attempts      int        `bun:"attempts"`
	NextAttemptAt time.Time  `bun:"next_attempt_at"`
	DeliveredAt   *time.Time `bun:"delivered_at"`
	AbandonedAt   *time.Time `bun:"abandoned_at"`
	LastError     string     `bun:"last_error"`
}

// Reconcile implements alert.Store, in one durable transaction. Each
// transition is claimed by the row it inserts or deletes: when another
// writer made it first, the insert conflicts or the delete finds nothing,
// and no alert is queued for it.
func (s *HealthStore) Reconcile(ctx context.Context, tid tenant.ID, current map[health.Kind]time.Time, now time.Time, body func(alert.Transition) ([]byte, error)) (int, error) {
	var had []reasonRow
	if err := s.db.bun.NewSelect().Model(&had).Where("tenant_id = ?", string(tid)).Scan(ctx); err != nil {
		return 0, fmt.Errorf("alerted reasons: %w", err)
	}
	var changes []alert.Transition
	for _, r := range had {
		if _, still := current[health.Kind(r.Kind)]; !still {
			changes = append(changes, alert.Transition{Tenant: tid, Kind: health.Kind(r.Kind), Since: r.Since.UTC(), At: now})
		}
	}
	for k, since := range current {
		if !slices.ContainsFunc(had, func(r reasonRow) bool { return r.Kind == string(k) }) {
			changes = append(changes, alert.Transition{Tenant: tid, Kind: k, Raised: true, Since: since.UTC(), At: now})
		}
	}
	if len(changes) == 0 {
		return 0, nil // the usual case: nothing written
	}
	// In the order of health.Kinds, cleared before raised: a receiver
	// reading them in order sees the tenant's reasons as they were.
	slices.SortStableFunc(changes, func(a, b alert.Transition) int {
		if a.Raised != b.Raised {
			if a.Raised {
				return 1
			}
			return -1
		}
		return slices.Index(health.Kinds, a.Kind) - slices.Index(health.Kinds, b.Kind)
	})
	defer s.db.serialize()()
	made := 0
	err := s.db.bun.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		made = 0
		for _, c := range changes {
			var res interface{ RowsAffected() (int64, error) }
			var err error
			if c.Raised {
				res, err = tx.NewInsert().Model(&reasonRow{TenantID: string(tid), Kind: string(c.Kind), Since: c.Since}).
					On("CONFLICT DO NOTHING").Exec(ctx)
			} else {
				res, err = tx.NewDelete().Model((*reasonRow)(nil)).
					Where("tenant_id = ?", string(tid)).Where("kind = ?", string(c.Kind)).Exec(ctx)
			}
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				continue // made by another writer, who alerted it
			}
			c.ID = alert.NewID(now)
			b, err := body(c)
			if err != nil {
				return err
			}
			row := alertRow{ID: c.ID, TenantID: string(tid), CreatedAt: now.UTC(), Body: string(b), NextAttemptAt: now.UTC()}
			if _, err := tx.NewInsert().Model(&row).ExcludeColumn("seq").Exec(ctx); err != nil {
				return err
			}
			made++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("record health transitions: %w", err)
	}
	return made, nil
}

// AlertedTenants implements alert.Store.
func (s *HealthStore) AlertedTenants(ctx context.Context) ([]tenant.ID, error) {
	var ids []tenant.ID
	err := s.db.bun.NewSelect().Model((*reasonRow)(nil)).Distinct().Column("tenant_id").Scan(ctx, &ids)
	return ids, err
}

// DueAlerts implements alert.Store.
func (s *HealthStore) DueAlerts(ctx context.Context, now time.Time, limit int) ([]alert.Alert, error) {
	var rows []alertRow
	err := s.db.bun.NewSelect().Model(&rows).
		Where("delivered_at IS NULL AND abandoned_at IS NULL").
		OrderExpr("seq").Limit(int64(limit)).Scan(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]alert.Alert, 0, len(rows))
	for _, r := range rows {
		if r.NextAttemptAt.After(now) {
			break // the queue waits for its head
		}
		out = append(out, alert.Alert{Seq: r.Seq, ID: r.ID, Tenant: tenant.ID(r.TenantID), Created: r.CreatedAt.UTC(), Body: []byte(r.Body), Attempts: r.Attempts})
	}
	return out, nil
}

// AlertDelivered implements alert.Store.
func (s *HealthStore) AlertDelivered(ctx context.Context, seq int64, now time.Time) error {
	defer s.db.serialize()()
	_, err := s.db.bun.NewUpdate().Model((*alertRow)(nil)).
		Set("delivered_at = ?", now.UTC()).Set("attempts = attempts + 1").Set("last_error = ''").
		Where("seq = ?", seq).Exec(ctx)
	return err
}

// AlertFailed implements alert.Store.
func (s *HealthStore) AlertFailed(ctx context.Context, seq int64, next time.Time, lastErr string, now time.Time) error {
	defer s.db.serialize()()
	q := s.db.bun.NewUpdate().Model((*alertRow)(nil)).Set("attempts = attempts + 1").Set("last_error = ?", lastErr).Where("seq = ?", seq)
	if next.IsZero() {
		q = q.Set("abandoned_at = ?", now.UTC())
	} else {
		q = q.Set("next_attempt_at = ?", next.UTC())
	}
	_, err := q.Exec(ctx)
	return err
}

// PruneAlerts deletes the delivered and abandoned alerts created before
// before.
func (s *HealthStore) PruneAlerts(ctx context.Context, before time.Time) (int64, error) {
	defer s.db.serialize()()
	res, err := s.db.bun.NewDelete().Model((*alertRow)(nil)).
		Where("delivered_at IS NOT NULL OR abandoned_at IS NOT NULL").Where("created_at < ?", before.UTC()).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("prune alerts: %w", err)
	}
	return res.RowsAffected()
}
