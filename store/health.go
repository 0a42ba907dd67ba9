package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/wxrelay/wxrelay/relay/health"
	"github.com/wxrelay/wxrelay/tenant"
)

// HealthStore reads the facts of tenants' health (relay/health) and keeps
// the reasons the operator was last told of, with the alerts that tell
// them.
type HealthStore struct{ db *DB }

// NewHealthStore returns a HealthStore on db.
func NewHealthStore(db *DB) *HealthStore { return &HealthStore{db: db} }

// streakScan bounds how many of a tenant's latest attempts are read to
// count its webhook's run of failures: past it the run is "at least" that.
const streakScan = 50

// HealthFacts implements health.FactStore: the store's part of the facts
// (the keeper's status is the checker's to add), each from an index.
func (s *HealthStore) HealthFacts(ctx context.Context, tid tenant.ID, now time.Time) (health.Facts, error) {
	var f health.Facts
	db := s.db.bun
	var attempts []struct {
		Time       time.Time `bun:"time"`
		HTTPStatus int       `bun:"http_status"`
		ErrorClass string    `bun:"error_class"`
		Error      string    `bun:"error"`
	}
	err := db.NewSelect().Table("attempts").Column("time", "http_status", "error_class", "error").
		Where("tenant_id = ?", string(tid)).OrderExpr("seq DESC").Limit(streakScan).Scan(ctx, &attempts)
	if err != nil {
		return f, fmt.Errorf("health of tenant %s: attempts: %w", tid, err)
	}
	for i, a := range attempts {
		if a.ErrorClass == "" {
			break
		}
		if i == 0 {
			f.LastHTTPStatus, f.LastErrorClass, f.LastError = a.HTTPStatus, a.ErrorClass, a.Error
		}
		f.ConsecutiveFailures++
		f.FailingSince = a.Time.UTC()
	}

	n, err := db.NewSelect().Table("events").Where("tenant_id = ?", string(tid)).Where("state = 'pending'").Count(ctx)
	if err != nil {
		return f, fmt.Errorf("health of tenant %s: backlog: %w", tid, err)
	}
	f.Pending = int(n)
	if n > 0 {
		// ORDER BY and LIMIT rather than min(), which SQLite answers as text.
		err = db.NewSelect().Table("events").Column("receive_time").
			Where("tenant_id = ?", string(tid)).Where("state = 'pending'").
			OrderExpr("receive_time").Limit(1).Scan(ctx, &f.OldestPending)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return f, fmt.Errorf("health of tenant %s: oldest pending: %w", tid, err)
		}
		f.OldestPending = f.OldestPending.UTC()
	}

	err = db.NewSelect().Table("events").Column("receive_time").
		Where("tenant_id = ?", string(tid)).OrderExpr("seq DESC").Limit(1).Scan(ctx, &f.LastPush)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return f, fmt.Errorf("health of tenant %s: last push: %w", tid, err)
	}
	f.LastPush = f.LastPush.UTC()

	var sends struct {
		Sends    int `bun:"sends"`
		Refusals int `bun:"refusals"`
	}
	err = db.NewSelect().Table("api_calls").
		ColumnExpr("count(*) AS sends").
		ColumnExpr("coalesce(sum(CASE WHEN errcode IN (45015, 45047) THEN 1 ELSE 0 END), 0) AS refusals").
		Where("tenant_id = ?", string(tid)).Where("path_class = 'send'").
		Where("time >= ?", now.Add(-health.RefusalWindow).UTC()).
		Scan(ctx, &sends)
	if err != nil {
		return f, fmt.Errorf("health of tenant %s: sends: %w", tid, err)
	}
	f.Sends, f.Refusals = sends.Sends, sends.Refusals
	return f, nil
}
