package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/uptrace/bun"

	"github.com/wxrelay/wxrelay/relay/delivery"
	"github.com/wxrelay/wxrelay/tenant"
)

// sqliteDelivery is the delivery engine of SQLite (see deliveryEngine).
type sqliteDelivery struct{ db *DB }

// record is Record on SQLite, with statements prepared once per
// connection and run per outcome.
func (e *sqliteDelivery) record(ctx context.Context, recs []outcomeRecord) error {
	ins, err := e.stmt(ctx, sqliteInsertAttempt)
	if err != nil {
		return err
	}
	upd, err := e.stmt(ctx, sqliteRecordOutcome)
	if err != nil {
		return err
	}
	return e.db.relaxed.RunInTx(uncancellable(ctx), nil, func(ctx context.Context, tx bun.Tx) error {
		return recordPrepared(ctx, tx, ins, upd, recs)
	})
}

// ClaimDue's statements on SQLite: the same three steps as the query
// ClaimDue builds for PostgreSQL, as statements in one transaction, with
// parameters, so that each is prepared once per connection (see
// DB.prepared). SQLite's single write lock, taken at BEGIN, serialises
// claims, so nothing is locked row by row.
//
// SQLite has no LATERAL. Step 2 has two forms: a query per tenant, or one
// query for all of them, the per-tenant subquery correlated with the
// tenant in a join condition (x.seq IN (...)). The one query costs about
// 6 µs a tenant, but some 80 µs more whatever the number of tenants; a
// query per tenant costs about 40 µs. So a claim among a few tenants, as
// when one tenant's backlog drains, runs a query per tenant, and a claim
// among more runs the one query: with 1,000 tenants with due events, 6 ms
// a claim against 39 ms.
const (
	// 1. pt: the tenants that have pending events, active and not
	// excluded. ?1 is the excluded tenants as a JSON array.
	sqliteClaimTenants = `WITH RECURSIVE pt(id) AS (
	SELECT (SELECT min(tenant_id) FROM events WHERE state = 'pending')
	UNION ALL
	SELECT (SELECT min(n.tenant_id) FROM events AS n WHERE n.state = 'pending' AND n.tenant_id > pt.id)
	FROM pt WHERE pt.id IS NOT NULL
)
SELECT t.id, t.ordered_delivery FROM pt JOIN tenants AS t ON t.id = pt.id
WHERE t.state = 'active' AND t.id NOT IN (SELECT value FROM json_each(?1))`

	// 2. A tenant's first claimable events, soonest due first: ?1 the
	// tenant, ?2 now, ?3 how many. Two queries: without ordered delivery,
	// and with it.
	sqliteClaimTenantDue = `SELECT e.seq, e.next_attempt_at FROM events AS e
WHERE e.tenant_id = ?1 AND ` + sqliteClaimable + `
ORDER BY e.next_attempt_at, e.seq
LIMIT ?3`
	sqliteClaimTenantDueOrdered = `SELECT e.seq, e.next_attempt_at FROM events AS e
WHERE e.tenant_id = ?1 AND ` + sqliteClaimable + ` AND ` + sqliteNoEarlierPending + `
ORDER BY e.next_attempt_at, e.seq
LIMIT ?3`

	// 2, for many tenants at once: the first ?3 claimable events of each
	// tenant of ?1 (a JSON array of tenant ids), and of those the first ?4,
	// soonest due first.
	sqliteClaimTenantsDue = `SELECT x.seq, x.next_attempt_at FROM json_each(?1) AS pt
JOIN tenants AS t ON t.id = pt.value
JOIN events AS x ON x.seq IN (
	SELECT e.seq FROM events AS e
	WHERE e.tenant_id = t.id AND ` + sqliteClaimable + `
		AND (NOT t.ordered_delivery OR ` + sqliteNoEarlierPending + `)
	ORDER BY e.next_attempt_at, e.seq
	LIMIT ?3)
ORDER BY x.next_attempt_at, x.seq
LIMIT ?4`

	// Step 2's conditions on an event e at ?2, now: pending, due, and not
	// leased or its lease ran out; and, for ordered delivery, no event of
	// the same openid with an earlier (create_time, seq) is pending.
	sqliteClaimable        = `e.state = 'pending' AND e.next_attempt_at <= ?2 AND (e.lease_expires_at IS NULL OR e.lease_expires_at < ?2)`
	sqliteNoEarlierPending = `NOT EXISTS (
		SELECT 1 FROM events AS p
		WHERE p.tenant_id = e.tenant_id AND p.openid = e.openid
			AND p.state = 'pending' AND p.ordered
			AND (p.create_time, p.seq) < (e.create_time, e.seq))`

	// 3. Lease the picked events (?1, a JSON array of seqs) to ?3 until
	// ?4, if they are still claimable at ?2.
	sqliteClaimLease = `UPDATE events SET lease_owner = ?3, lease_expires_at = ?4
WHERE seq IN (SELECT value FROM json_each(?1)) AND state = 'pending'
	AND (lease_expires_at IS NULL OR lease_expires_at < ?2)
RETURNING seq, id, tenant_id, ` + claimedPayload + `, receive_time, next_attempt_at, attempt_count, retry_index`
)

// claimedPayload is the webhook body of the event a claim leases, read in
// its RETURNING clause: the bodies are not in the events row.
const claimedPayload = `(SELECT b.payload FROM event_bodies AS b WHERE b.seq = events.seq) AS payload`

// claim is ClaimDue on SQLite.
func (e *sqliteDelivery) claim(ctx context.Context, c delivery.Claim) (jobs []*delivery.Job, err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("claim due events: %w", err)
		}
	}()
	exclude, err := jsonArray(c.Exclude, func(id tenant.ID) tenant.ID { return id })
	if err != nil {
		return nil, err
	}
	var st claimStmts
	for _, p := range []struct {
		st    **sql.Stmt
		query string
	}{
		{&st.tenants, sqliteClaimTenants}, {&st.due, sqliteClaimTenantDue}, {&st.dueOrdered, sqliteClaimTenantDueOrdered},
		{&st.dueMany, sqliteClaimTenantsDue}, {&st.lease, sqliteClaimLease},
	} {
		if *p.st, err = e.stmt(ctx, p.query); err != nil {
			return nil, err
		}
	}

	ctx = uncancellable(ctx)
	tx, err := e.db.relaxed.DB.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback() // after Commit, does nothing
	tenants, err := appendRows(ctx, tx.StmtContext(ctx, st.tenants), nil, func(rs *sql.Rows, t *tenantDue) error {
		return rs.Scan(&t.id, &t.ordered)
	}, exclude)
	if err != nil {
		return nil, err
	}
	picked, err := pickDue(ctx, tx, &st, tenants, c)
	if err != nil {
		return nil, err
	}
	if len(picked) == 0 {
		return nil, tx.Commit()
	}
	seqs, err := jsonArray(picked, func(d dueEvent) int64 { return d.seq })
	if err != nil {
		return nil, err
	}
	rows, err := appendRows(ctx, tx.StmtContext(ctx, st.lease), make([]claimedRow, 0, len(picked)), func(rs *sql.Rows, r *claimedRow) error {
		return rs.Scan(&r.Seq, &r.ID, &r.TenantID, &r.Payload, &r.ReceiveTime, &r.NextAttemptAt, &r.AttemptCount, &r.RetryIndex)
	}, seqs, sqliteTime(c.Now), c.Owner, sqliteTime(c.LeaseUntil))
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return claimedJobs(rows, c), nil
}

// claimStmts are a claim's statements on SQLite, prepared.
type claimStmts struct {
	tenants, due, dueOrdered, dueMany, lease *sql.Stmt
}

// pickDue is step 2 of a claim on SQLite: the first claimable events of
// each of tenants, at most c.PerTenant each and c.Limit in all, soonest
// due first.
func pickDue(ctx context.Context, tx *sql.Tx, st *claimStmts, tenants []tenantDue, c delivery.Claim) ([]dueEvent, error) {
	now, perTenant := sqliteTime(c.Now), perTenantLimit(c)
	scan := func(rs *sql.Rows, d *dueEvent) error { return rs.Scan(&d.seq, &d.next) }
	if len(tenants) > claimPerTenantMax {
		ids, err := jsonArray(tenants, func(t tenantDue) string { return t.id })
		if err != nil {
			return nil, err
		}
		return appendRows(ctx, tx.StmtContext(ctx, st.dueMany), nil, scan, ids, now, perTenant, c.Limit)
	}
	var picked []dueEvent
	for _, t := range tenants {
		q := st.due
		if t.ordered {
			q = st.dueOrdered
		}
		var err error
		if picked, err = appendRows(ctx, tx.StmtContext(ctx, q), picked, scan, t.id, now, perTenant); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(picked, func(a, b dueEvent) int {
		return cmp.Or(a.next.Compare(b.next), cmp.Compare(a.seq, b.seq))
	})
	return picked[:min(len(picked), c.Limit)], nil
}

// claimPerTenantMax is the most tenants with pending events for which a
// claim on SQLite runs step 2 as a query per tenant (see ClaimDue's
// statements on SQLite above).
var claimPerTenantMax = 3

// tenantDue is a tenant with pending events, as step 1 of a claim finds it.
type tenantDue struct {
	id      string
	ordered bool
}

// dueEvent is a claimable event, as step 2 of a claim finds it.
type dueEvent struct {
	seq  int64
	next time.Time
}

// jsonArray is f of each of xs as a JSON array, "[]" for none: how a list
// reaches a SQLite statement, which reads it with json_each.
func jsonArray[T, V any](xs []T, f func(T) V) (string, error) {
	vs := make([]V, len(xs))
	for i, x := range xs {
		vs[i] = f(x)
	}
	b, err := json.Marshal(vs)
	return string(b), err
}

// appendRows runs st with args and appends to to a value per row, read by
// scan.
func appendRows[T any](ctx context.Context, st *sql.Stmt, to []T, scan func(*sql.Rows, *T) error, args ...any) ([]T, error) {
	rs, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	for rs.Next() {
		var v T
		if err := scan(rs, &v); err != nil {
			return nil, err
		}
		to = append(to, v)
	}
	return to, rs.Err()
}

// uncancellable is ctx for SQLite's hot statements. Given a context that
// can end, the driver runs each statement in a goroutine of its own, to
// interrupt it on cancellation, and database/sql watches each transaction
// and result set with another goroutine: switches that cost more than the
// statements, which take microseconds and never wait long (this process's
// writes take turns in serialize; the busy timeout bounds a wait for
// another process's).
func uncancellable(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// stmt returns query prepared on the relaxed pool. bun writes values into
// a statement's text, and SQLite compiled the claim afresh at every call, a
// quarter of its CPU.
func (e *sqliteDelivery) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	return e.db.prepared(ctx, e.db.relaxed, query)
}

// sqliteInsertAttempt and sqliteRecordOutcome are recordPrepared's
// statements, prepared once per connection (see DB.prepared) and
// run per outcome with bound parameters: SQLite has no round trips to
// save, and a statement per row costs less than one holding the batch's
// values (response bodies in hex) in its text. Both find the event by its
// id, through its unique index, so that no look-up precedes them.
const (
	// The attempt, if its event still exists; its tenant is the event's.
	sqliteInsertAttempt = `INSERT INTO attempts (event_id, tenant_id, time, http_status, latency_ms, error_class, error, response_body, response_headers)
SELECT id, tenant_id, ?, ?, ?, ?, ?, ?, ? FROM events WHERE id = ?`
	// The event's next state, if the outcome's owner holds its lease.
	sqliteRecordOutcome = `UPDATE events SET
	state = ?, attempt_count = attempt_count + 1, retry_index = ?,
	next_attempt_at = coalesce(?, next_attempt_at), finished_at = ?,
	lease_owner = NULL, lease_expires_at = NULL
WHERE id = ? AND state = 'pending' AND lease_owner = ?`
)

// recordPrepared is Record on SQLite: the outcomes apply one by one, in
// batch order. SQLite's write lock, taken at BEGIN, keeps a tenant's
// deletion from coming between an event and its attempt.
func recordPrepared(ctx context.Context, tx bun.Tx, ins, upd *sql.Stmt, recs []outcomeRecord) error {
	ins, upd = tx.Tx.StmtContext(ctx, ins), tx.Tx.StmtContext(ctx, upd)
	defer ins.Close()
	defer upd.Close()
	for i := range recs {
		r := &recs[i]
		a := r.attempt
		_, err := ins.ExecContext(ctx, sqliteTime(a.Time), a.HTTPStatus, a.LatencyMS, a.ErrorClass, a.Error, a.ResponseBody, a.ResponseHeaders, a.EventID)
		if err != nil {
			return fmt.Errorf("insert attempt at event %s: %w", a.EventID, err)
		}
		next, finished := r.nextTimes()
		if _, err := upd.ExecContext(ctx, r.state, r.o.RetryIndex, sqliteNullTime(next), sqliteNullTime(finished), a.EventID, r.o.Owner); err != nil {
			return fmt.Errorf("update event %s: %w", a.EventID, err)
		}
	}
	return nil
}
