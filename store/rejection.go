package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/uptrace/bun"

	"github.com/wxrelay/wxrelay/relay/rejection"
	"github.com/wxrelay/wxrelay/tenant"
)

// RejectionStore keeps the runs of refused pushes (push_rejections), per
// tenant and cause: see relay/rejection.
type RejectionStore struct{ db *DB }

var _ rejection.Store = (*RejectionStore)(nil)

// NewRejectionStore returns a RejectionStore on db.
func NewRejectionStore(db *DB) *RejectionStore { return &RejectionStore{db: db} }

type rejectionRow struct {
	bun.BaseModel `bun:"table:push_rejections"`

	TenantID  string    `bun:"tenant_id,pk"`
	Cause     string    `bun:"cause,pk"`
	Count     int64     `bun:"count"`
	FirstTime time.Time `bun:"first_time"`
	LastTime  time.Time `bun:"last_time"`
}

// AddPushRejections implements rejection.Store, relaxed
// (appendForLiveTenants), in one statement. A stored run whose latest
// refusal is over rejection.Window before the earliest of counts is
// replaced by a new run.
func (s *RejectionStore) AddPushRejections(ctx context.Context, counts []rejection.Count) error {
	if len(counts) == 0 {
		return nil
	}
	earliest := counts[0].First
	for _, c := range counts {
		if c.First.Before(earliest) {
			earliest = c.First
		}
	}
	cutoff := earliest.Add(-rejection.Window).UTC()
	ids := distinct(counts, func(c rejection.Count) string { return string(c.Tenant) })
	err := s.db.appendForLiveTenants(ctx, ids, func(ctx context.Context, tx bun.Tx, live map[string]bool) error {
		rows := make([]rejectionRow, 0, len(counts))
		for _, c := range counts {
			if live[string(c.Tenant)] {
				rows = append(rows, rejectionRow{TenantID: string(c.Tenant), Cause: string(c.Cause), Count: c.N,
					FirstTime: c.First.UTC(), LastTime: c.Last.UTC()})
			}
		}
		if len(rows) == 0 {
			return nil
		}
		_, err := tx.NewInsert().Model(&rows).
			On("CONFLICT (tenant_id, cause) DO UPDATE").
			Set("count = CASE WHEN ?TableAlias.last_time < ? THEN EXCLUDED.count ELSE ?TableAlias.count + EXCLUDED.count END", cutoff).
			Set("first_time = CASE WHEN ?TableAlias.last_time < ? THEN EXCLUDED.first_time ELSE ?TableAlias.first_time END", cutoff).
			Set("last_time = CASE WHEN EXCLUDED.last_time > ?TableAlias.last_time THEN EXCLUDED.last_time ELSE ?TableAlias.last_time END").
			Exec(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("add push rejections: %w", err)
	}
	return nil
}

// PushRejections implements rejection.Store.
func (s *RejectionStore) PushRejections(ctx context.Context, tid tenant.ID, since time.Time) ([]rejection.Count, error) {
	m, err := pushRejectionsOf(ctx, s.db.bun, []string{string(tid)}, since)
	if err != nil {
		return nil, fmt.Errorf("push rejections of tenant %s: %w", tid, err)
	}
	return m[tid], nil
}

// pushRejectionsOf reads the runs of tenants ids whose latest refusal is
// after since, each tenant's in the order of rejection.Causes.
func pushRejectionsOf(ctx context.Context, db bun.IDB, ids []string, since time.Time) (map[tenant.ID][]rejection.Count, error) {
	var rows []rejectionRow
	err := db.NewSelect().Model(&rows).Where("tenant_id IN (?)", bun.List(ids)).
		Where("last_time > ?", since.UTC()).Scan(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[tenant.ID][]rejection.Count)
	for _, r := range rows {
		id := tenant.ID(r.TenantID)
		out[id] = append(out[id], rejection.Count{Tenant: id, Cause: rejection.Cause(r.Cause), N: r.Count,
			First: r.FirstTime.UTC(), Last: r.LastTime.UTC()})
	}
	for _, cs := range out {
		slices.SortFunc(cs, func(a, b rejection.Count) int {
			return slices.Index(rejection.Causes, a.Cause) - slices.Index(rejection.Causes, b.Cause)
		})
	}
	return out, nil
}

// PrunePushRejections deletes the runs whose latest refusal is before
// cutoff, and says how many.
func (s *RejectionStore) PrunePushRejections(ctx context.Context, cutoff time.Time) (int, error) {
	defer s.db.serialize()()
	res, err := s.db.bun.NewDelete().Table("push_rejections").Where("last_time < ?", cutoff.UTC()).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("prune push rejections: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}
