package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/wxrelay/wxrelay/relay/health"
	"github.com/wxrelay/wxrelay/relay/rejection"
	"github.com/wxrelay/wxrelay/tenant"
)

// HealthStore reads the facts of tenants' health (relay/health) and keeps
// the reasons the operator was last told of, with the alerts that tell
// them.
type HealthStore struct{ db *DB }

// NewHealthStore returns a HealthStore on db.
func NewHealthStore(db *DB) *HealthStore { return &HealthStore{db: db} }

// streakScan bounds how many of a tenant's latest attempts are read to
// count its webhook's run of failures: past it the run is "at least" that.
const streakScan = 50

// HealthFacts implements health.FactStore: the store's part of the facts
// (the keeper's status is the checker's to add), each from an index.
func (s *HealthStore) HealthFacts(ctx context.Context, tid tenant.ID, now time.Time) (health.Facts, error) {
	var f health.Facts
	db := s.db.bun
	if err := s.failureRun(ctx, tid, &f); err != nil {
		return f, err
	}

	n, err := db.NewSelect().Table("events").Where("tenant_id = ?", string(tid)).Where("state = 'pending'").Count(ctx)
	if err != nil {
		return f, fmt.Errorf("health of tenant %s: backlog: %w", tid, err)
	}
	f.Pending = int(n)
	if n > 0 {
		// ORDER BY and LIMIT rather than min(), which SQLite answers as text.
		err = db.NewSelect().Table("events").Column("receive_time").
			Where("tenant_id = ?", string(tid)).Where("state = 'pending'").
			OrderExpr("receive_time").Limit(1).Scan(ctx, &f.OldestPending)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return f, fmt.Errorf("health of tenant %s: oldest pending: %w", tid, err)
		}
		f.OldestPending = f.OldestPending.UTC()
	}

	err = db.NewSelect().Table("events").Column("receive_time").
		Where("tenant_id = ?", string(tid)).OrderExpr("seq DESC").Limit(1).Scan(ctx, &f.LastPush)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return f, fmt.Errorf("health of tenant %s: last push: %w", tid, err)
	}
	f.LastPush = f.LastPush.UTC()

	var sends struct {
		Sends    int `bun:"sends"`
		Refusals int `bun:"refusals"`
	}
	err = db.NewSelect().Table("api_calls").
		ColumnExpr("count(*) AS sends").
		ColumnExpr("coalesce(sum(CASE WHEN errcode IN (45015, 45047) THEN 1 ELSE 0 END), 0) AS refusals").
		Where("tenant_id = ?", string(tid)).Where("path_class = 'send'").
		Where("time >= ?", now.Add(-health.RefusalWindow).UTC()).
		Scan(ctx, &sends)
	if err != nil {
		return f, fmt.Errorf("health of tenant %s: sends: %w", tid, err)
	}
	f.Sends, f.Refusals = sends.Sends, sends.Refusals
	auths, err := s.authorizationFacts(ctx, []string{string(tid)})
	if err != nil {
		return f, fmt.Errorf("health of tenant %s: %w", tid, err)
	}
	f.Authorization = auths[tid]
	runs, err := pushRejectionsOf(ctx, db, []string{string(tid)}, now.Add(-rejection.Window))
	if err != nil {
		return f, fmt.Errorf("health of tenant %s: push rejections: %w", tid, err)
	}
	f.Rejections = runs[tid]
	return f, nil
}

// authorizationFacts reads the authorizations of those of tenants ids
// that belong to a component, by the authorizations' primary key.
func (s *HealthStore) authorizationFacts(ctx context.Context, ids []string) (map[tenant.ID]health.AuthorizationFacts, error) {
	var rows []struct {
		TenantID      string    `bun:"tenant_id"`
		State         string    `bun:"state"`
		FuncInfo      string    `bun:"func_info"`
		AuthorizeTime time.Time `bun:"authorize_time"`
		RevokeTime    time.Time `bun:"revoke_time,nullzero"`
	}
	err := s.db.bun.NewRaw(`SELECT t.id AS tenant_id, a.state, a.func_info, a.authorize_time, a.revoke_time
FROM tenants AS t JOIN authorizations AS a ON a.component_id = t.component_id AND a.authorizer_appid = t.appid
WHERE t.id IN (?) AND t.component_id IS NOT NULL`, bun.In(ids)).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("authorizations: %w", err)
	}
	out := make(map[tenant.ID]health.AuthorizationFacts, len(rows))
	for _, r := range rows {
		st, err := authorizationStates.decode("state", r.State)
		if err != nil {
			return nil, err
		}
		a := health.AuthorizationFacts{State: st, AuthorizeTime: r.AuthorizeTime.UTC(), RevokeTime: r.RevokeTime.UTC()}
		if err := json.Unmarshal([]byte(r.FuncInfo), &a.FuncInfo); err != nil {
			return nil, fmt.Errorf("authorization of tenant %s: func_info holds no valid JSON", r.TenantID)
		}
		out[tenant.ID(r.TenantID)] = a
	}
	return out, nil
}

// failureRun reads tid's latest attempts into f: how many failed in a
// row, since when, and the newest one's answer.
func (s *HealthStore) failureRun(ctx context.Context, tid tenant.ID, f *health.Facts) error {
	var attempts []struct {
		Time       time.Time `bun:"time"`
		HTTPStatus int       `bun:"http_status"`
		ErrorClass string    `bun:"error_class"`
		Error      string    `bun:"error"`
	}
	err := s.db.bun.NewSelect().Table("attempts").Column("time", "http_status", "error_class", "error").
		Where("tenant_id = ?", string(tid)).OrderExpr("seq DESC").Limit(streakScan).Scan(ctx, &attempts)
	if err != nil {
		return fmt.Errorf("health of tenant %s: attempts: %w", tid, err)
	}
	for i, a := range attempts {
		if a.ErrorClass == "" {
			break
		}
		if i == 0 {
			f.LastHTTPStatus, f.LastErrorClass, f.LastError = a.HTTPStatus, a.ErrorClass, a.Error
		}
		f.ConsecutiveFailures++
		f.FailingSince = a.Time.UTC()
	}
	return nil
}

// HealthFactsOf implements health.FactStore for a page of tenants: the
// facts HealthFacts reads, and the keeper's failures from the tokens
// table, in one grouped query per fact for the whole page instead of five
// queries per tenant. Only a tenant whose latest attempt failed costs a
// query of its own (its run of failures). A tenant of ids with nothing to
// show is in the map with zero facts.
//
// The oldest pending event is the pending event stored first (least seq),
// which is the one received first but for pushes committed in one batch,
// microseconds apart.
func (s *HealthStore) HealthFactsOf(ctx context.Context, ids []tenant.ID, now time.Time) (map[tenant.ID]health.Facts, error) {
	facts := make(map[tenant.ID]health.Facts, len(ids))
	if len(ids) == 0 {
		return facts, nil
	}
	in := make([]string, len(ids))
	for i, id := range ids {
		in[i] = string(id)
		facts[id] = health.Facts{}
	}
	db := s.db.bun
	set := func(id string, f func(*health.Facts)) {
		v := facts[tenant.ID(id)]
		f(&v)
		facts[tenant.ID(id)] = v
	}

	type at struct {
		TenantID string    `bun:"tenant_id"`
		Time     time.Time `bun:"at"`
	}
	var pushes, oldest []at
	err := db.NewRaw(`SELECT e.tenant_id, e.receive_time AS at FROM events AS e
WHERE e.seq IN (SELECT max(seq) FROM events WHERE tenant_id IN (?) GROUP BY tenant_id)`, bun.In(in)).Scan(ctx, &pushes)
	if err != nil {
		return nil, fmt.Errorf("health of %d tenants: last pushes: %w", len(ids), err)
	}
	for _, p := range pushes {
		set(p.TenantID, func(f *health.Facts) { f.LastPush = p.Time.UTC() })
	}

	var backlogs []struct {
		TenantID string `bun:"tenant_id"`
		N        int    `bun:"n"`
	}
	err = db.NewRaw(`SELECT tenant_id, count(*) AS n FROM events WHERE state = 'pending' AND tenant_id IN (?) GROUP BY tenant_id`,
		bun.In(in)).Scan(ctx, &backlogs)
	if err != nil {
		return nil, fmt.Errorf("health of %d tenants: backlogs: %w", len(ids), err)
	}
	if len(backlogs) > 0 {
		behind := make([]string, len(backlogs))
		for i, b := range backlogs {
			behind[i] = b.TenantID
			set(b.TenantID, func(f *health.Facts) { f.Pending = b.N })
		}
		err = db.NewRaw(`SELECT e.tenant_id, e.receive_time AS at FROM events AS e
WHERE e.seq IN (SELECT min(seq) FROM events WHERE state = 'pending' AND tenant_id IN (?) GROUP BY tenant_id)`, bun.In(behind)).Scan(ctx, &oldest)
		if err != nil {
			return nil, fmt.Errorf("health of %d tenants: oldest pending: %w", len(ids), err)
		}
		for _, o := range oldest {
			set(o.TenantID, func(f *health.Facts) { f.OldestPending = o.Time.UTC() })
		}
	}

	var sends []struct {
		TenantID string `bun:"tenant_id"`
		Sends    int    `bun:"sends"`
		Refusals int    `bun:"refusals"`
	}
	err = db.NewRaw(`SELECT tenant_id, count(*) AS sends,
	coalesce(sum(CASE WHEN errcode IN (45015, 45047) THEN 1 ELSE 0 END), 0) AS refusals
FROM api_calls WHERE tenant_id IN (?) AND path_class = 'send' AND time >= ? GROUP BY tenant_id`,
		bun.In(in), now.Add(-health.RefusalWindow).UTC()).Scan(ctx, &sends)
	if err != nil {
		return nil, fmt.Errorf("health of %d tenants: sends: %w", len(ids), err)
	}
	for _, c := range sends {
		set(c.TenantID, func(f *health.Facts) { f.Sends, f.Refusals = c.Sends, c.Refusals })
	}

	var latest []struct {
		TenantID   string `bun:"tenant_id"`
		ErrorClass string `bun:"error_class"`
	}
	err = db.NewRaw(`SELECT a.tenant_id, a.error_class FROM attempts AS a
WHERE a.seq IN (SELECT max(seq) FROM attempts WHERE tenant_id IN (?) GROUP BY tenant_id)`, bun.In(in)).Scan(ctx, &latest)
	if err != nil {
		return nil, fmt.Errorf("health of %d tenants: latest attempts: %w", len(ids), err)
	}
	for _, a := range latest {
		if a.ErrorClass == "" {
			continue // a success: no run of failures
		}
		f := facts[tenant.ID(a.TenantID)]
		if err := s.failureRun(ctx, tenant.ID(a.TenantID), &f); err != nil {
			return nil, err
		}
		facts[tenant.ID(a.TenantID)] = f
	}

	var tokens []struct {
		TenantID    string    `bun:"tenant_id"`
		Failures    int       `bun:"failures"`
		LastErrcode int       `bun:"last_errcode"`
		LastError   string    `bun:"last_error"`
		LastErrorAt time.Time `bun:"last_error_at"`
	}
	err = db.NewRaw(`SELECT tenant_id, failures, last_errcode, last_error, last_error_at FROM tokens
WHERE tenant_id IN (?) AND failures > 0`, bun.In(in)).Scan(ctx, &tokens)
	if err != nil {
		return nil, fmt.Errorf("health of %d tenants: token failures: %w", len(ids), err)
	}
	for _, t := range tokens {
		set(t.TenantID, func(f *health.Facts) {
			f.TokenFailures, f.TokenErrcode, f.TokenError, f.TokenErrorAt = t.Failures, t.LastErrcode, t.LastError, t.LastErrorAt.UTC()
		})
	}

	auths, err := s.authorizationFacts(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("health of %d tenants: %w", len(ids), err)
	}
	for id, a := range auths {
		set(string(id), func(f *health.Facts) { f.Authorization = a })
	}
	runs, err := pushRejectionsOf(ctx, db, in, now.Add(-rejection.Window))
	if err != nil {
		return nil, fmt.Errorf("health of %d tenants: push rejections: %w", len(ids), err)
	}
	for id, r := range runs {
		set(string(id), func(f *health.Facts) { f.Rejections = r })
	}
	return facts, nil
}
