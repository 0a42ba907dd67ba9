package store

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/wxrelay/wxrelay/tenant"
)

// NonceStore remembers the query signatures of plaintext pushes
// (push_nonces), so that one signs one push: see relay/ingress.
type NonceStore struct{ db *DB }

// NewNonceStore returns a NonceStore on db.
func NewNonceStore(db *DB) *NonceStore { return &NonceStore{db: db} }

type nonceRow struct {
	bun.BaseModel `bun:"table:push_nonces"`

	TenantID  string    `bun:"tenant_id,pk"`
	Signature string    `bun:"signature,pk"`
	Digest    []byte    `bun:"body_sha256"`
	ExpiresAt time.Time `bun:"expires_at"`
}

// ClaimNonce records that signature, tenant tid's, signed the body whose
// SHA-256 is digest, until until; ok is false if it signed another body
// already. A signature that expired is claimed afresh. It commits on the
// relaxed pool: what it guards against is a replay within minutes, and a
// crash of the process, not of the machine, keeps it.
//
// It runs on the push path, so it waits for the SQLite write turn only as
// long as the push may (ctx), as ingest's commit does.
func (s *NonceStore) ClaimNonce(ctx context.Context, tid tenant.ID, signature string, digest []byte, now, until time.Time) (ok bool, err error) {
	release, err := s.db.writeTurn(ctx)
	if err != nil {
		return false, fmt.Errorf("claim push nonce: %w", err)
	}
	defer release()
	row := &nonceRow{TenantID: string(tid), Signature: signature, Digest: digest, ExpiresAt: until.UTC()}
	err = s.db.relaxed.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		// Refresh a row whose time is over; keep a live one as it is.
		_, err := tx.NewInsert().Model(row).
			On("CONFLICT (tenant_id, signature) DO UPDATE").
			Set("body_sha256 = EXCLUDED.body_sha256, expires_at = EXCLUDED.expires_at").
			Where("?TableAlias.expires_at < ?", now.UTC()).
			Exec(ctx)
		if err != nil {
			return err
		}
		var stored nonceRow
		if err := tx.NewSelect().Model(&stored).Column("body_sha256").
			Where("tenant_id = ? AND signature = ?", string(tid), signature).Scan(ctx); err != nil {
			return err
		}
		ok = bytes.Equal(stored.Digest, digest)
		return nil
	})
	if isForeignKeyViolation(err) {
		return false, fmt.Errorf("claim push nonce: %w", tenant.ErrNotFound)
	}
	if err != nil {
		return false, fmt.Errorf("claim push nonce: %w", err)
	}
	return ok, nil
}

// PruneNonces deletes up to limit signatures that expired before now.
func (s *NonceStore) PruneNonces(ctx context.Context, now time.Time, limit int) (int, error) {
	defer s.db.serialize()()
	res, err := s.db.bun.NewDelete().Table("push_nonces").
		Where("(tenant_id, signature) IN (?)", s.db.bun.NewSelect().Table("push_nonces").
			Column("tenant_id", "signature").Where("expires_at < ?", now.UTC()).Limit(int64(limit))).
		Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("prune push nonces: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}
