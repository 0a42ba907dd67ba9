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
	t  tokenTable
}

var _ token.Store = (*TokenStore)(nil)

// NewTokenStore returns a TokenStore on db.
func NewTokenStore(db *DB) *TokenStore {
	return &TokenStore{db: db, t: tokenTable{db: db, table: "tokens", key: "tenant_id", what: "tenant", notFound: tenant.ErrNotFound}}
}

// FindToken returns tid's token state with the token opened.
// token.ErrNotFound.
func (s *TokenStore) FindToken(ctx context.Context, tid tenant.ID) (*token.State, error) {
	return s.t.find(ctx, string(tid))
}

// AcquireTokenLease makes owner the holder of tid's refresh lease until
// until, if it is free, expired at now, or owner's already, and reports
// whether it did. tenant.ErrNotFound.
func (s *TokenStore) AcquireTokenLease(ctx context.Context, tid tenant.ID, owner string, now, until time.Time) (bool, error) {
	return s.t.acquire(ctx, string(tid), owner, now, until)
}

// SaveToken stores st, sealing its token, and releases owner's lease.
// token.ErrLeaseLost if owner does not hold the lease.
func (s *TokenStore) SaveToken(ctx context.Context, tid tenant.ID, owner string, st *token.State) error {
	return s.t.save(ctx, string(tid), owner, st)
}

// ReleaseTokenLease frees tid's lease if owner holds it.
func (s *TokenStore) ReleaseTokenLease(ctx context.Context, tid tenant.ID, owner string) error {
	return s.t.release(ctx, string(tid), owner)
}

// tokenTable is the token state of one kind of owner: a table of the
// tokens table's columns, keyed by the owner's id in column key, deleted
// with the owner. Its table and key are constants of this package.
type tokenTable struct {
	db         *DB
	table, key string
	what       string // the owner's kind, for errors: "tenant", "component"
	notFound   error  // the owner's kind's
}

// sealedCol names the sealed token column in its additional data.
func (t tokenTable) sealedCol() string { return t.table + ".sealed_token" }

func (t tokenTable) find(ctx context.Context, id string) (*token.State, error) {
	var row tokenRow
	err := t.db.bun.NewSelect().Model(&row).ModelTableExpr(t.table+" AS k").ExcludeColumn("tenant_id").
		Where(t.key+" = ?", id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("find token of %s %s: %w", t.what, id, token.ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("find token of %s %s: %w", t.what, id, err)
	}
	st, err := row.toDomain(t.db.sealer, t.sealedCol(), id)
	if err != nil {
		return nil, fmt.Errorf("find token of %s %s: %w", t.what, id, err)
	}
	return st, nil
}

// acquire is one upsert, which both engines run atomically: no row
// affected means another owner holds the lease.
func (t tokenTable) acquire(ctx context.Context, id, owner string, now, until time.Time) (bool, error) {
	defer t.db.serialize()()
	now, until = now.UTC(), until.UTC()
	res, err := t.db.bun.ExecContext(ctx, `INSERT INTO `+t.table+` (`+t.key+`, due_at, lease_owner, lease_until)
VALUES (?, ?, ?, ?)
ON CONFLICT (`+t.key+`) DO UPDATE SET lease_owner = excluded.lease_owner, lease_until = excluded.lease_until
WHERE `+t.table+`.lease_owner = excluded.lease_owner OR `+t.table+`.lease_until IS NULL OR `+t.table+`.lease_until <= ?`,
		id, now, owner, until, now)
	if isForeignKeyViolation(err) {
		return false, fmt.Errorf("acquire token lease of %s %s: %w", t.what, id, t.notFound)
	} else if err != nil {
		return false, fmt.Errorf("acquire token lease of %s %s: %w", t.what, id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("acquire token lease of %s %s: %w", t.what, id, err)
	}
	return n == 1, nil
}

func (t tokenTable) save(ctx context.Context, id, owner string, st *token.State) error {
	defer t.db.serialize()()
	row, err := tokenFromDomain(st, t.db.sealer, t.sealedCol(), id)
	if err != nil {
		return fmt.Errorf("save token of %s %s: %w", t.what, id, err)
	}
	res, err := t.db.bun.NewUpdate().Model(row).ModelTableExpr(t.table+" AS k").
		ExcludeColumn("tenant_id").
		Where(t.key+" = ?", id).
		Where("lease_owner = ?", owner).
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("save token of %s %s: %w", t.what, id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("save token of %s %s: %w", t.what, id, err)
	} else if n == 0 {
		return fmt.Errorf("save token of %s %s: %w", t.what, id, token.ErrLeaseLost)
	}
	return nil
}

func (t tokenTable) release(ctx context.Context, id, owner string) error {
	defer t.db.serialize()()
	_, err := t.db.bun.NewUpdate().Model((*tokenRow)(nil)).ModelTableExpr(t.table+" AS k").
		Set("lease_owner = ''").
		Set("lease_until = NULL").
		Where(t.key+" = ?", id).
		Where("lease_owner = ?", owner).
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("release token lease of %s %s: %w", t.what, id, err)
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
		// A component's tenant has a token only while its mini program
		// has authorized the component: until then (or once revoked) it
		// is not due, rather than asked about every run.
		Where("(t.component_id IS NULL OR EXISTS (SELECT 1 FROM authorizations AS a WHERE a.component_id = t.component_id AND a.authorizer_appid = t.appid AND a.state = 'authorized'))").
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

// tokenFromDomain converts st, the token of owner id, for saving in the
// column col: the token sealed, the lease free.
func tokenFromDomain(st *token.State, sl *sealer, col, id string) (*tokenRow, error) {
	row := &tokenRow{
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
		row.SealedToken = sl.seal([]byte(st.Token), col, id)
	}
	return row, nil
}

func (r *tokenRow) toDomain(sl *sealer, col, id string) (*token.State, error) {
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
		tok, err := sl.open(r.SealedToken, col, id)
		if err != nil {
			return nil, err
		}
		st.Token = string(tok)
	}
	return st, nil
}
