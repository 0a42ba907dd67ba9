package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/wxrelay/wxrelay/relay/token"
	"github.com/wxrelay/wxrelay/tenant"
)

// ComponentStore keeps third-party platforms (components) in the
// components table, their secrets and last ticket sealed.
type ComponentStore struct{ db *DB }

var _ tenant.ComponentStore = (*ComponentStore)(nil)

// NewComponentStore returns a ComponentStore on db.
func NewComponentStore(db *DB) *ComponentStore { return &ComponentStore{db: db} }

const (
	colComponentSecrets = "components.sealed_secrets"
	colComponentTicket  = "components.sealed_ticket"
)

// componentRow is a row of the components table.
type componentRow struct {
	bun.BaseModel `bun:"table:components,alias:c"`

	ID                string    `bun:"id,pk"`
	DisplayName       string    `bun:"display_name"`
	AppID             string    `bun:"component_appid"`
	SealedSecrets     []byte    `bun:"sealed_secrets"`
	SealedTicket      []byte    `bun:"sealed_ticket"`
	TicketReceiveTime time.Time `bun:"ticket_receive_time,nullzero"`
	CreateTime        time.Time `bun:"create_time"`
	UpdateTime        time.Time `bun:"update_time"`
	Version           int64     `bun:"version"`
}

// storedComponentSecrets is the JSON sealed in sealed_secrets.
type storedComponentSecrets struct {
	Secret         string `json:"secret"`
	Token          string `json:"token"`
	EncodingAESKey string `json:"encoding_aes_key"`
}

func componentFromDomain(c *tenant.Component, sl *sealer) (*componentRow, error) {
	if sl == nil {
		return nil, errNoSealKey
	}
	secrets, err := json.Marshal(storedComponentSecrets(c.Secrets))
	if err != nil {
		return nil, errors.New("encode component secrets")
	}
	row := &componentRow{
		ID: string(c.ID), DisplayName: c.DisplayName, AppID: c.AppID,
		CreateTime: c.CreateTime.UTC(), UpdateTime: c.UpdateTime.UTC(), Version: c.Version,
	}
	row.SealedSecrets = sl.seal(secrets, colComponentSecrets, row.ID)
	return row, nil
}

func (r *componentRow) toDomain(sl *sealer) (*tenant.Component, error) {
	if sl == nil {
		return nil, errNoSealKey
	}
	c := &tenant.Component{
		ID: tenant.ComponentID(r.ID), DisplayName: r.DisplayName, AppID: r.AppID,
		CreateTime: r.CreateTime.UTC(), UpdateTime: r.UpdateTime.UTC(), Version: r.Version,
	}
	var secrets storedComponentSecrets
	if err := openJSON(sl, r.SealedSecrets, colComponentSecrets, r.ID, &secrets); err != nil {
		return nil, err
	}
	c.Secrets = tenant.ComponentSecrets(secrets)
	if r.SealedTicket != nil {
		ticket, err := sl.open(r.SealedTicket, colComponentTicket, r.ID)
		if err != nil {
			return nil, fmt.Errorf("component %s: %s: %w", r.ID, colComponentTicket, err)
		}
		c.Ticket = tenant.Ticket{Value: string(ticket), ReceiveTime: r.TicketReceiveTime.UTC()}
	}
	return c, nil
}

// CreateComponent implements tenant.ComponentStore.
func (s *ComponentStore) CreateComponent(ctx context.Context, c *tenant.Component) error {
	defer s.db.serialize()()
	row, err := componentFromDomain(c, s.db.sealer)
	if err != nil {
		return fmt.Errorf("create component %s: %w", c.ID, err)
	}
	_, err = s.db.bun.NewInsert().Model(row).ExcludeColumn("sealed_ticket", "ticket_receive_time").Exec(ctx)
	if isUniqueViolation(err) {
		return s.appIDTaken(ctx, c.AppID, "")
	} else if err != nil {
		return fmt.Errorf("create component %s: %w", c.ID, err)
	}
	return nil
}

// appIDTaken is the conflict of a component appid registered already.
func (s *ComponentStore) appIDTaken(ctx context.Context, appid string, self tenant.ComponentID) error {
	var holder string
	err := s.db.bun.NewSelect().Model((*componentRow)(nil)).Column("id").
		Where("lower(component_appid) = lower(?)", appid).Where("id <> ?", string(self)).Limit(1).Scan(ctx, &holder)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("find the component holding appid %s: %w", appid, err)
	}
	return &tenant.ConflictError{Msg: fmt.Sprintf("component_appid %s is already registered to component %s", appid, holder), AppID: appid}
}

// FindComponent implements tenant.ComponentStore.
func (s *ComponentStore) FindComponent(ctx context.Context, id tenant.ComponentID) (*tenant.Component, error) {
	var row componentRow
	err := s.db.bun.NewSelect().Model(&row).Where("id = ?", string(id)).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("find component %s: %w", id, tenant.ErrComponentNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("find component %s: %w", id, err)
	}
	return row.toDomain(s.db.sealer)
}

// FindComponents implements tenant.ComponentStore.
func (s *ComponentStore) FindComponents(ctx context.Context, after tenant.ComponentID, limit int) ([]*tenant.Component, error) {
	var rows []componentRow
	q := s.db.bun.NewSelect().Model(&rows).OrderExpr("id ASC").Limit(int64(limit))
	if after != "" {
		q = q.Where("id > ?", string(after))
	}
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("find components: %w", err)
	}
	out := make([]*tenant.Component, 0, len(rows))
	for i := range rows {
		c, err := rows[i].toDomain(s.db.sealer)
		if err != nil {
			return nil, fmt.Errorf("find components: %w", err)
		}
		out = append(out, c)
	}
	return out, nil
}

// UpdateComponent implements tenant.ComponentStore. The ticket is not the
// admin's to change: SaveTicket writes it.
func (s *ComponentStore) UpdateComponent(ctx context.Context, c *tenant.Component) error {
	defer s.db.serialize()()
	row, err := componentFromDomain(c, s.db.sealer)
	if err != nil {
		return fmt.Errorf("update component %s: %w", c.ID, err)
	}
	row.Version = c.Version + 1
	res, err := s.db.bun.NewUpdate().Model(row).
		Column("display_name", "component_appid", "sealed_secrets", "update_time", "version").
		Where("id = ?", string(c.ID)).Where("version = ?", c.Version).Exec(ctx)
	if isUniqueViolation(err) {
		return s.appIDTaken(ctx, c.AppID, c.ID)
	} else if err != nil {
		return fmt.Errorf("update component %s: %w", c.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("update component %s: %w", c.ID, err)
	} else if n == 0 {
		exists, err := s.db.bun.NewSelect().Model((*componentRow)(nil)).Where("id = ?", string(c.ID)).Exists(ctx)
		switch {
		case err != nil:
			return fmt.Errorf("update component %s: %w", c.ID, err)
		case !exists:
			return fmt.Errorf("update component %s: %w", c.ID, tenant.ErrComponentNotFound)
		default:
			return &tenant.ConflictError{Msg: fmt.Sprintf("component %s was changed by another request at the same time; retry", c.ID)}
		}
	}
	c.Version = row.Version
	return nil
}

// DeleteComponent implements tenant.ComponentStore: a conflict naming the
// tenants bound to it, while there are any (the foreign key refuses it).
func (s *ComponentStore) DeleteComponent(ctx context.Context, id tenant.ComponentID) error {
	defer s.db.serialize()()
	res, err := s.db.bun.NewDelete().Model((*componentRow)(nil)).Where("id = ?", string(id)).Exec(ctx)
	if isForeignKeyViolation(err) {
		var bound []string
		if err := s.db.bun.NewSelect().TableExpr("tenants AS t").Column("t.id").Where("t.component_id = ?", string(id)).
			OrderExpr("t.id").Limit(10).Scan(ctx, &bound); err != nil {
			return fmt.Errorf("delete component %s: find its tenants: %w", id, err)
		}
		return &tenant.ConflictError{Msg: fmt.Sprintf("component %s still has tenants (%s); delete them first (deleted tenants go once purged, within minutes)", id, strings.Join(bound, ", "))}
	}
	if err != nil {
		return fmt.Errorf("delete component %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete component %s: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("delete component %s: %w", id, tenant.ErrComponentNotFound)
	}
	return nil
}

// SaveTicket implements tenant.ComponentStore. It commits durably before
// the relay answers WeChat success: the ticket is what every component
// token for the next 12 hours is fetched with.
func (s *ComponentStore) SaveTicket(ctx context.Context, id tenant.ComponentID, t tenant.Ticket) error {
	if s.db.sealer == nil {
		return errNoSealKey
	}
	release, err := s.db.writeTurn(ctx)
	if err != nil {
		return fmt.Errorf("save ticket of component %s: %w", id, err)
	}
	defer release()
	res, err := s.db.bun.NewUpdate().Model((*componentRow)(nil)).
		Set("sealed_ticket = ?", s.db.sealer.seal([]byte(t.Value), colComponentTicket, string(id))).
		Set("ticket_receive_time = ?", t.ReceiveTime.UTC()).
		Where("id = ?", string(id)).
		Where("ticket_receive_time IS NULL OR ticket_receive_time <= ?", t.ReceiveTime.UTC()).
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("save ticket of component %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("save ticket of component %s: %w", id, err)
	} else if n == 0 {
		// A later ticket is kept already, or the component is gone.
		exists, err := s.db.bun.NewSelect().Model((*componentRow)(nil)).Where("id = ?", string(id)).Exists(ctx)
		if err != nil {
			return fmt.Errorf("save ticket of component %s: %w", id, err)
		}
		if !exists {
			return fmt.Errorf("save ticket of component %s: %w", id, tenant.ErrComponentNotFound)
		}
	}
	return nil
}

const colComponentEventBody = "component_events.sealed_body"

// SaveComponentPush keeps p, a push to component id's authorization-event
// URL, durably before the relay answers WeChat; a repeat of a stored push
// (same InfoType, authorizer and CreateTime) is not stored again.
func (s *ComponentStore) SaveComponentPush(ctx context.Context, id tenant.ComponentID, p tenant.ComponentPush) error {
	if s.db.sealer == nil {
		return errNoSealKey
	}
	release, err := s.db.writeTurn(ctx)
	if err != nil {
		return fmt.Errorf("save %s push of component %s: %w", p.InfoType, id, err)
	}
	defer release()
	_, err = s.db.bun.NewRaw(`INSERT INTO component_events (component_id, info_type, authorizer_appid, create_time, sealed_body, receive_time)
VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (component_id, info_type, authorizer_appid, create_time) DO NOTHING`,
		string(id), p.InfoType, p.AuthorizerAppID, p.CreateTime,
		s.db.sealer.seal(p.Body, colComponentEventBody, string(id)), p.ReceiveTime.UTC()).Exec(ctx)
	if isForeignKeyViolation(err) {
		return fmt.Errorf("save %s push of component %s: %w", p.InfoType, id, tenant.ErrComponentNotFound)
	} else if err != nil {
		return fmt.Errorf("save %s push of component %s: %w", p.InfoType, id, err)
	}
	return nil
}

// ComponentPushes returns component id's stored pushes, oldest first,
// their bodies opened.
func (s *ComponentStore) ComponentPushes(ctx context.Context, id tenant.ComponentID) ([]tenant.ComponentPush, error) {
	stored, err := s.componentPushes(ctx, func(q *bun.SelectQuery) *bun.SelectQuery {
		return q.Where("component_id = ?", string(id))
	})
	if err != nil {
		return nil, fmt.Errorf("pushes of component %s: %w", id, err)
	}
	out := make([]tenant.ComponentPush, len(stored))
	for i, p := range stored {
		out[i] = p.ComponentPush
	}
	return out, nil
}

// componentPushes reads the stored pushes that where selects, oldest
// first, their bodies opened.
func (s *ComponentStore) componentPushes(ctx context.Context, where func(*bun.SelectQuery) *bun.SelectQuery) ([]tenant.PendingComponentPush, error) {
	var rows []struct {
		Seq             int64     `bun:"seq"`
		ComponentID     string    `bun:"component_id"`
		InfoType        string    `bun:"info_type"`
		AuthorizerAppID string    `bun:"authorizer_appid"`
		CreateTime      int64     `bun:"create_time"`
		SealedBody      []byte    `bun:"sealed_body"`
		ReceiveTime     time.Time `bun:"receive_time"`
	}
	q := s.db.bun.NewSelect().Table("component_events").
		Column("seq", "component_id", "info_type", "authorizer_appid", "create_time", "sealed_body", "receive_time").
		OrderExpr("seq ASC")
	if err := where(q).Scan(ctx, &rows); err != nil {
		return nil, err
	}
	out := make([]tenant.PendingComponentPush, len(rows))
	for i, r := range rows {
		body, err := s.db.sealer.open(r.SealedBody, colComponentEventBody, r.ComponentID)
		if err != nil {
			return nil, err
		}
		out[i] = tenant.PendingComponentPush{Seq: r.Seq, ComponentID: tenant.ComponentID(r.ComponentID), ComponentPush: tenant.ComponentPush{
			InfoType: r.InfoType, AuthorizerAppID: r.AuthorizerAppID, CreateTime: r.CreateTime, Body: body, ReceiveTime: r.ReceiveTime.UTC()}}
	}
	return out, nil
}

// ComponentTokenStore keeps components' access tokens for relay/token in
// the component_tokens table, as TokenStore keeps tenants'.
type ComponentTokenStore struct{ t tokenTable }

var _ token.StoreOf[tenant.ComponentID] = (*ComponentTokenStore)(nil)

// NewComponentTokenStore returns a ComponentTokenStore on db.
func NewComponentTokenStore(db *DB) *ComponentTokenStore {
	return &ComponentTokenStore{tokenTable{db: db, table: "component_tokens", key: "component_id", what: "component", notFound: tenant.ErrComponentNotFound}}
}

func (s *ComponentTokenStore) FindToken(ctx context.Context, id tenant.ComponentID) (*token.State, error) {
	return s.t.find(ctx, string(id))
}

func (s *ComponentTokenStore) AcquireTokenLease(ctx context.Context, id tenant.ComponentID, owner string, now, until time.Time) (bool, error) {
	return s.t.acquire(ctx, string(id), owner, now, until)
}

func (s *ComponentTokenStore) SaveToken(ctx context.Context, id tenant.ComponentID, owner string, st *token.State) error {
	return s.t.save(ctx, string(id), owner, st)
}

func (s *ComponentTokenStore) ReleaseTokenLease(ctx context.Context, id tenant.ComponentID, owner string) error {
	return s.t.release(ctx, string(id), owner)
}

// DueTokens returns up to limit components with a ticket whose token is
// due at now: never fetched, or due_at passed, and not leased. Without a
// ticket there is nothing to fetch with.
func (s *ComponentTokenStore) DueTokens(ctx context.Context, now time.Time, limit int) ([]tenant.ComponentID, error) {
	now = now.UTC()
	var ids []string
	err := s.t.db.bun.NewSelect().
		TableExpr("components AS c").
		ColumnExpr("c.id").
		Join("LEFT JOIN component_tokens AS k ON k.component_id = c.id").
		Where("c.sealed_ticket IS NOT NULL").
		Where("(k.component_id IS NULL OR (k.due_at <= ? AND (k.lease_until IS NULL OR k.lease_until <= ?)))", now, now).
		OrderExpr("c.id ASC").
		Limit(int64(limit)).
		Scan(ctx, &ids)
	if err != nil {
		return nil, fmt.Errorf("find due component tokens: %w", err)
	}
	out := make([]tenant.ComponentID, len(ids))
	for i, id := range ids {
		out[i] = tenant.ComponentID(id)
	}
	return out, nil
}
