package store

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/wxrelay/wxrelay/relay/message"
	"github.com/wxrelay/wxrelay/tenant"
)

// Reply windows (relay/message/window.go) live in two small tables
// (migration 20261201090000_reply_windows): reply_windows, a row per
// tenant and user with the times of the user's last message and session
// entry and the sends reserved since each, and reply_window_tenants, since
// when the relay has stored each tenant's pushes.
//
// Triggers are written at ingest, by AppendEvents, in the transaction that
// stores the push: one upsert per distinct user of a batch with a trigger.
// The alternative, reading the last trigger from events at send time,
// would need an index on events (tenant_id, openid, ...) that every push
// pays for too, and events are pruned by retention, which would then have
// to be kept longer than the window. The table costs about the same per
// push as such an index entry (docs/benchmarks.md, reply windows) and holds
// a row per user rather than per push.
//
// Times are Unix milliseconds, 0 for none: integers compare the same on
// both engines, also inside the upsert's CASE expressions.

// WindowStore implements message.WindowStore. Its writes (reservations,
// give-backs, pruning) commit on the relaxed pool, without an fsync of
// their own on SQLite, so that the check adds no fsync to a send: a crash
// may lose the newest of them, which only makes the relay count fewer sends
// than it made, the lenient direction.
type WindowStore struct {
	db *DB
}

var _ message.WindowStore = (*WindowStore)(nil)

// NewWindowStore returns a WindowStore on db.
func NewWindowStore(db *DB) *WindowStore { return &WindowStore{db: db} }

type windowRow struct {
	bun.BaseModel `bun:"table:reply_windows"`

	TenantID   string `bun:"tenant_id,pk"`
	OpenID     string `bun:"openid,pk"`
	MsgAt      int64  `bun:"msg_at"`
	MsgSends   int    `bun:"msg_sends"`
	EnterAt    int64  `bun:"enter_at"`
	EnterSends int    `bun:"enter_sends"`
}

func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// The send path's statements. Their text is constant, with bound
// parameters, so that on SQLite each is prepared once (DB.prepared) rather
// than compiled for every send, which bun's inlined values would make it.
const (
	reserveSQL = `UPDATE reply_windows SET msg_sends = msg_sends + 1, enter_sends = enter_sends + 1
WHERE tenant_id = ? AND openid = ?
AND ((msg_at > ? AND msg_sends < ?) OR (enter_at > ? AND enter_sends < ?))
RETURNING msg_at, enter_at`
	releaseSQL = `UPDATE reply_windows SET
msg_sends = CASE WHEN msg_at = ? AND msg_sends > 0 THEN msg_sends - 1 ELSE msg_sends END,
enter_sends = CASE WHEN enter_at = ? AND enter_sends > 0 THEN enter_sends - 1 ELSE enter_sends END
WHERE tenant_id = ? AND openid = ?`
	// A user's window with the tenant's since, in one read. Without a
	// since (no push stored yet) nothing is known, whatever the row says.
	readSQL = `SELECT t.since, coalesce(w.msg_at, 0), coalesce(w.msg_sends, 0), coalesce(w.enter_at, 0), coalesce(w.enter_sends, 0)
FROM reply_window_tenants t LEFT JOIN reply_windows w ON w.tenant_id = t.tenant_id AND w.openid = ?
WHERE t.tenant_id = ?`
)

// query runs a send-path statement: prepared on SQLite (DB.prepared), through
// bun on PostgreSQL.
func (s *WindowStore) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if s.db.bun.Dialect().Name() != dialect.SQLite {
		return s.db.relaxed.QueryContext(ctx, query, args...)
	}
	stmt, err := s.db.prepared(ctx, s.db.relaxed, query)
	if err != nil {
		return nil, err
	}
	return stmt.QueryContext(ctx, args...)
}

// ReserveReplySlot implements message.WindowStore. One conditional UPDATE:
// of concurrent reservations, in this process or another replica, the row
// lock lets each see the count the previous one left, so no more than the
// quota ever pass. A send counts against both triggers that precede it;
// the count of a window that is closed by time is never read before a new
// trigger resets it.
func (s *WindowStore) ReserveReplySlot(ctx context.Context, tid tenant.ID, openid string, messageAfter, enterAfter time.Time) (message.Slot, bool, error) {
	defer s.db.serialize()()
	rows, err := s.query(ctx, reserveSQL,
		string(tid), openid, millis(messageAfter), message.MessageQuota, millis(enterAfter), message.EnterQuota)
	if err != nil {
		return message.Slot{}, false, fmt.Errorf("reserve a reply slot of tenant %s: %w", tid, err)
	}
	defer rows.Close()
	var msgAt, enterAt int64
	ok := rows.Next()
	if ok {
		err = rows.Scan(&msgAt, &enterAt)
	}
	if err == nil {
		err = rows.Close()
	}
	if err != nil {
		return message.Slot{}, false, fmt.Errorf("reserve a reply slot of tenant %s: %w", tid, err)
	}
	if !ok {
		return message.Slot{}, false, nil
	}
	return message.Slot{OpenID: openid, MessageAt: fromMillis(msgAt), EnterAt: fromMillis(enterAt)}, true, nil
}

// ReleaseReplySlot implements message.WindowStore: a count is only given
// back to the trigger it was taken from; a newer trigger has reset it.
func (s *WindowStore) ReleaseReplySlot(ctx context.Context, tid tenant.ID, slot message.Slot) error {
	defer s.db.serialize()()
	rows, err := s.query(ctx, releaseSQL,
		millis(slot.MessageAt), millis(slot.EnterAt), string(tid), slot.OpenID)
	if err == nil {
		err = rows.Close()
	}
	if err != nil {
		return fmt.Errorf("give back a reply slot of tenant %s: %w", tid, err)
	}
	return nil
}

// ReplyWindow implements message.WindowStore.
func (s *WindowStore) ReplyWindow(ctx context.Context, tid tenant.ID, openid string) (message.Window, error) {
	rows, err := s.query(ctx, readSQL, openid, string(tid))
	if err != nil {
		return message.Window{}, fmt.Errorf("read the reply window of tenant %s: %w", tid, err)
	}
	defer rows.Close()
	var since, msgAt, enterAt int64
	var w message.Window
	if rows.Next() {
		if err := rows.Scan(&since, &msgAt, &w.MessageSends, &enterAt, &w.EnterSends); err != nil {
			return message.Window{}, fmt.Errorf("read the reply window of tenant %s: %w", tid, err)
		}
		w.Since, w.MessageAt, w.EnterAt = fromMillis(since), fromMillis(msgAt), fromMillis(enterAt)
	}
	if err := rows.Close(); err != nil {
		return message.Window{}, fmt.Errorf("read the reply window of tenant %s: %w", tid, err)
	}
	return w, nil
}

// PruneReplyWindows deletes up to limit windows, of any tenant, whose
// triggers are all before cutoff: the hourly job's work, for tenants that
// send through the relay or not.
func (s *WindowStore) PruneReplyWindows(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	defer s.db.serialize()()
	res, err := s.db.bun.NewRaw(`DELETE FROM reply_windows WHERE (tenant_id, openid) IN (
SELECT tenant_id, openid FROM reply_windows WHERE msg_at < ? AND enter_at < ? LIMIT ?)`,
		millis(cutoff), millis(cutoff), limit).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("prune reply windows: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// restartReplyWindows makes the relay's knowledge of tid's windows start
// at t: its triggers before t may be unknown.
func restartReplyWindows(ctx context.Context, tx bun.Tx, tid tenant.ID, t time.Time) error {
	_, err := tx.NewRaw(`UPDATE reply_window_tenants SET since = ? WHERE tenant_id = ? AND since < ?`,
		millis(t), string(tid), millis(t)).Exec(ctx)
	return err
}

// windowWrite is what one batch of AppendEvents does to reply windows: a
// trigger per user, the latest of the batch's, and the first receive time
// of each tenant the process has not recorded since for yet.
type windowWrite struct {
	triggers []windowRow
	since    map[string]int64
}

// windowRecorder remembers the tenants whose since is recorded, so that
// most batches skip that statement.
type windowRecorder struct {
	known sync.Map // tenant id → struct{}
}

// collect gathers the batch's new events' window writes. Only events
// stored by this batch count: a retry of a stored push carries a later
// receive time, which would otherwise move the trigger and reset its count.
func (wr *windowRecorder) collect(b *appendBatch) windowWrite {
	var w windowWrite
	type userKey struct{ tenantID, openid string }
	at := map[userKey]int{}
	for j, r := range b.rows {
		if b.stored[j] != r.ID || b.events[b.first[j]].NoReplyWindow {
			continue
		}
		recv := millis(r.ReceiveTime)
		if _, ok := wr.known.Load(r.TenantID); !ok {
			if w.since == nil {
				w.since = map[string]int64{}
			}
			if old, ok := w.since[r.TenantID]; !ok || recv < old {
				w.since[r.TenantID] = recv
			}
		}
		kind := message.TriggerOf(r.Type)
		if kind == message.TriggerNone || r.OpenID == "" {
			continue
		}
		t := millis(message.TriggerTime(r.CreateTime, r.ReceiveTime))
		k := userKey{r.TenantID, r.OpenID}
		i, ok := at[k]
		if !ok {
			i = len(w.triggers)
			at[k] = i
			w.triggers = append(w.triggers, windowRow{TenantID: r.TenantID, OpenID: r.OpenID})
		}
		tr := &w.triggers[i]
		if kind == message.TriggerMessage {
			tr.MsgAt = max(tr.MsgAt, t)
		} else {
			tr.EnterAt = max(tr.EnterAt, t)
		}
	}
	// One locking order for every batch, as for the tenants in setOrdered.
	slices.SortFunc(w.triggers, func(a, b windowRow) int {
		return cmp.Or(cmp.Compare(a.TenantID, b.TenantID), cmp.Compare(a.OpenID, b.OpenID))
	})
	return w
}

// windowUpsertSet moves a user's triggers forward; a later trigger resets
// its count (the quota is back at its maximum), an earlier one, such as a
// push WeChat delivered late, changes nothing.
const windowUpsertSet = `ON CONFLICT (tenant_id, openid) DO UPDATE SET
msg_sends = CASE WHEN excluded.msg_at > reply_windows.msg_at THEN 0 ELSE reply_windows.msg_sends END,
msg_at = CASE WHEN excluded.msg_at > reply_windows.msg_at THEN excluded.msg_at ELSE reply_windows.msg_at END,
enter_sends = CASE WHEN excluded.enter_at > reply_windows.enter_at THEN 0 ELSE reply_windows.enter_sends END,
enter_at = CASE WHEN excluded.enter_at > reply_windows.enter_at THEN excluded.enter_at ELSE reply_windows.enter_at END`

// sqliteWindowUpsert is one user's upsert, prepared once on the pool where
// event batches commit, and run per user like sqliteInsert, for the same
// reason.
const sqliteWindowUpsert = `INSERT INTO reply_windows (tenant_id, openid, msg_at, enter_at) VALUES (?1, ?2, ?3, ?4) ` + windowUpsertSet

const sinceInsert = `INSERT INTO reply_window_tenants (tenant_id, since) VALUES ? ON CONFLICT (tenant_id) DO NOTHING`

// write records w's triggers in tx.
func (wr *windowRecorder) write(ctx context.Context, tx bun.Tx, db *DB, w windowWrite) error {
	if len(w.triggers) == 0 {
		return nil
	}
	if tx.Dialect().Name() == dialect.SQLite {
		stmt, err := db.prepared(ctx, db.bun, sqliteWindowUpsert)
		if err != nil {
			return fmt.Errorf("record reply windows: %w", err)
		}
		txStmt := tx.Tx.StmtContext(ctx, stmt)
		defer txStmt.Close()
		for _, r := range w.triggers {
			if _, err := txStmt.ExecContext(ctx, r.TenantID, r.OpenID, r.MsgAt, r.EnterAt); err != nil {
				return fmt.Errorf("record reply windows: %w", err)
			}
		}
		return nil
	}
	vals := make([]bun.TupleValues, 0, len(w.triggers))
	for _, r := range w.triggers {
		vals = append(vals, bun.Tuple([]any{r.TenantID, r.OpenID, r.MsgAt, r.EnterAt}))
	}
	_, err := tx.NewRaw(`INSERT INTO reply_windows (tenant_id, openid, msg_at, enter_at) VALUES ? `+windowUpsertSet, bun.List(vals)).Exec(ctx)
	if err != nil {
		return fmt.Errorf("record reply windows: %w", err)
	}
	return nil
}

// recordWindows writes the reply-window changes of the batch's new events,
// in the transaction that stores them.
func (b *appendBatch) recordWindows(ctx context.Context, tx bun.Tx) error {
	if b.windows == nil {
		return nil
	}
	b.windowWrite = b.windows.collect(b)
	return b.windows.write(ctx, tx, b.db, b.windowWrite)
}

// committed records since when the batch's tenants are known, for those
// this process has not recorded yet: after the commit and in a statement of
// its own, so that the claim is true once made (the events are stored), and
// so that no ingest transaction waits on another's uncommitted row of the
// same tenant, which with their event rows could deadlock. A failure is
// harmless: a later batch records a later since.
func (wr *windowRecorder) committed(ctx context.Context, db bun.IDB, w windowWrite) {
	if len(w.since) == 0 {
		return
	}
	ids := make([]string, 0, len(w.since))
	for id := range w.since {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	vals := make([]bun.TupleValues, 0, len(ids))
	for _, id := range ids {
		vals = append(vals, bun.Tuple([]any{id, w.since[id]}))
	}
	if _, err := db.NewRaw(sinceInsert, bun.List(vals)).Exec(ctx); err != nil {
		return
	}
	for _, id := range ids {
		wr.known.Store(id, struct{}{})
	}
}
