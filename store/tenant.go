package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/wxrelay/wxrelay/relay/pace"
	"github.com/wxrelay/wxrelay/tenant"
)

// TenantStore keeps tenants in the tenants table, their secrets sealed.
type TenantStore struct {
	db *DB
}

var _ tenant.Store = (*TenantStore)(nil)

// NewTenantStore returns a TenantStore on db.
func NewTenantStore(db *DB) *TenantStore { return &TenantStore{db: db} }

// Create stores a new tenant. tenant.ErrConflict if its appid is taken.
func (s *TenantStore) Create(ctx context.Context, t *tenant.Tenant) error {
	defer s.db.serialize()()
	row, err := fromDomain(t, s.db.sealer)
	if err != nil {
		return fmt.Errorf("create tenant %s: %w", t.ID, err)
	}
	_, err = s.db.bun.NewInsert().Model(row).Exec(ctx)
	if isUniqueViolation(err) {
		// Ids are 80 random bits, so the unique key that clashed is the appid.
		return s.appIDTaken(ctx, t.AppID, "")
	} else if isForeignKeyViolation(err) {
		return &tenant.FieldError{Field: "component_id", Reason: fmt.Sprintf("no component %s is registered", t.ComponentID)}
	} else if err != nil {
		return fmt.Errorf("create tenant %s: %w", t.ID, err)
	}
	return nil
}

// appIDTaken is the conflict of appid, naming the tenant that holds it
// (not self, the tenant being changed).
func (s *TenantStore) appIDTaken(ctx context.Context, appid string, self tenant.ID) error {
	var holder string
	err := s.db.bun.NewSelect().Model((*tenantRow)(nil)).Column("id").
		Where("lower(appid) = lower(?)", appid).Where("id <> ?", string(self)).Limit(1).Scan(ctx, &holder)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("find the tenant holding appid %s: %w", appid, err)
	}
	return tenant.AppIDTaken(appid, tenant.ID(holder))
}

// FindByID returns the tenant with its secrets opened. tenant.ErrNotFound.
func (s *TenantStore) FindByID(ctx context.Context, id tenant.ID) (*tenant.Tenant, error) {
	var row tenantRow
	err := s.db.bun.NewSelect().Model(&row).Where("id = ?", string(id)).Where(notMarked).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("find tenant %s: %w", id, tenant.ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("find tenant %s: %w", id, err)
	}
	return row.toDomain(s.db.sealer)
}

// Find returns up to f.PageSize tenants (tenant.DefaultPageSize if it is not
// positive) in ascending id order, starting after f.After. Paging by key
// rather than by offset keeps pages stable while tenants come and go.
func (s *TenantStore) Find(ctx context.Context, f tenant.Filter) ([]*tenant.Tenant, error) {
	limit := f.PageSize
	if limit <= 0 {
		limit = tenant.DefaultPageSize
	}
	var rows []tenantRow
	q := s.db.bun.NewSelect().Model(&rows).Where(notMarked).OrderExpr("id ASC").Limit(int64(limit))
	if f.After != "" {
		q = q.Where("id > ?", string(f.After))
	}
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("find tenants: %w", err)
	}
	ts := make([]*tenant.Tenant, 0, len(rows))
	for i := range rows {
		t, err := rows[i].toDomain(s.db.sealer)
		if err != nil {
			return nil, fmt.Errorf("find tenants: %w", err)
		}
		ts = append(ts, t)
	}
	return ts, nil
}

// Update saves t if the stored version is still t.Version, then bumps
// t.Version. tenant.ErrNotFound; tenant.ErrConflict if the appid is taken or
// the tenant changed since t was read.
func (s *TenantStore) Update(ctx context.Context, t *tenant.Tenant) error {
	defer s.db.serialize()()
	row, err := fromDomain(t, s.db.sealer)
	if err != nil {
		return fmt.Errorf("update tenant %s: %w", t.ID, err)
	}
	row.Version = t.Version + 1
	var res sql.Result
	err = s.db.bun.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		// The events carry the tenant's ordered_delivery (eventRow.Ordered):
		// when it changes, so do they, in the same transaction.
		var old []tenantRow
		err := tx.NewSelect().Model(&old).Column("ordered_delivery", "state", "appid", "ignore_reply_window").
			Where("id = ?", string(t.ID)).
			Where("version = ?", t.Version).
			Where(notMarked).
			Scan(ctx)
		if err != nil {
			return err
		}
		res, err = tx.NewUpdate().Model(row).
			ExcludeColumn("create_time"). // set once, by Create
			Where("id = ?", string(t.ID)).
			Where("version = ?", t.Version).
			Where("NOT EXISTS (SELECT 1 FROM tenant_deletions AS d WHERE d.tenant_id = ?)", string(t.ID)).
			Exec(ctx)
		if err != nil || len(old) == 0 {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		if err := s.db.notifyTenantChanged(ctx, tx, t.ID); err != nil {
			return err
		}
		if old[0].OrderedDelivery != row.OrderedDelivery {
			// Only pending events are ordered against each other (claims
			// look for earlier pending ones): rewriting the tenant's whole
			// history held the write lock, and every other tenant's pushes,
			// in proportion to it (370 ms at 100,000 events).
			_, err = tx.NewUpdate().Model((*eventRow)(nil)).
				Set("ordered = ?", row.OrderedDelivery).
				Where("tenant_id = ?", string(t.ID)).
				Where("state = 'pending'").
				Exec(ctx)
			if err != nil {
				return err
			}
		}
		// While disabled, a tenant's pushes are refused, under another
		// appid they came from another mini program's users, and while it
		// ignored the check they were not recorded (relay.Event's
		// NoReplyWindow): either way the relay missed triggers, and knows
		// windows only from now on.
		if (old[0].State != row.State && t.State == tenant.StateActive) || old[0].AppID != row.AppID ||
			(old[0].IgnoreReplyWindow && !t.IgnoreReplyWindow) {
			return restartReplyWindows(ctx, tx, t.ID, t.UpdateTime)
		}
		return nil
	})
	if isUniqueViolation(err) {
		return s.appIDTaken(ctx, t.AppID, t.ID)
	} else if err != nil {
		return fmt.Errorf("update tenant %s: %w", t.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("update tenant %s: %w", t.ID, err)
	} else if n == 0 {
		// Nothing matched id and version: gone, or changed by someone else.
		exists, err := s.db.bun.NewSelect().Model((*tenantRow)(nil)).Where("id = ?", string(t.ID)).Where(notMarked).Exists(ctx)
		switch {
		case err != nil:
			return fmt.Errorf("update tenant %s: %w", t.ID, err)
		case !exists:
			return fmt.Errorf("update tenant %s: %w", t.ID, tenant.ErrNotFound)
		default:
			return &tenant.ConflictError{Msg: fmt.Sprintf("tenant %s was changed by another request at the same time; retry", t.ID)}
		}
	}
	t.Version = row.Version
	return nil
}

// Delete removes tenant id for every reader at once, and leaves its
// history to PurgeDeleted. tenant.ErrNotFound, also for a tenant deleted
// already.
//
// The deletion is a mark, one short transaction whatever the tenant's
// history: a row in tenant_deletions, which hides the tenant from every
// read (FindByID, Find, APIKeyHash), and on the row itself, state disabled
// (claims and the keeper skip it) and an appid of its own that frees the
// real one for a new tenant. The history goes in the background, in short
// transactions (PurgeDeleted): one cascading delete held the write lock,
// and every push of every tenant, for as long as the tenant's history
// took (0.9 s at 100,000 events), and a deletion that ran in the API call
// took as long as the purge and was left half done when the caller gave up.
func (s *TenantStore) Delete(ctx context.Context, id tenant.ID) error {
	return s.changeRow(ctx, id, func(ctx context.Context, tx bun.Tx) (sql.Result, error) {
		res, err := tx.NewRaw(`INSERT INTO tenant_deletions (tenant_id, appid, deleted_at)
SELECT t.id, t.appid, ? FROM tenants AS t WHERE t.id = ? AND `+notMarked,
			s.db.Now(), string(id)).Exec(ctx)
		if err != nil {
			return nil, err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return res, err
		}
		_, err = tx.NewUpdate().Model((*tenantRow)(nil)).
			Set("state = 'disabled'").Set("appid = ?", deletedAppID(id)).Set("version = version + 1").
			Where("id = ?", string(id)).Exec(ctx)
		return res, err
	})
}

// notMarked is the condition, on a tenant row aliased t, that it is not
// deleted.
const notMarked = `NOT EXISTS (SELECT 1 FROM tenant_deletions AS d WHERE d.tenant_id = t.id)`

// deletedAppID is the appid a deleted tenant's row holds until it is
// purged: its own, so that the unique index lets a new tenant have the
// mini-program's appid at once, and no appid WeChat could send.
func deletedAppID(id tenant.ID) string { return "~deleted~" + string(id) }

// purges delete a batch of a deleted tenant's history each (the tenant's
// id twice, then the batch size), table by table, the large ones first; the tenant's row goes last and cascades to
// what is left (its token, its reply-window switch).
var purges = []struct{ what, query string }{
	{"events", `DELETE FROM events WHERE tenant_id = ? AND seq IN (SELECT seq FROM events WHERE tenant_id = ? LIMIT ?)`},
	{"call records", `DELETE FROM api_calls WHERE tenant_id = ? AND seq IN (SELECT seq FROM api_calls WHERE tenant_id = ? LIMIT ?)`},
	{"reply windows", `DELETE FROM reply_windows WHERE tenant_id = ? AND openid IN (SELECT openid FROM reply_windows WHERE tenant_id = ? LIMIT ?)`},
	{"push nonces", `DELETE FROM push_nonces WHERE tenant_id = ? AND signature IN (SELECT signature FROM push_nonces WHERE tenant_id = ? LIMIT ?)`},
	{"idempotency keys", `DELETE FROM idempotency_keys WHERE tenant_id = ? AND idem_key IN (SELECT idem_key FROM idempotency_keys WHERE tenant_id = ? LIMIT ?)`},
}

// PurgeDeleted purges the deleted tenants' histories, oldest deletion
// first, and then their rows, and returns how many it finished. Each batch
// (paced by relay/pace) is a transaction of its own, so that other
// tenants' pushes take their turns in between; it is safe to run on
// several replicas at once, and one cut short goes on where it stopped.
func (s *TenantStore) PurgeDeleted(ctx context.Context) (int, error) {
	done := 0
	for {
		var ids []string
		err := s.db.bun.NewSelect().Table("tenant_deletions").Column("tenant_id").
			OrderExpr("deleted_at ASC").Limit(100).Scan(ctx, &ids)
		if err != nil {
			return done, fmt.Errorf("purge deleted tenants: %w", err)
		}
		if len(ids) == 0 {
			return done, nil
		}
		for _, id := range ids {
			if err := s.purge(ctx, tenant.ID(id)); err != nil {
				return done, err
			}
			done++
		}
	}
}

// purge deletes deleted tenant id's history in batches, then its row. The
// batches are paced (relay/pace): each holds the write lock about 5 ms,
// and the next waits nine times as long, so that the purge takes a tenth
// of the lock and of the disk and other tenants' pushes hardly notice it.
func (s *TenantStore) purge(ctx context.Context, id tenant.ID) error {
	for _, p := range purges {
		_, err := pace.Run(ctx, func(limit int) (int, error) { return s.purgeBatch(ctx, p.query, id, limit) })
		if err != nil {
			return fmt.Errorf("purge deleted tenant %s: its %s: %w", id, p.what, err)
		}
	}
	defer s.db.serialize()()
	// A push stored since the batches went (a replica that had not heard
	// of the deletion yet) goes with the row, by the foreign keys.
	_, err := s.db.bun.NewRaw(`DELETE FROM tenants WHERE id IN (SELECT tenant_id FROM tenant_deletions WHERE tenant_id = ?)`, string(id)).Exec(ctx)
	if err != nil {
		return fmt.Errorf("purge deleted tenant %s: its row: %w", id, err)
	}
	return nil
}

// changeRow runs change, a statement on tenant id's row, in a transaction
// that also tells the replicas; a change of no row is tenant.ErrNotFound.
func (s *TenantStore) changeRow(ctx context.Context, id tenant.ID, change func(context.Context, bun.Tx) (sql.Result, error)) error {
	defer s.db.serialize()()
	var res sql.Result
	err := s.db.bun.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var err error
		if res, err = change(ctx, tx); err != nil {
			return err
		}
		return s.db.notifyTenantChanged(ctx, tx, id)
	})
	if err == nil {
		var n int64
		if n, err = res.RowsAffected(); err == nil && n == 0 {
			err = tenant.ErrNotFound
		}
	}
	if err != nil {
		return fmt.Errorf("delete tenant %s: %w", id, err)
	}
	return nil
}

// purgeBatch runs query, a delete of up to size rows of tenant id, in a
// transaction of its own. It commits durably, though a purge lost in a
// crash would only be done again: on SQLite a relaxed commit leaves its
// WAL pages for the next durable commit to sync, and after a long history
// that was whoever wrote next (a push, or the tenant row's own delete,
// seen holding the write turn over 100 ms), so each batch pays its own.
func (s *TenantStore) purgeBatch(ctx context.Context, query string, id tenant.ID, size int) (int, error) {
	defer s.db.serialize()()
	res, err := s.db.bun.NewRaw(query, string(id), string(id), size).Exec(ctx)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// tenantRow is a row of the tenants table.
type tenantRow struct {
	bun.BaseModel `bun:"table:tenants,alias:t"`

	ID                   string    `bun:"id,pk"`
	DisplayName          string    `bun:"display_name"`
	AppID                string    `bun:"appid"`
	OriginalID           string    `bun:"original_id"`
	EncryptMode          string    `bun:"encrypt_mode"`
	DataFormat           string    `bun:"data_format"`
	ReplyMode            string    `bun:"reply_mode"`
	State                string    `bun:"state"`
	WebhookURL           string    `bun:"webhook_url"`
	OrderedDelivery      bool      `bun:"ordered_delivery"`
	IgnoreReplyWindow    bool      `bun:"ignore_reply_window"`
	PushSilenceAlertSecs int64     `bun:"push_silence_alert_seconds"`
	TokenEndpoint        string    `bun:"token_endpoint"`
	SealedSecrets        []byte    `bun:"sealed_secrets"`
	SealedWebhookSecrets []byte    `bun:"sealed_webhook_secrets"`
	APIKeyHash           []byte    `bun:"api_key_hash"`
	ComponentID          string    `bun:"component_id,nullzero"`
	CreateTime           time.Time `bun:"create_time"`
	UpdateTime           time.Time `bun:"update_time"`
	Version              int64     `bun:"version"`
}

// The columns holding sealed values, as named in their additional data.
const (
	colSecrets        = "tenants.sealed_secrets"
	colWebhookSecrets = "tenants.sealed_webhook_secrets"
)

// storedSecrets is the sealed form of tenant.Secrets, and storedWebhookSecrets
// of tenant.WebhookSecrets. They name their JSON fields themselves so that
// renaming a domain field cannot orphan what was sealed before; converting
// between them and the domain types makes any such change a compile error
// here rather than a silent loss.
type storedSecrets struct {
	AppSecret      string `json:"app_secret"`
	Token          string `json:"token"`
	EncodingAESKey string `json:"encoding_aes_key,omitempty"`

	PreviousToken          string    `json:"previous_token,omitempty"`
	PreviousEncodingAESKey string    `json:"previous_encoding_aes_key,omitempty"`
	PreviousUntil          time.Time `json:"previous_until,omitzero"`
}

type storedWebhookSecrets struct {
	Current       string    `json:"current"`
	Previous      string    `json:"previous,omitempty"`
	PreviousUntil time.Time `json:"previous_until,omitzero"`
}

// Stored names of the tenant enums: words rather than numbers, so that the
// table reads plainly and does not depend on the order of Go constants.
var (
	encryptModes = enum[tenant.EncryptMode]{
		{tenant.EncryptPlaintext, "plaintext"},
		{tenant.EncryptCompatible, "compatible"},
		{tenant.EncryptSafe, "safe"},
	}
	dataFormats = enum[tenant.DataFormat]{
		{tenant.FormatJSON, "json"},
		{tenant.FormatXML, "xml"},
	}
	replyModes = enum[tenant.ReplyMode]{
		{tenant.ReplySuccess, "success"},
		{tenant.ReplyTransferCustomerService, "transfer_customer_service"},
	}
	states = enum[tenant.State]{
		{tenant.StateActive, "active"},
		{tenant.StateDisabled, "disabled"},
	}
)

// fromDomain converts t to a row, sealing its secrets.
func fromDomain(t *tenant.Tenant, sl *sealer) (*tenantRow, error) {
	if sl == nil {
		return nil, errNoSealKey
	}
	row := &tenantRow{
		ID:                   string(t.ID),
		DisplayName:          t.DisplayName,
		AppID:                t.AppID,
		OriginalID:           t.OriginalID,
		WebhookURL:           t.WebhookURL,
		OrderedDelivery:      t.OrderedDelivery,
		IgnoreReplyWindow:    t.IgnoreReplyWindow,
		PushSilenceAlertSecs: int64(t.PushSilenceAlert / time.Second),
		APIKeyHash:           t.APIKeyHash,
		ComponentID:          string(t.ComponentID),
		CreateTime:           t.CreateTime.UTC(),
		UpdateTime:           t.UpdateTime.UTC(),
		Version:              t.Version,
	}
	var err error
	if row.EncryptMode, err = encryptModes.encode("encrypt_mode", t.EncryptMode); err != nil {
		return nil, err
	}
	if row.DataFormat, err = dataFormats.encode("data_format", t.DataFormat); err != nil {
		return nil, err
	}
	if row.ReplyMode, err = replyModes.encode("reply_mode", t.ReplyMode); err != nil {
		return nil, err
	}
	if row.State, err = states.encode("state", t.State); err != nil {
		return nil, err
	}
	// The zero value means the default, stable_token.
	ep := t.TokenEndpoint
	if ep == tenant.TokenEndpointUnspecified {
		ep = tenant.TokenStable
	}
	if row.TokenEndpoint, err = tokenEndpoints.encode("token_endpoint", ep); err != nil {
		return nil, err
	}

	// Marshalling errors are dropped rather than wrapped: they could quote
	// the value that failed.
	ss := storedSecrets(t.Secrets)
	ss.PreviousUntil = ss.PreviousUntil.UTC()
	secrets, err := json.Marshal(ss)
	if err != nil {
		return nil, errors.New("encode secrets")
	}
	ws := storedWebhookSecrets(t.WebhookSecrets)
	ws.PreviousUntil = ws.PreviousUntil.UTC()
	webhook, err := json.Marshal(ws)
	if err != nil {
		return nil, errors.New("encode webhook secrets")
	}
	row.SealedSecrets = sl.seal(secrets, colSecrets, row.ID)
	row.SealedWebhookSecrets = sl.seal(webhook, colWebhookSecrets, row.ID)
	return row, nil
}

// toDomain converts r to a tenant, opening its secrets.
func (r *tenantRow) toDomain(sl *sealer) (*tenant.Tenant, error) {
	if sl == nil {
		return nil, errNoSealKey
	}
	t := &tenant.Tenant{
		ID:                tenant.ID(r.ID),
		DisplayName:       r.DisplayName,
		AppID:             r.AppID,
		OriginalID:        r.OriginalID,
		WebhookURL:        r.WebhookURL,
		OrderedDelivery:   r.OrderedDelivery,
		IgnoreReplyWindow: r.IgnoreReplyWindow,
		PushSilenceAlert:  time.Duration(r.PushSilenceAlertSecs) * time.Second,
		APIKeyHash:        r.APIKeyHash,
		ComponentID:       tenant.ComponentID(r.ComponentID),
		CreateTime:        r.CreateTime.UTC(),
		UpdateTime:        r.UpdateTime.UTC(),
		Version:           r.Version,
	}
	var err error
	if t.EncryptMode, err = encryptModes.decode("encrypt_mode", r.EncryptMode); err != nil {
		return nil, fmt.Errorf("tenant %s: %w", r.ID, err)
	}
	if t.DataFormat, err = dataFormats.decode("data_format", r.DataFormat); err != nil {
		return nil, fmt.Errorf("tenant %s: %w", r.ID, err)
	}
	if t.ReplyMode, err = replyModes.decode("reply_mode", r.ReplyMode); err != nil {
		return nil, fmt.Errorf("tenant %s: %w", r.ID, err)
	}
	if t.State, err = states.decode("state", r.State); err != nil {
		return nil, fmt.Errorf("tenant %s: %w", r.ID, err)
	}
	if t.TokenEndpoint, err = tokenEndpoints.decode("token_endpoint", r.TokenEndpoint); err != nil {
		return nil, fmt.Errorf("tenant %s: %w", r.ID, err)
	}

	var secrets storedSecrets
	if err := openJSON(sl, r.SealedSecrets, colSecrets, r.ID, &secrets); err != nil {
		return nil, err
	}
	t.Secrets = tenant.Secrets(secrets)
	t.Secrets.PreviousUntil = t.Secrets.PreviousUntil.UTC()

	var webhook storedWebhookSecrets
	if err := openJSON(sl, r.SealedWebhookSecrets, colWebhookSecrets, r.ID, &webhook); err != nil {
		return nil, err
	}
	t.WebhookSecrets = tenant.WebhookSecrets(webhook)
	t.WebhookSecrets.PreviousUntil = t.WebhookSecrets.PreviousUntil.UTC()
	return t, nil
}

// openJSON opens a sealed value and decodes the JSON inside into v.
func openJSON(sl *sealer, sealed []byte, column, rowID string, v any) error {
	plain, err := sl.open(sealed, column, rowID)
	if err != nil {
		return fmt.Errorf("tenant %s: %s: %w", rowID, column, err)
	}
	if err := json.Unmarshal(plain, v); err != nil {
		// Not %w: a JSON syntax error quotes the text it choked on.
		return fmt.Errorf("tenant %s: %s: sealed value holds no valid JSON", rowID, column)
	}
	return nil
}

// enum maps the values of a domain enum to their stored names.
type enum[T comparable] []struct {
	v    T
	name string
}

func (e enum[T]) encode(column string, v T) (string, error) {
	for _, p := range e {
		if p.v == v {
			return p.name, nil
		}
	}
	return "", fmt.Errorf("%s: %v has no stored name", column, v)
}

func (e enum[T]) decode(column, name string) (T, error) {
	for _, p := range e {
		if p.name == name {
			return p.v, nil
		}
	}
	var zero T
	return zero, fmt.Errorf("%s: unknown stored value %q", column, name)
}

// IDByAppID returns the id of the tenant whose appid is appid, compared
// without regard to case as the unique index does. tenant.ErrNotFound.
func (s *TenantStore) IDByAppID(ctx context.Context, appid string) (tenant.ID, error) {
	var id string
	err := s.db.bun.NewSelect().Table("tenants").Column("id").
		Where("lower(appid) = lower(?)", appid).Scan(ctx, &id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("find tenant of appid %q: %w", appid, tenant.ErrNotFound)
	} else if err != nil {
		return "", fmt.Errorf("find tenant of appid %q: %w", appid, err)
	}
	return tenant.ID(id), nil
}

// ComponentTenantID returns the id of component cid's tenant for appid,
// compared without regard to case. tenant.ErrNotFound.
func (s *TenantStore) ComponentTenantID(ctx context.Context, cid tenant.ComponentID, appid string) (tenant.ID, error) {
	return componentTenantID(ctx, s.db.bun, cid, appid)
}

func componentTenantID(ctx context.Context, db bun.IDB, cid tenant.ComponentID, appid string) (tenant.ID, error) {
	var id string
	err := db.NewSelect().TableExpr("tenants AS t").Column("t.id").
		Where("t.component_id = ?", string(cid)).Where("lower(t.appid) = lower(?)", appid).Where(notMarked).Scan(ctx, &id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("tenant of appid %q of component %s: %w", appid, cid, tenant.ErrNotFound)
	} else if err != nil {
		return "", fmt.Errorf("tenant of appid %q of component %s: %w", appid, cid, err)
	}
	return tenant.ID(id), nil
}
