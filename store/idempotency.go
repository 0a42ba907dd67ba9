package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/wxrelay/wxrelay/relay/message"
	"github.com/wxrelay/wxrelay/tenant"
)

// IdempotencyStore keeps the idempotency keys of message sends in the
// idempotency_keys table. The primary key (tenant_id, idem_key) makes a
// reservation race-free on both engines: of concurrent reservations of one
// key, exactly one inserts its row.
//
// An expired row (older than the TTL) is taken over by the reservation of
// its key, in the same statement, and the others are deleted by the hourly
// job (PruneIdempotencyKeys, by idempotency_keys_created). Pruning the
// tenant's expired rows at every reservation, as this once did, scanned
// them without an index under the write turn: 28 ms a send at 200,000
// keys.
type IdempotencyStore struct {
	db *DB
}

var _ message.IdempotencyStore = (*IdempotencyStore)(nil)

// NewIdempotencyStore returns an IdempotencyStore on db.
func NewIdempotencyStore(db *DB) *IdempotencyStore { return &IdempotencyStore{db: db} }

type idempotencyRow struct {
	bun.BaseModel `bun:"table:idempotency_keys"`

	TenantID    string       `bun:"tenant_id,pk"`
	Key         string       `bun:"idem_key,pk"`
	Fingerprint string       `bun:"fingerprint"`
	State       string       `bun:"state"`
	GRPCCode    int32        `bun:"grpc_code"`
	Errcode     int          `bun:"errcode"`
	Errmsg      string       `bun:"errmsg"`
	Status      []byte       `bun:"status"`
	CreatedAt   time.Time    `bun:"created_at"`
	FinishedAt  bun.NullTime `bun:"finished_at"`
}

const (
	idemPending = "pending"
	idemDone    = "done"
)

// ReserveIdempotencyKey implements message.IdempotencyStore.
func (s *IdempotencyStore) ReserveIdempotencyKey(ctx context.Context, tid tenant.ID, key, fingerprint string, now time.Time, ttl time.Duration) (*message.Reservation, error) {
	defer s.db.serialize()()
	now = now.UTC()
	expired := now.Add(-ttl)
	// A few rounds: a row seen taken may be released or expire before we read it.
	for range 3 {
		// Inserted, or an expired row of the key taken over: one row
		// affected either way. A live row is left as it is.
		row := &idempotencyRow{TenantID: string(tid), Key: key, Fingerprint: fingerprint, State: idemPending, CreatedAt: now}
		res, err := s.db.bun.NewInsert().Model(row).
			On("CONFLICT (tenant_id, idem_key) DO UPDATE").
			Set("fingerprint = EXCLUDED.fingerprint, state = EXCLUDED.state, grpc_code = EXCLUDED.grpc_code, errcode = EXCLUDED.errcode").
			Set("errmsg = EXCLUDED.errmsg, status = EXCLUDED.status, created_at = EXCLUDED.created_at, finished_at = EXCLUDED.finished_at").
			Where("?TableAlias.created_at <= ?", expired).
			Exec(ctx)
		if isForeignKeyViolation(err) {
			return nil, fmt.Errorf("reserve idempotency key of tenant %s: %w", tid, tenant.ErrNotFound)
		} else if err != nil {
			return nil, fmt.Errorf("reserve idempotency key of tenant %s: %w", tid, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return nil, fmt.Errorf("reserve idempotency key of tenant %s: %w", tid, err)
		} else if n == 1 {
			return nil, nil
		}
		var got idempotencyRow
		err = s.db.bun.NewSelect().Model(&got).
			Where("tenant_id = ?", string(tid)).
			Where("idem_key = ?", key).
			Where("created_at > ?", expired).
			Scan(ctx)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("reserve idempotency key of tenant %s: %w", tid, err)
		}
		return &message.Reservation{
			Fingerprint: got.Fingerprint,
			Done:        got.State == idemDone,
			Outcome:     message.Outcome{Code: got.GRPCCode, Errcode: got.Errcode, Errmsg: got.Errmsg, Status: got.Status},
			CreatedAt:   got.CreatedAt,
		}, message.ErrKeyTaken
	}
	return nil, fmt.Errorf("reserve idempotency key of tenant %s: key kept changing under us", tid)
}

// FinishIdempotencyKey implements message.IdempotencyStore.
func (s *IdempotencyStore) FinishIdempotencyKey(ctx context.Context, tid tenant.ID, key string, o message.Outcome, now time.Time) error {
	defer s.db.serialize()()
	_, err := s.db.bun.NewUpdate().Model((*idempotencyRow)(nil)).
		Set("state = ?", idemDone).
		Set("grpc_code = ?", o.Code).
		Set("errcode = ?", o.Errcode).
		Set("errmsg = ?", o.Errmsg).
		Set("status = ?", o.Status).
		Set("finished_at = ?", now.UTC()).
		Where("tenant_id = ?", string(tid)).
		Where("idem_key = ?", key).
		Where("state = ?", idemPending).
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("finish idempotency key of tenant %s: %w", tid, err)
	}
	return nil
}

// ReleaseIdempotencyKey implements message.IdempotencyStore.
func (s *IdempotencyStore) ReleaseIdempotencyKey(ctx context.Context, tid tenant.ID, key string) error {
	defer s.db.serialize()()
	_, err := s.db.bun.NewDelete().Model((*idempotencyRow)(nil)).
		Where("tenant_id = ?", string(tid)).
		Where("idem_key = ?", key).
		Where("state = ?", idemPending).
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("release idempotency key of tenant %s: %w", tid, err)
	}
	return nil
}

// PruneIdempotencyKeys deletes up to limit keys created before cutoff:
// the hourly job's work, so that a reservation never has to.
func (s *IdempotencyStore) PruneIdempotencyKeys(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	defer s.db.serialize()()
	res, err := s.db.bun.NewDelete().Model((*idempotencyRow)(nil)).
		Where("(tenant_id, idem_key) IN (?)", s.db.bun.NewSelect().Model((*idempotencyRow)(nil)).
			Column("tenant_id", "idem_key").Where("created_at < ?", cutoff.UTC()).Limit(int64(limit))).
		Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("prune idempotency keys: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}
