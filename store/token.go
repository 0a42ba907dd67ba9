package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/wxrelay/wxrelay/relay/token"
	"github.com/wxrelay/wxrelay/tenant"
)

// TokenStore keeps tenants' access tokens for relay/token in the tokens
// table, sealed, with the lease that lets one process at a time fetch a
// tenant's token.
type TokenStore struct {
	db *DB
}

var _ token.Store = (*TokenStore)(nil)

// NewTokenStore returns a TokenStore on db.
func NewTokenStore(db *DB) *TokenStore { return &TokenStore{db: db} }

// colToken names the sealed column in its additional data.
const colToken = "tokens.sealed_token"

// FindToken returns tid's token state with the token opened.
// token.ErrNotFound.
func (s *TokenStore) FindToken(ctx context.Context, tid tenant.ID) (*token.State, error) {
	var row tokenRow
	err := s.db.bun.NewSelect().Model(&row).Where("tenant_id = ?", string(tid)).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("find token of tenant %s: %w", tid, token.ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("find token of tenant %s: %w", tid, err)
	}
	st, err := row.toDomain(s.db.sealer)
	if err != nil {
		return nil, fmt.Errorf("find token of tenant %s: %w", tid, err)
	}
	return st, nil
}

// AcquireTokenLease makes owner the holder of tid's refresh lease until
// until, if it is free, expired at now, or owner's already, and reports
// whether it did. It is one upsert, which both engines run atomically: no
// row affected means another owner holds the lease. tenant.ErrNotFound.
func (s *TokenStore) AcquireTokenLease(ctx context.Context, tid tenant.ID, owner string, now, until time.Time) (bool, error) {
	defer s.db.serialize()()
	now, until = now.UTC(), until.UTC()
	res, err := s.db.bun.ExecContext(ctx, `INSERT INTO tokens (tenant_id, due_at, lease_owner, lease_until)
VALUES (?, ?, ?, ?)
ON CONFLICT (tenant_id) DO UPDATE SET lease_owner = excluded.lease_owner, lease_until = excluded.lease_until
WHERE tokens.lease_owner = excluded.lease_owner OR tokens.lease_until IS NULL OR tokens.lease_until <= ?`,
		string(tid), now, owner, until, now)
	if isForeignKeyViolation(err) {
		return false, fmt.Errorf("acquire token lease of tenant %s: %w", tid, tenant.ErrNotFound)
	} else if err != nil {
		return false, fmt.Errorf("acquire token lease of tenant %s: %w", tid, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("acquire token lease of tenant %s: %w", tid, err)
	}
	return n == 1, nil
}

// SaveToken stores st, sealing its token, and releases owner's lease.
// token.ErrLeaseLost if owner does not hold the lease.
func (s *TokenStore) SaveToken(ctx context.Context, tid tenant.ID, owner string, st *token.State) error {
	defer s.db.serialize()()
	row, err := tokenFromDomain(tid, st, s.db.sealer)
	if err != nil {
		return fmt.Errorf("save token of tenant %s: %w", tid, err)
	}
	res, err := s.db.bun.NewUpdate().Model(row).
		ExcludeColumn("tenant_id").
		Where("tenant_id = ?", string(tid)).
		Where("lease_owner = ?", owner).
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("save token of tenant %s: %w", tid, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("save token of tenant %s: %w", tid, err)
	} else if n == 0 {
		return fmt.Errorf("save token of tenant %s: %w", tid, token.ErrLeaseLost)
	}
	return nil
}

// ReleaseTokenLease frees tid's lease if owner holds it.
func (s *TokenStore) ReleaseTokenLease(ctx context.Context, tid tenant.ID, owner string) error {
	defer s.db.serialize()()
	_, err := s.db.bun.NewUpdate().Model((*tokenRow)(nil)).
		Set("lease_owner = ''").
		Set("lease_until = NULL").
		Where("tenant_id = ?", string(tid)).
		Where("lease_owner = ?", owner).
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("release token lease of tenant %s: %w", tid, err)
	}
	return nil
}

// DueTokens returns up to limit active tenants, in id order, whose token
// is due at now: never fetched, or due_at passed, and not leased.
func (s *TokenStore) DueTokens(ctx context.Context, now time.Time, limit int) ([]tenant.ID, error) {
	now = now.UTC()
	var ids []string
	err := s.db.bun.NewSelect().
		TableExpr("tenants AS t").
		ColumnExpr("t.id").
		Join("LEFT JOIN tokens AS k ON k.tenant_id = t.id").
		Where("t.state = 'active'").
		// A component's tenant has an authorizer token, not one of these.
		Where("t.component_id IS NULL").
		Where("(k.tenant_id IS NULL OR (k.due_at <= ? AND (k.lease_until IS NULL OR k.lease_until <= ?)))", now, now).
		OrderExpr("t.id ASC").
		Limit(int64(limit)).
		Scan(ctx, &ids)
	if err != nil {
		return nil, fmt.Errorf("find due tokens: %w", err)
	}
	tids := make([]tenant.ID, len(ids))
	for i, id := range ids {
		tids[i] = tenant.ID(id)
	}
	return tids, nil
}

// tokenRow is a row of the tokens table. Zero times are NULL.
type tokenRow struct {
	bun.BaseModel `bun:"table:tokens,alias:k"`

	TenantID      string    `bun:"tenant_id,pk"`
	AppID         string    `bun:"appid"`
	Endpoint      string    `bun:"endpoint"`
	SealedToken   []byte    `bun:"sealed_token,nullzero"`
	ExpiresAt     time.Time `bun:"expires_at,nullzero"`
	RefreshedAt   time.Time `bun:"refreshed_at,nullzero"`
	DueAt         time.Time `bun:"due_at"`
	TenantVersion int64     `bun:"tenant_version"`
	Failures      int       `bun:"failures"`
	LastError     string    `bun:"last_error"`
	LastErrcode   int       `bun:"last_errcode"`
	LastErrorAt   time.Time `bun:"last_error_at,nullzero"`
	ForcedDay     string    `bun:"forced_day"`
	ForcedCount   int       `bun:"forced_count"`
	ForcedAt      time.Time `bun:"forced_at,nullzero"`
	LeaseOwner    string    `bun:"lease_owner"`
	LeaseUntil    time.Time `bun:"lease_until,nullzero"`
}

// Stored names of the token endpoints.
var tokenEndpoints = enum[tenant.TokenEndpoint]{
	{tenant.TokenStable, "stable"},
	{tenant.TokenClassic, "classic"},
}

// tokenFromDomain converts st for saving: the token sealed, the lease free.
func tokenFromDomain(tid tenant.ID, st *token.State, sl *sealer) (*tokenRow, error) {
	row := &tokenRow{
		TenantID:      string(tid),
		AppID:         st.AppID,
		ExpiresAt:     st.ExpiresAt.UTC(),
		RefreshedAt:   st.RefreshedAt.UTC(),
		DueAt:         st.DueAt.UTC(),
		TenantVersion: st.TenantVersion,
		Failures:      st.Failures,
		LastError:     st.LastError,
		LastErrcode:   st.LastErrcode,
		LastErrorAt:   st.LastErrorAt.UTC(),
		ForcedDay:     st.ForcedDay,
		ForcedCount:   st.ForcedCount,
		ForcedAt:      st.ForcedAt.UTC(),
	}
	if st.Endpoint != tenant.TokenEndpointUnspecified {
		ep, err := tokenEndpoints.encode("tokens.endpoint", st.Endpoint)
		if err != nil {
			return nil, err
		}
		row.Endpoint = ep
	}
	if st.Token != "" {
		if sl == nil {
			return nil, errNoSealKey
		}
		row.SealedToken = sl.seal([]byte(st.Token), colToken, string(tid))
	}
	return row, nil
}

func (r *tokenRow) toDomain(sl *sealer) (*token.State, error) {
	st := &token.State{
		AppID:         r.AppID,
		ExpiresAt:     r.ExpiresAt.UTC(),
		RefreshedAt:   r.RefreshedAt.UTC(),
		DueAt:         r.DueAt.UTC(),
		TenantVersion: r.TenantVersion,
		Failures:      r.Failures,
		LastError:     r.LastError,
		LastErrcode:   r.LastErrcode,
		LastErrorAt:   r.LastErrorAt.UTC(),
		ForcedDay:     r.ForcedDay,
		ForcedCount:   r.ForcedCount,
		ForcedAt:      r.ForcedAt.UTC(),
	}
	if r.Endpoint != "" {
		ep, err := tokenEndpoints.decode("tokens.endpoint", r.Endpoint)
		if err != nil {
			return nil, err
		}
		st.Endpoint = ep
	}
	if len(r.SealedToken) > 0 {
		if sl == nil {
			return nil, errNoSealKey
		}
		tok, err := sl.open(r.SealedToken, colToken, r.TenantID)
		if err != nil {
			return nil, err
		}
		st.Token = string(tok)
	}
	return st, nil
}
