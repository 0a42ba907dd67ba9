package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/tenant"
)

// EventStore keeps WeChat's pushes in the events table. The table's unique
// (tenant_id, dedup_key) is what de-duplicates WeChat's retries, across
// processes and replicas alike.
type EventStore struct {
	db *DB

	// windows records reply-window triggers (store/window.go).
	windows windowRecorder
}

var _ relay.Store = (*EventStore)(nil)

// NewEventStore returns an EventStore on db.
func NewEventStore(db *DB) *EventStore { return &EventStore{db: db} }

// defaultEventPageSize is the page size of FindEvents when the filter names none.
const defaultEventPageSize = 50

// Limits on one INSERT or SELECT statement of AppendEvents. bun writes the
// values into the statement's text (bytes as hex), so a statement's size
// follows the bodies it carries: large batches of large pushes are split
// into several statements, still in the one transaction.
const (
	appendChunkRows  = 256
	appendChunkBytes = 4 << 20 // raw + payload
	lookupChunkRows  = 500
)

// appendAttempts bounds how often AppendEvents runs a batch that PostgreSQL
// aborted as a deadlock victim (see AppendEvents).
const appendAttempts = 3

// AppendEvents stores a batch of events in one transaction, so that the
// whole batch costs one durable commit (one fsync on SQLite), and reports
// for each event, in input order, the id it is stored under: its own when
// new, the original's when tenant and DedupKey were stored before, by this
// batch or an earlier one, by this process or another (Duplicate). A
// duplicate is not stored again.
//
// New events start pending, with no attempts, due at their ReceiveTime;
// their State and AttemptCount are not read. ID, TenantID, DedupKey and
// ReceiveTime are required: relay.ErrInvalid otherwise. An event of a tenant
// that does not exist (deleted meanwhile) fails the batch with
// tenant.ErrNotFound. An error means that nothing of the batch was stored,
// unless the connection broke during the COMMIT; either way, appending the
// batch again is safe, as what was stored reports as duplicates.
func (s *EventStore) AppendEvents(ctx context.Context, events []*relay.Event) ([]relay.AppendResult, error) {
	if len(events) == 0 {
		return nil, nil
	}
	b, err := newAppendBatch(events)
	if err != nil {
		return nil, fmt.Errorf("append events: %w", err)
	}
	b.db, b.windows = s.db, &s.windows
	if err := s.commit(ctx, b); err != nil {
		return nil, err
	}
	return b.results(), nil
}

// commit runs b's transaction: one durable commit (on SQLite, with the
// fsync of synchronous=FULL) for the whole batch.
func (s *EventStore) commit(ctx context.Context, b *appendBatch) error {
	// A commit to a file deleted under the process succeeds and is lost:
	// never "success" for that (one stat a batch).
	if err := s.db.fileGone(); err != nil {
		return fmt.Errorf("append events: %w", err)
	}
	// The batch's deadline holds while it waits for the write turn too: a
	// long writer must not hold pushes past WeChat's 5 s.
	release, err := s.db.writeTurn(ctx)
	if err != nil {
		return fmt.Errorf("append events: %w", err)
	}
	defer release()
	db := s.db.bun
	if err := b.prepare(ctx); err != nil {
		return fmt.Errorf("append events: %w", err)
	}
	for attempt := 1; ; attempt++ {
		err = db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			return b.run(ctx, tx)
		})
		// On PostgreSQL rows go in sorted (insertMultiRow), so batches
		// should not deadlock each other; should one still be the victim
		// of a deadlock (with a tenant update, say), its work was rolled
		// back: run it again.
		if err == nil || !isDeadlock(err) || attempt == appendAttempts {
			break
		}
	}
	switch {
	case isForeignKeyViolation(err):
		return fmt.Errorf("append events: a tenant of the batch does not exist: %w", tenant.ErrNotFound)
	case err != nil:
		return fmt.Errorf("append events: %w", err)
	}
	s.windows.committed(ctx, db, b.windowWrite)
	return nil
}

// appendBatch is one call of AppendEvents: the rows to insert, and what
// became of them.
type appendBatch struct {
	events []*relay.Event
	// rows holds the first event of each (tenant, dedup key) in the batch.
	rows []*eventRow
	// row[i] is the index in rows of events[i] or of the event it repeats,
	// and first[j] the index in events of rows[j].
	row   []int
	first []int
	// stored[j] is the id that rows[j] is stored under, and dup[j] whether
	// that is an earlier event's; both are set by run.
	stored []string
	// prepared and preparedBody are sqliteInsert and sqliteInsertBody
	// prepared on the pool (SQLite only).
	prepared, preparedBody *sql.Stmt
	dup                    []bool

	// Reply windows, written with the events (store/window.go).
	db          *DB
	windows     *windowRecorder
	windowWrite windowWrite
}

type dedupKey struct{ tenantID, key string }

// prepare prepares the SQLite statements that run inserts (once per
// pool); on PostgreSQL it does nothing.
func (b *appendBatch) prepare(ctx context.Context) error {
	db := b.db.bun
	if db.Dialect().Name() != dialect.SQLite {
		return nil
	}
	var err error
	if b.prepared, err = b.db.prepared(ctx, db, sqliteInsert); err != nil {
		return err
	}
	b.preparedBody, err = b.db.prepared(ctx, db, sqliteInsertBody)
	return err
}

// appendInTx stores events in tx, a transaction of another change that
// they must commit with (an outbox): the caller holds the write turn.
// Reply windows are not recorded: such events come from no user.
func appendInTx(ctx context.Context, db *DB, tx bun.Tx, events []*relay.Event) error {
	b, err := newAppendBatch(events)
	if err != nil {
		return err
	}
	b.db = db
	if err := b.prepare(ctx); err != nil {
		return err
	}
	return b.run(ctx, tx)
}

func newAppendBatch(events []*relay.Event) (*appendBatch, error) {
	b := &appendBatch{events: events, row: make([]int, len(events))}
	seen := make(map[dedupKey]int, len(events))
	for i, e := range events {
		if err := validateNewEvent(e); err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
		k := dedupKey{string(e.TenantID), e.DedupKey}
		if j, ok := seen[k]; ok {
			b.row[i] = j // WeChat retried while the first was still queued
			continue
		}
		seen[k] = len(b.rows)
		b.row[i] = len(b.rows)
		b.first = append(b.first, i)
		b.rows = append(b.rows, newEventRow(e))
	}
	b.stored = make([]string, len(b.rows))
	b.dup = make([]bool, len(b.rows))
	return b, nil
}

func validateNewEvent(e *relay.Event) error {
	switch {
	case e == nil:
		return fmt.Errorf("nil event: %w", relay.ErrInvalid)
	case e.ID == "":
		return fmt.Errorf("no id: %w", relay.ErrInvalid)
	case e.TenantID == "":
		return fmt.Errorf("%s: no tenant: %w", e.ID, relay.ErrInvalid)
	case e.DedupKey == "":
		return fmt.Errorf("%s: no dedup key: %w", e.ID, relay.ErrInvalid)
	case e.ReceiveTime.IsZero():
		return fmt.Errorf("%s: no receive time: %w", e.ID, relay.ErrInvalid)
	}
	return nil
}

// run inserts the batch's rows, skipping those whose key is stored already,
// and looks up the ids of the rows stored before. It may run more than once.
// refuseDeleted fails the batch with tenant.ErrNotFound if a tenant of it
// is deleted: one look at the small tenant_deletions table a batch.
func (b *appendBatch) refuseDeleted(ctx context.Context, tx bun.Tx) error {
	seen := make(map[tenant.ID]bool, 1)
	var tids []string
	for _, e := range b.events {
		if !seen[e.TenantID] {
			seen[e.TenantID] = true
			tids = append(tids, string(e.TenantID))
		}
	}
	n, err := tx.NewSelect().Table("tenant_deletions").Where("tenant_id IN (?)", bun.In(tids)).Count(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("a tenant of the batch was deleted: %w", tenant.ErrNotFound)
	}
	return nil
}

func (b *appendBatch) run(ctx context.Context, tx bun.Tx) error {
	index := make(map[string]int, len(b.rows)) // row id → index in rows
	for j, r := range b.rows {
		index[r.ID] = j
		b.stored[j], b.dup[j] = "", false
	}

	// A deleted tenant's row stays until its purge (TenantStore.Delete),
	// so its foreign key no longer refuses the push of a replica that has
	// not heard of the deletion yet: the mark does.
	if err := b.refuseDeleted(ctx, tx); err != nil {
		return err
	}
	var err error
	if tx.Dialect().Name() == dialect.SQLite {
		err = b.insertPrepared(ctx, tx, b.prepared, b.preparedBody)
	} else {
		err = b.insertMultiRow(ctx, tx, index)
	}
	if err != nil {
		return err
	}
	if err := b.recordWindows(ctx, tx); err != nil {
		return err
	}

	// The rest are retries of events stored before: report the originals.
	var missing []int
	for j := range b.rows {
		if b.stored[j] == "" {
			missing = append(missing, j)
		}
	}
	for start := 0; start < len(missing); start += lookupChunkRows {
		chunk := missing[start:min(start+lookupChunkRows, len(missing))]
		keys := make([]bun.TupleValues, 0, len(chunk))
		for _, j := range chunk {
			keys = append(keys, bun.Tuple([]any{b.rows[j].TenantID, b.rows[j].DedupKey}))
		}
		var found []struct {
			TenantID string `bun:"tenant_id"`
			DedupKey string `bun:"dedup_key"`
			ID       string `bun:"id"`
		}
		// A row value IN a VALUES list: both engines accept it and search
		// the unique (tenant_id, dedup_key) index for each pair.
		err := tx.NewSelect().Table("events").Column("tenant_id", "dedup_key", "id").
			Where("(tenant_id, dedup_key) IN (VALUES ?)", bun.List(keys)).
			Scan(ctx, &found)
		if err != nil {
			return fmt.Errorf("find originals of duplicate events: %w", err)
		}
		byKey := make(map[dedupKey]string, len(found))
		for _, f := range found {
			byKey[dedupKey{f.TenantID, f.DedupKey}] = f.ID
		}
		for _, j := range chunk {
			id, ok := byKey[dedupKey{b.rows[j].TenantID, b.rows[j].DedupKey}]
			if !ok {
				// Its insert conflicted with a row that is gone now: its
				// tenant was deleted meanwhile.
				return fmt.Errorf("event %s: the original of dedup key %q disappeared: %w", b.rows[j].ID, b.rows[j].DedupKey, tenant.ErrNotFound)
			}
			b.stored[j], b.dup[j] = id, true
		}
	}
	return nil
}

// insertMultiRow inserts with multi-row INSERTs: a statement per chunk
// rather than per event made a batch of 128 take some 40% less time
// (BenchmarkAppendEvents), as each statement is a round trip to PostgreSQL.
func (b *appendBatch) insertMultiRow(ctx context.Context, tx bun.Tx, index map[string]int) error {
	if err := b.setOrdered(ctx, tx); err != nil {
		return err
	}
	// Rows go in sorted by (tenant, dedup key), not in the batch's order,
	// so that every batch takes the unique index's locks in one global
	// order: concurrent batches holding overlapping keys (replicas
	// receiving WeChat's retries) then wait for each other instead of
	// deadlocking. Each deadlock cost a second (PostgreSQL's
	// deadlock_timeout) and a retry, and chains of them under contention
	// outlasted the driver's read timeout (TestEventStore_AppendConcurrently
	// failed so in CI). The pushes of one batch arrived within the same
	// commit, so their relative order was arbitrary anyway; the reply
	// windows written next are sorted too, which keeps the whole
	// transaction free of lock cycles.
	rows := slices.Clone(b.rows)
	slices.SortFunc(rows, func(x, y *eventRow) int {
		return cmp.Or(strings.Compare(x.TenantID, y.TenantID), strings.Compare(x.DedupKey, y.DedupKey))
	})
	for start, end := 0, 0; start < len(rows); start = end {
		end = chunkEnd(rows, start)
		chunk := rows[start:end]
		// RETURNING yields the inserted rows only, in no promised order;
		// ids tell them apart.
		var inserted []struct {
			ID  string `bun:"id"`
			Seq int64  `bun:"seq"`
		}
		_, err := tx.NewInsert().Model(&chunk).
			On("CONFLICT (tenant_id, dedup_key) DO NOTHING").
			Returning("id, seq").
			Exec(ctx, &inserted)
		if err != nil {
			return fmt.Errorf("insert events: %w", err)
		}
		if len(inserted) == 0 {
			continue
		}
		bodies := make([]*bodyRow, 0, len(inserted))
		for _, in := range inserted {
			j, ok := index[in.ID]
			if !ok {
				return fmt.Errorf("insert events: database returned unknown id %q", in.ID)
			}
			b.stored[j] = in.ID
			bodies = append(bodies, &bodyRow{Seq: in.Seq, Raw: b.rows[j].Raw, Payload: b.rows[j].Payload})
		}
		if _, err := tx.NewInsert().Model(&bodies).Exec(ctx); err != nil {
			return fmt.Errorf("insert event bodies: %w", err)
		}
	}
	return nil
}

// setOrdered copies the ordered_delivery of the batch's tenants onto its
// rows. FOR SHARE holds the tenants until the batch commits, so that a
// tenant update changing the setting, which marks the tenant's stored
// events anew (TenantStore.Update), either comes after the batch and marks
// its events too, or before and is what the batch reads.
func (b *appendBatch) setOrdered(ctx context.Context, tx bun.Tx) error {
	var ids []string
	seen := make(map[string]bool)
	for _, r := range b.rows {
		if !seen[r.TenantID] {
			seen[r.TenantID] = true
			ids = append(ids, r.TenantID)
		}
	}
	slices.Sort(ids) // one locking order for every batch
	var ordered []string
	err := tx.NewSelect().Table("tenants").Column("id").
		Where("id IN (?)", bun.List(ids)).
		Where("ordered_delivery").
		OrderExpr("id").
		For("SHARE").
		Scan(ctx, &ordered)
	if err != nil {
		return fmt.Errorf("read the ordered delivery of tenants: %w", err)
	}
	for _, r := range b.rows {
		r.Ordered = slices.Contains(ordered, r.TenantID)
	}
	return nil
}

// sqliteInsert is one event's INSERT with bound parameters. SQLite has no
// round trips to save, and a multi-row statement with its values written
// into the text (as bun writes them, bodies in hex) costs more to build and
// parse than the same prepared statement run per row with the bodies bound
// as blobs: the single ingest writer is the push path's bottleneck, so this
// matters (BenchmarkPush in relay/ingress).
//
// ordered copies the tenant's ordered_delivery (see ordered in eventRow);
// an unknown tenant reads as FALSE and then fails the foreign key.
//
// sqliteInsertBody stores the bodies of the event just inserted, under the
// rowid that the insert gave it.
const (
	sqliteInsert = `INSERT INTO events (id, tenant_id, dedup_key, type, openid, create_time, receive_time, state, attempt_count, next_attempt_at, ordered)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', 0, ?8, coalesce((SELECT ordered_delivery FROM tenants WHERE id = ?2), FALSE))
ON CONFLICT (tenant_id, dedup_key) DO NOTHING`
	sqliteInsertBody = `INSERT INTO event_bodies (seq, raw, payload) VALUES (last_insert_rowid(), ?1, ?2)`
)

func (b *appendBatch) insertPrepared(ctx context.Context, tx bun.Tx, prepared, preparedBody *sql.Stmt) error {
	stmt, body := tx.Tx.StmtContext(ctx, prepared), tx.Tx.StmtContext(ctx, preparedBody)
	defer stmt.Close()
	defer body.Close()
	for j, r := range b.rows {
		res, err := stmt.ExecContext(ctx, r.ID, r.TenantID, r.DedupKey, r.Type, r.OpenID,
			sqliteTime(r.CreateTime), sqliteTime(r.ReceiveTime), sqliteTime(r.NextAttemptAt))
		if err != nil {
			return fmt.Errorf("insert events: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("insert events: %w", err)
		} else if n == 1 {
			if _, err := body.ExecContext(ctx, r.Raw, r.Payload); err != nil {
				return fmt.Errorf("insert event bodies: %w", err)
			}
			b.stored[j] = r.ID
		}
	}
	return nil
}

// sqliteTime writes t as bun writes times into SQLite, so that stored times
// compare as text with the ones bun's queries carry.
func sqliteTime(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05.999999-07:00")
}

// chunkEnd returns where the INSERT statement that starts at rows[start]
// ends: after appendChunkRows rows, or before its bodies exceed
// appendChunkBytes, but after one row at least.
func chunkEnd(rows []*eventRow, start int) int {
	end, size := start+1, rows[start].size()
	for end < len(rows) && end-start < appendChunkRows && size+rows[end].size() <= appendChunkBytes {
		size += rows[end].size()
		end++
	}
	return end
}

// results reports the outcome of a batch that run has committed.
func (b *appendBatch) results() []relay.AppendResult {
	res := make([]relay.AppendResult, len(b.events))
	for i := range b.events {
		j := b.row[i]
		res[i] = relay.AppendResult{
			ID: relay.EventID(b.stored[j]),
			// A repeat within the batch is a duplicate even though the
			// event it repeats is new.
			Duplicate: b.dup[j] || i != b.first[j],
		}
	}
	return res
}

// FindEvent returns tenant tid's event id. relay.ErrNotFound, also when the
// event belongs to another tenant.
func (s *EventStore) FindEvent(ctx context.Context, tid tenant.ID, id relay.EventID) (*relay.Event, error) {
	var row eventRow
	err := s.db.bun.NewSelect().Model(&row).
		ColumnExpr("?TableColumns, b.raw, b.payload").
		Join("JOIN event_bodies AS b ON b.seq = e.seq").
		Where("e.tenant_id = ?", string(tid)).
		Where("e.id = ?", string(id)).
		Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("find event %s of tenant %s: %w", id, tid, relay.ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("find event %s of tenant %s: %w", id, tid, err)
	}
	return row.toDomain()
}

// FindEvents returns up to f.PageSize (50 if it is not positive) of tenant
// tid's events, newest first, starting below the cursor f.Before when it is
// positive. Paging by cursor rather than by offset keeps pages from
// overlapping while events arrive. The events come without Raw and Payload:
// a page of listings need not read up to a megabyte per event.
func (s *EventStore) FindEvents(ctx context.Context, tid tenant.ID, f relay.EventFilter) ([]relay.StoredEvent, error) {
	limit := f.PageSize
	if limit <= 0 {
		limit = defaultEventPageSize
	}
	var rows []eventRow
	q := s.db.bun.NewSelect().Model(&rows).
		Where("tenant_id = ?", string(tid)).
		OrderExpr("seq DESC").
		Limit(int64(limit))
	if f.Before > 0 {
		q = q.Where("seq < ?", f.Before)
	}
	if f.Type != "" {
		q = q.Where("type = ?", f.Type)
	}
	if f.OpenID != "" {
		q = q.Where("openid = ?", f.OpenID)
	}
	if f.State != relay.StateUnspecified {
		name, err := eventStates.encode("state", f.State)
		if err != nil {
			return nil, err
		}
		q = q.Where("state = ?", name)
	}
	if !f.ReceivedAfter.IsZero() {
		q = q.Where("receive_time >= ?", f.ReceivedAfter.UTC())
	}
	if !f.ReceivedBefore.IsZero() {
		q = q.Where("receive_time < ?", f.ReceivedBefore.UTC())
	}
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("find events of tenant %s: %w", tid, err)
	}
	out := make([]relay.StoredEvent, 0, len(rows))
	for i := range rows {
		e, err := rows[i].toDomain()
		if err != nil {
			return nil, fmt.Errorf("find events of tenant %s: %w", tid, err)
		}
		out = append(out, relay.StoredEvent{Event: e, Cursor: rows[i].Seq})
	}
	return out, nil
}

// SearchEvents returns up to limit events, newest first, of any tenant,
// whose id is q or whose user (openid) is q: the operator's search. It
// reads by the primary key and by events_openid. Like FindEvents, the
// events come without Raw and Payload.
func (s *EventStore) SearchEvents(ctx context.Context, q string, limit int) ([]*relay.Event, error) {
	var rows []eventRow
	err := s.db.bun.NewSelect().Model(&rows).
		WhereGroup(" AND ", func(q2 *bun.SelectQuery) *bun.SelectQuery {
			return q2.Where("id = ?", q).WhereOr("openid = ?", q)
		}).
		Where("tenant_id NOT IN (SELECT tenant_id FROM tenant_deletions)").
		OrderExpr("seq DESC").Limit(int64(limit)).Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("search events for %q: %w", q, err)
	}
	out := make([]*relay.Event, 0, len(rows))
	for i := range rows {
		e, err := rows[i].toDomain()
		if err != nil {
			return nil, fmt.Errorf("search events: %w", err)
		}
		out = append(out, e)
	}
	return out, nil
}

// eventRow is a row of the events table, without the columns that belong
// to delivery (retry_index, finished_at and the lease: delivery.go). Times
// are UTC; bun writes them with microseconds.
type eventRow struct {
	bun.BaseModel `bun:"table:events,alias:e"`

	Seq         int64     `bun:"seq,pk,autoincrement"`
	ID          string    `bun:"id"`
	TenantID    string    `bun:"tenant_id"`
	DedupKey    string    `bun:"dedup_key"`
	Type        string    `bun:"type"`
	OpenID      string    `bun:"openid"`
	CreateTime  time.Time `bun:"create_time"`
	ReceiveTime time.Time `bun:"receive_time"`
	// The bodies, kept in event_bodies (bodyRow), not in the events row:
	// written with it, read by a join.
	Raw           []byte    `bun:"raw,scanonly"`
	Payload       []byte    `bun:"payload,scanonly"`
	State         string    `bun:"state"`
	AttemptCount  int       `bun:"attempt_count"`
	NextAttemptAt time.Time `bun:"next_attempt_at"`
	// Ordered is the tenant's ordered_delivery, copied so that the index
	// of the ordering check, events_pending_openid, is partial on it and
	// costs the pushes of other tenants nothing. Written by AppendEvents
	// and TenantStore.Update only.
	Ordered bool `bun:"ordered"`
}

// bodyRow is a row of event_bodies: the bodies of the event seq, apart
// from its row, which delivery rewrites (see the migration event_bodies).
type bodyRow struct {
	bun.BaseModel `bun:"table:event_bodies"`

	Seq     int64  `bun:"seq,pk"`
	Raw     []byte `bun:"raw"`
	Payload []byte `bun:"payload"`
}

// eventStates are the stored names of relay.State.
var eventStates = enum[relay.State]{
	{relay.StatePending, "pending"},
	{relay.StateDelivered, "delivered"},
	{relay.StateFailed, "failed"},
}

// newEventRow converts an event about to be stored for the first time: it
// is pending, with no attempts, and due at once.
func newEventRow(e *relay.Event) *eventRow {
	return &eventRow{
		ID:            string(e.ID),
		TenantID:      string(e.TenantID),
		DedupKey:      e.DedupKey,
		Type:          e.Type,
		OpenID:        e.OpenID,
		CreateTime:    e.CreateTime.UTC(),
		ReceiveTime:   e.ReceiveTime.UTC(),
		Raw:           nonNil(e.Raw),
		Payload:       nonNil(e.Payload),
		State:         "pending",
		NextAttemptAt: dueAt(e),
	}
}

// dueAt is when a new event's first delivery attempt is due.
func dueAt(e *relay.Event) time.Time {
	if e.DueAt.IsZero() {
		return e.ReceiveTime.UTC()
	}
	return e.DueAt.UTC()
}

// size is what the row's bodies add to an INSERT statement.
func (r *eventRow) size() int { return len(r.Raw) + len(r.Payload) }

func (r *eventRow) toDomain() (*relay.Event, error) {
	state, err := eventStates.decode("state", r.State)
	if err != nil {
		return nil, fmt.Errorf("event %s: %w", r.ID, err)
	}
	return &relay.Event{
		ID:           relay.EventID(r.ID),
		TenantID:     tenant.ID(r.TenantID),
		DedupKey:     r.DedupKey,
		Type:         r.Type,
		OpenID:       r.OpenID,
		CreateTime:   r.CreateTime.UTC(),
		ReceiveTime:  r.ReceiveTime.UTC(),
		Raw:          r.Raw,
		Payload:      r.Payload,
		State:        state,
		AttemptCount: r.AttemptCount,
		DueAt:        r.NextAttemptAt.UTC(),
	}, nil
}

// nonNil keeps a nil body from becoming NULL in a NOT NULL column.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// isDeadlock reports whether PostgreSQL aborted the transaction to break a
// deadlock or a serialization conflict; running it again may succeed.
func isDeadlock(err error) bool {
	var pe pgdriver.Error
	return errors.As(err, &pe) && (pe.Field('C') == "40P01" || pe.Field('C') == "40001")
}

// isForeignKeyViolation reports whether err is a foreign key violation on
// either engine.
func isForeignKeyViolation(err error) bool {
	var le sqlite3.Error
	var pe pgdriver.Error
	return (errors.As(err, &le) && le.ExtendedCode == sqlite3.ErrConstraintForeignKey) ||
		(errors.As(err, &pe) && pe.Field('C') == "23503")
}
