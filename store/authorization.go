package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/tenant"
)

// colRefreshToken names the sealed refresh token in its additional data;
// the row is named by component and authorizer.
const colRefreshToken = "authorizations.sealed_refresh_token"

func authorizationRowID(cid tenant.ComponentID, appid string) string {
	return string(cid) + "/" + appid
}

// authorizationRow is a row of the authorizations table.
type authorizationRow struct {
	ComponentID        string    `bun:"component_id"`
	AuthorizerAppID    string    `bun:"authorizer_appid"`
	State              string    `bun:"state"`
	FuncInfo           string    `bun:"func_info"`
	SealedRefreshToken []byte    `bun:"sealed_refresh_token"`
	AuthorizeTime      time.Time `bun:"authorize_time"`
	RevokeTime         time.Time `bun:"revoke_time,nullzero"`
	UpdateTime         time.Time `bun:"update_time"`
}

var authorizationStates = enum[tenant.AuthorizationState]{
	{tenant.AuthorizationAuthorized, "authorized"},
	{tenant.AuthorizationRevoked, "revoked"},
}

// SaveAuthorization keeps a, granted (its refresh token sealed), durably,
// over whatever the component's authorization by that appid was: an
// authorization again after a revocation starts anew. When that changes
// what the tenant bound to the appid was granted, the lifecycle event for
// its webhook commits with it (changeAuthorization).
func (s *ComponentStore) SaveAuthorization(ctx context.Context, a *tenant.Authorization) error {
	if s.db.sealer == nil {
		return errNoSealKey
	}
	funcs, err := json.Marshal(a.FuncInfo)
	if err != nil {
		return fmt.Errorf("save authorization: %w", err)
	}
	if a.FuncInfo == nil {
		funcs = []byte("[]")
	}
	err = s.changeAuthorization(ctx, a.ComponentID, a.AuthorizerAppID, func(ctx context.Context, tx bun.Tx) error {
		_, err := tx.NewRaw(`INSERT INTO authorizations (component_id, authorizer_appid, state, func_info, sealed_refresh_token, authorize_time, revoke_time, update_time)
VALUES (?, ?, 'authorized', ?, ?, ?, NULL, ?)
ON CONFLICT (component_id, authorizer_appid) DO UPDATE SET state = 'authorized', func_info = excluded.func_info,
	sealed_refresh_token = excluded.sealed_refresh_token, authorize_time = excluded.authorize_time, revoke_time = NULL, update_time = excluded.update_time`,
			string(a.ComponentID), a.AuthorizerAppID, string(funcs),
			s.db.sealer.seal([]byte(a.RefreshToken), colRefreshToken, authorizationRowID(a.ComponentID, a.AuthorizerAppID)),
			a.AuthorizeTime.UTC(), a.UpdateTime.UTC()).Exec(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("save authorization of %s: %w", a.AuthorizerAppID, err)
	}
	return nil
}

// RevokeAuthorization marks appid's authorization of component cid
// revoked at at, keeping a row for it even if none was known; the bound
// tenant's authorization.revoked event commits with it.
func (s *ComponentStore) RevokeAuthorization(ctx context.Context, cid tenant.ComponentID, appid string, at time.Time) error {
	err := s.changeAuthorization(ctx, cid, appid, func(ctx context.Context, tx bun.Tx) error {
		_, err := tx.NewRaw(`INSERT INTO authorizations (component_id, authorizer_appid, state, authorize_time, revoke_time, update_time)
VALUES (?, ?, 'revoked', ?, ?, ?)
ON CONFLICT (component_id, authorizer_appid) DO UPDATE SET state = 'revoked', revoke_time = excluded.revoke_time, update_time = excluded.update_time`,
			string(cid), appid, at.UTC(), at.UTC(), at.UTC()).Exec(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("revoke authorization of %s: %w", appid, err)
	}
	return nil
}

// changeAuthorization runs write, a change of appid's authorization of
// component cid, in a transaction that also stores the lifecycle event
// (relay.AuthorizationChange) of the tenant bound to the appid, if any:
// the event is delivered if and only if the change holds. Changes of one
// authorization take turns (on PostgreSQL a transaction-scoped advisory
// lock on the pair; SQLite has one writer), so that two replicas saving
// the same grant (the consent page's redirect on one, WeChat's event on
// the other) see each other's, and the tenant gets one
// authorization.authorized, not two. The lock is the pair's, not the
// component's row: a row lock FOR UPDATE also held up every tenant and
// event inserted for the component (their foreign keys' KEY SHARE), which
// at 10,000 authorizations made onboarding crawl.
func (s *ComponentStore) changeAuthorization(ctx context.Context, cid tenant.ComponentID, appid string, write func(context.Context, bun.Tx) error) error {
	defer s.db.serialize()()
	err := s.db.bun.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if tx.Dialect().Name() != dialect.SQLite {
			if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", authorizationRowID(cid, appid)); err != nil {
				return err
			}
		}
		var id string
		err := tx.NewSelect().Table("components").Column("id").Where("id = ?", string(cid)).Scan(ctx, &id)
		if errors.Is(err, sql.ErrNoRows) {
			return tenant.ErrComponentNotFound
		} else if err != nil {
			return err
		}
		before, err := s.findAuthorization(ctx, tx, cid, appid)
		if err != nil && !errors.Is(err, tenant.ErrAuthorizationNotFound) {
			return err
		}
		if err := write(ctx, tx); err != nil {
			return err
		}
		after, err := s.findAuthorization(ctx, tx, cid, appid)
		if err != nil {
			return err
		}
		typ := relay.AuthorizationChange(before, after)
		if typ == "" {
			return nil
		}
		tid, err := componentTenantID(ctx, tx, cid, appid)
		if errors.Is(err, tenant.ErrNotFound) {
			return nil // kept for a tenant created later, which starts authorized
		} else if err != nil {
			return err
		}
		e, err := relay.NewAuthorizationEvent(tid, typ, after, s.db.Now())
		if err != nil {
			return err
		}
		return appendInTx(ctx, s.db, tx, []*relay.Event{e})
	})
	if isForeignKeyViolation(err) {
		return tenant.ErrComponentNotFound
	}
	return err
}

// SwapRefreshToken replaces appid's refresh token old by new, if old is
// still the one kept (compare-and-swap): WeChat may answer a refresh with
// a new one, and two replicas may refresh at once. It reports whether it
// swapped.
func (s *ComponentStore) SwapRefreshToken(ctx context.Context, cid tenant.ComponentID, appid, old, new string) (bool, error) {
	if s.db.sealer == nil {
		return false, errNoSealKey
	}
	defer s.db.serialize()()
	// Sealing is randomized: the sealed bytes read stand for the token
	// read, and the update holds only if they are still the row's.
	var sealed []byte
	err := s.db.bun.NewSelect().Table("authorizations").Column("sealed_refresh_token").
		Where("component_id = ? AND authorizer_appid = ? AND state = 'authorized'", string(cid), appid).Scan(ctx, &sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("swap refresh token of %s: %w", appid, err)
	}
	opened, err := s.db.sealer.open(sealed, colRefreshToken, authorizationRowID(cid, appid))
	if err != nil {
		return false, fmt.Errorf("swap refresh token of %s: %w", appid, err)
	}
	if string(opened) != old {
		return false, nil
	}
	res, err := s.db.bun.NewRaw(`UPDATE authorizations SET sealed_refresh_token = ?, update_time = ?
WHERE component_id = ? AND authorizer_appid = ? AND sealed_refresh_token = ?`,
		s.db.sealer.seal([]byte(new), colRefreshToken, authorizationRowID(cid, appid)), s.db.Now(),
		string(cid), appid, sealed).Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("swap refresh token of %s: %w", appid, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// FindAuthorization returns appid's authorization of component cid, its
// refresh token opened. tenant.ErrAuthorizationNotFound.
func (s *ComponentStore) FindAuthorization(ctx context.Context, cid tenant.ComponentID, appid string) (*tenant.Authorization, error) {
	return s.findAuthorization(ctx, s.db.bun, cid, appid)
}

func (s *ComponentStore) findAuthorization(ctx context.Context, db bun.IDB, cid tenant.ComponentID, appid string) (*tenant.Authorization, error) {
	var rows []authorizationRow
	err := db.NewSelect().Table("authorizations").
		Column("component_id", "authorizer_appid", "state", "func_info", "sealed_refresh_token", "authorize_time", "revoke_time", "update_time").
		Where("component_id = ? AND authorizer_appid = ?", string(cid), appid).Scan(ctx, &rows)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("find authorization of %s: %w", appid, err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("authorization of %s by component %s: %w", appid, cid, tenant.ErrAuthorizationNotFound)
	}
	return s.authorizationFromRow(&rows[0])
}

// Authorizations returns component cid's authorizations, by appid.
func (s *ComponentStore) Authorizations(ctx context.Context, cid tenant.ComponentID) ([]*tenant.Authorization, error) {
	var rows []authorizationRow
	err := s.db.bun.NewSelect().Table("authorizations").
		Column("component_id", "authorizer_appid", "state", "func_info", "sealed_refresh_token", "authorize_time", "revoke_time", "update_time").
		Where("component_id = ?", string(cid)).OrderExpr("authorizer_appid").Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("authorizations of component %s: %w", cid, err)
	}
	out := make([]*tenant.Authorization, 0, len(rows))
	for i := range rows {
		a, err := s.authorizationFromRow(&rows[i])
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// AuthorizerPage lists up to limit of component cid's authorizations in
// appid order after the appid after, each with the tenant bound to its
// appid, in one query that opens no refresh token: an agency's list of
// thousands of merchants is read a page at a time.
func (s *ComponentStore) AuthorizerPage(ctx context.Context, cid tenant.ComponentID, after string, limit int) ([]tenant.AuthorizerEntry, error) {
	var rows []struct {
		AppID         string         `bun:"authorizer_appid"`
		State         string         `bun:"state"`
		FuncInfo      string         `bun:"func_info"`
		AuthorizeTime time.Time      `bun:"authorize_time"`
		TenantID      sql.NullString `bun:"tenant_id"`
	}
	err := s.db.bun.NewSelect().TableExpr("authorizations AS a").
		Column("a.authorizer_appid", "a.state", "a.func_info", "a.authorize_time").ColumnExpr("t.id AS tenant_id").
		Join("LEFT JOIN tenants AS t ON t.component_id = a.component_id AND lower(t.appid) = lower(a.authorizer_appid) AND "+notMarked).
		Where("a.component_id = ?", string(cid)).Where("a.authorizer_appid > ?", after).
		OrderExpr("a.authorizer_appid").Limit(int64(limit)).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("authorizers of component %s: %w", cid, err)
	}
	out := make([]tenant.AuthorizerEntry, len(rows))
	for i, r := range rows {
		e := tenant.AuthorizerEntry{AppID: r.AppID, AuthorizeTime: r.AuthorizeTime.UTC(), TenantID: tenant.ID(r.TenantID.String)}
		if e.State, err = authorizationStates.decode("state", r.State); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(r.FuncInfo), &e.FuncInfo); err != nil {
			return nil, fmt.Errorf("authorization of %s: func_info holds no valid JSON", r.AppID)
		}
		out[i] = e
	}
	return out, nil
}

func (s *ComponentStore) authorizationFromRow(r *authorizationRow) (*tenant.Authorization, error) {
	a := &tenant.Authorization{ComponentID: tenant.ComponentID(r.ComponentID), AuthorizerAppID: r.AuthorizerAppID,
		AuthorizeTime: r.AuthorizeTime.UTC(), RevokeTime: r.RevokeTime.UTC(), UpdateTime: r.UpdateTime.UTC()}
	var err error
	if a.State, err = authorizationStates.decode("state", r.State); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(r.FuncInfo), &a.FuncInfo); err != nil {
		return nil, fmt.Errorf("authorization of %s: func_info holds no valid JSON", r.AuthorizerAppID)
	}
	if len(r.SealedRefreshToken) > 0 {
		if s.db.sealer == nil {
			return nil, errNoSealKey
		}
		tok, err := s.db.sealer.open(r.SealedRefreshToken, colRefreshToken, authorizationRowID(a.ComponentID, a.AuthorizerAppID))
		if err != nil {
			return nil, fmt.Errorf("authorization of %s: %w", r.AuthorizerAppID, err)
		}
		a.RefreshToken = string(tok)
	}
	return a, nil
}

// PendingComponentPushes returns up to limit pushes not acted on yet,
// oldest first, their bodies opened.
func (s *ComponentStore) PendingComponentPushes(ctx context.Context, limit int) ([]tenant.PendingComponentPush, error) {
	out, err := s.componentPushes(ctx, func(q *bun.SelectQuery) *bun.SelectQuery {
		return q.Where("processed_time IS NULL").Limit(int64(limit))
	})
	if err != nil {
		return nil, fmt.Errorf("pending component pushes: %w", err)
	}
	return out, nil
}

// PendingComponentPushesOf is PendingComponentPushes of one InfoType.
func (s *ComponentStore) PendingComponentPushesOf(ctx context.Context, infoType string, limit int) ([]tenant.PendingComponentPush, error) {
	out, err := s.componentPushes(ctx, func(q *bun.SelectQuery) *bun.SelectQuery {
		return q.Where("processed_time IS NULL").Where("info_type = ?", infoType).Limit(int64(limit))
	})
	if err != nil {
		return nil, fmt.Errorf("pending %s pushes: %w", infoType, err)
	}
	return out, nil
}

// MarkComponentPushDone records that push seq was acted on.
func (s *ComponentStore) MarkComponentPushDone(ctx context.Context, seq int64, at time.Time) error {
	defer s.db.serialize()()
	_, err := s.db.bun.NewRaw(`UPDATE component_events SET processed_time = ? WHERE seq = ?`, at.UTC(), seq).Exec(ctx)
	if err != nil {
		return fmt.Errorf("mark component push %d done: %w", seq, err)
	}
	return nil
}
