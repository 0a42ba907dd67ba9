package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/wxrelay/wxrelay/relay/calllog"
	"github.com/wxrelay/wxrelay/tenant"
)

// CallStore keeps the records of calls made through the WeChat-compatible
// API (relay/calllog) in api_calls.
type CallStore struct{ db *DB }

var _ calllog.Store = (*CallStore)(nil)

// NewCallStore returns a CallStore on db.
func NewCallStore(db *DB) *CallStore { return &CallStore{db: db} }

type callRow struct {
	bun.BaseModel `bun:"table:api_calls"`

	Seq        int64         `bun:"seq,pk,autoincrement"`
	TenantID   string        `bun:"tenant_id"`
	Time       time.Time     `bun:"time"`
	Method     string        `bun:"method"`
	Path       string        `bun:"path"`
	PathClass  string        `bun:"path_class"`
	HTTPStatus int           `bun:"http_status"`
	Errcode    sql.NullInt64 `bun:"errcode"`
	Errmsg     string        `bun:"errmsg"`
	DurationUS int64         `bun:"duration_us"`
	Retried    bool          `bun:"retried"`
}

// AppendCalls implements calllog.Store, relaxed (appendForLiveTenants).
func (s *CallStore) AppendCalls(ctx context.Context, calls []calllog.Call) error {
	if len(calls) == 0 {
		return nil
	}
	ids := distinct(calls, func(c calllog.Call) string { return string(c.TenantID) })
	if err := s.db.appendForLiveTenants(ctx, ids, func(ctx context.Context, tx bun.Tx, live map[string]bool) error {
		return appendCalls(ctx, tx, calls, live)
	}); err != nil {
		return fmt.Errorf("append call records: %w", err)
	}
	return nil
}

// appendCalls inserts the calls of the live tenants.
func appendCalls(ctx context.Context, tx bun.Tx, calls []calllog.Call, live map[string]bool) error {
	rows := make([]callRow, 0, len(calls))
	for _, c := range calls {
		if !live[string(c.TenantID)] {
			continue
		}
		r := callRow{
			TenantID: string(c.TenantID), Time: c.Time.UTC(), Method: c.Method, Path: c.Path, PathClass: c.PathClass,
			HTTPStatus: c.HTTPStatus, Errmsg: c.Errmsg, DurationUS: c.Duration.Microseconds(), Retried: c.Retried,
		}
		if c.HasErrcode {
			r.Errcode = sql.NullInt64{Int64: int64(c.Errcode), Valid: true}
		}
		rows = append(rows, r)
	}
	if len(rows) == 0 {
		return nil
	}
	_, err := tx.NewInsert().Model(&rows).ExcludeColumn("seq").Exec(ctx)
	return err
}

// ListCalls implements calllog.Store.
func (s *CallStore) ListCalls(ctx context.Context, tid tenant.ID, before int64, limit int) ([]calllog.Call, error) {
	var rows []callRow
	q := s.db.bun.NewSelect().Model(&rows).Where("tenant_id = ?", string(tid)).OrderExpr("seq DESC").Limit(int64(limit))
	if before > 0 {
		q = q.Where("seq < ?", before)
	}
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("list calls of tenant %s: %w", tid, err)
	}
	out := make([]calllog.Call, len(rows))
	for i, r := range rows {
		out[i] = calllog.Call{
			Seq: r.Seq, TenantID: tenant.ID(r.TenantID), Time: r.Time.UTC(), Method: r.Method, Path: r.Path,
			PathClass: r.PathClass, HTTPStatus: r.HTTPStatus, Errcode: int(r.Errcode.Int64), HasErrcode: r.Errcode.Valid,
			Errmsg: r.Errmsg, Duration: time.Duration(r.DurationUS) * time.Microsecond, Retried: r.Retried,
		}
	}
	return out, nil
}

// PruneCalls implements calllog.Store.
func (s *CallStore) PruneCalls(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	defer s.db.serialize()()
	res, err := s.db.bun.NewDelete().Table("api_calls").
		Where("seq IN (?)", s.db.bun.NewSelect().Table("api_calls").Column("seq").Where("time < ?", cutoff.UTC()).OrderExpr("seq").Limit(int64(limit))).
		Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("prune call records: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}
