package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/wxrelay/wxrelay/tenant"
)

// OperatorStore keeps operators (tenant.Operator) in operators.
type OperatorStore struct{ db *DB }

var _ tenant.OperatorStore = (*OperatorStore)(nil)

// NewOperatorStore returns an OperatorStore on db.
func NewOperatorStore(db *DB) *OperatorStore { return &OperatorStore{db: db} }

type operatorRow struct {
	bun.BaseModel `bun:"table:operators"`

	ID         string    `bun:"id,pk"`
	Name       string    `bun:"name"`
	Role       string    `bun:"role"`
	KeyHash    []byte    `bun:"key_hash"`
	CreateTime time.Time `bun:"create_time"`
	CreatedBy  string    `bun:"created_by"`
}

func (r *operatorRow) toDomain() *tenant.Operator {
	return &tenant.Operator{ID: tenant.OperatorID(r.ID), Name: r.Name, Role: tenant.OperatorRole(r.Role), KeyHash: r.KeyHash,
		CreateTime: r.CreateTime.UTC(), CreatedBy: r.CreatedBy}
}

// CreateOperator implements tenant.OperatorStore.
func (s *OperatorStore) CreateOperator(ctx context.Context, o *tenant.Operator) error {
	defer s.db.serialize()()
	row := &operatorRow{ID: string(o.ID), Name: o.Name, Role: string(o.Role), KeyHash: o.KeyHash, CreateTime: o.CreateTime.UTC(), CreatedBy: o.CreatedBy}
	_, err := s.db.bun.NewInsert().Model(row).Exec(ctx)
	if isUniqueViolation(err) {
		return &tenant.ConflictError{Msg: fmt.Sprintf("an operator is already named %q", o.Name)}
	}
	if err != nil {
		return fmt.Errorf("create operator: %w", err)
	}
	return nil
}

// Operators implements tenant.OperatorStore.
func (s *OperatorStore) Operators(ctx context.Context) ([]*tenant.Operator, error) {
	var rows []operatorRow
	if err := s.db.bun.NewSelect().Model(&rows).OrderExpr("lower(name)").Scan(ctx); err != nil {
		return nil, fmt.Errorf("list operators: %w", err)
	}
	out := make([]*tenant.Operator, len(rows))
	for i := range rows {
		out[i] = rows[i].toDomain()
		out[i].KeyHash = nil // not for listings
	}
	return out, nil
}

// DeleteOperator implements tenant.OperatorStore. The operator's console
// sessions end with it: each request of a session checks its key.
func (s *OperatorStore) DeleteOperator(ctx context.Context, id tenant.OperatorID) error {
	defer s.db.serialize()()
	res, err := s.db.bun.NewDelete().Model((*operatorRow)(nil)).Where("id = ?", string(id)).Exec(ctx)
	if err != nil {
		return fmt.Errorf("delete operator %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("delete operator %s: %w", id, tenant.ErrOperatorNotFound)
	}
	return nil
}

// Operator implements tenant.OperatorStore.
func (s *OperatorStore) Operator(ctx context.Context, id tenant.OperatorID) (*tenant.Operator, error) {
	var row operatorRow
	err := s.db.bun.NewSelect().Model(&row).Where("id = ?", string(id)).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("operator %s: %w", id, tenant.ErrOperatorNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("operator %s: %w", id, err)
	}
	return row.toDomain(), nil
}

// SetOperatorKey implements tenant.OperatorStore.
func (s *OperatorStore) SetOperatorKey(ctx context.Context, id tenant.OperatorID, keyHash []byte) (*tenant.Operator, error) {
	defer s.db.serialize()()
	var row operatorRow
	err := s.db.bun.NewUpdate().Model(&row).Set("key_hash = ?", keyHash).Where("id = ?", string(id)).
		Returning("id, name, role, create_time, created_by").Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("operator %s: %w", id, tenant.ErrOperatorNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("operator %s: new key: %w", id, err)
	}
	return row.toDomain(), nil
}

// AuditStore keeps the audit log (tenant.AuditEntry) in audit_log.
type AuditStore struct{ db *DB }

var _ tenant.AuditStore = (*AuditStore)(nil)

// NewAuditStore returns an AuditStore on db.
func NewAuditStore(db *DB) *AuditStore { return &AuditStore{db: db} }

type auditRow struct {
	bun.BaseModel `bun:"table:audit_log"`

	Seq    int64     `bun:"seq,pk,autoincrement"`
	Time   time.Time `bun:"time"`
	Actor  string    `bun:"actor"`
	Method string    `bun:"method"`
	Target string    `bun:"target"`
	Detail string    `bun:"detail"`
	Code   string    `bun:"code"`
}

// AppendAudit implements tenant.AuditStore, durably: the log answers for
// changes that are.
func (s *AuditStore) AppendAudit(ctx context.Context, e tenant.AuditEntry) (int64, error) {
	defer s.db.serialize()()
	row := &auditRow{Time: e.Time.UTC().Truncate(time.Microsecond), Actor: e.Actor, Method: e.Method, Target: e.Target, Detail: e.Detail, Code: e.Code}
	if err := s.db.bun.NewInsert().Model(row).ExcludeColumn("seq").Returning("seq").Scan(ctx); err != nil {
		return 0, fmt.Errorf("append audit entry: %w", err)
	}
	return row.Seq, nil
}

// FinishAudit implements tenant.AuditStore.
func (s *AuditStore) FinishAudit(ctx context.Context, seq int64, target, detail, code string) error {
	defer s.db.serialize()()
	res, err := s.db.bun.NewUpdate().Model((*auditRow)(nil)).Set("target = ?", target).Set("detail = ?", detail).Set("code = ?", code).
		Where("seq = ?", seq).Exec(ctx)
	if err != nil {
		return fmt.Errorf("finish audit entry %d: %w", seq, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("finish audit entry %d: %w", seq, tenant.ErrNotFound)
	}
	return nil
}

// AuditEntries implements tenant.AuditStore.
func (s *AuditStore) AuditEntries(ctx context.Context, before int64, limit int) ([]tenant.AuditEntry, error) {
	var rows []auditRow
	q := s.db.bun.NewSelect().Model(&rows).OrderExpr("seq DESC").Limit(int64(limit))
	if before > 0 {
		q = q.Where("seq < ?", before)
	}
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("list audit entries: %w", err)
	}
	out := make([]tenant.AuditEntry, len(rows))
	for i, r := range rows {
		out[i] = tenant.AuditEntry{Seq: r.Seq, Time: r.Time.UTC(), Actor: r.Actor, Method: r.Method, Target: r.Target, Detail: r.Detail, Code: r.Code}
	}
	return out, nil
}

// PruneAudit deletes the entries older than cutoff and says how many.
func (s *AuditStore) PruneAudit(ctx context.Context, cutoff time.Time) (int, error) {
	defer s.db.serialize()()
	res, err := s.db.bun.NewDelete().Table("audit_log").Where("time < ?", cutoff.UTC()).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("prune audit log: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}
