package store

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/tenant"
)

// maxResponseBody is how much of a webhook's answer an attempt keeps: the
// first 4 KiB (relay.Attempt.ResponseBody). The attempts table refuses more.
const maxResponseBody = 4 << 10

// FindAttempts returns the delivery attempts of tenant tid's event id,
// oldest first; none for an event not attempted yet. relay.ErrNotFound,
// also when the event belongs to another tenant.
func (s *EventStore) FindAttempts(ctx context.Context, tid tenant.ID, id relay.EventID) ([]relay.Attempt, error) {
	var rows []attemptRow
	err := s.db.bun.NewSelect().Model(&rows).
		Where("event_id = ?", string(id)).
		Where("tenant_id = ?", string(tid)).
		OrderExpr("seq ASC").
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("find attempts of event %s of tenant %s: %w", id, tid, err)
	}
	if len(rows) == 0 {
		// No attempts yet, or no such event of this tenant.
		exists, err := s.db.bun.NewSelect().Model((*eventRow)(nil)).
			Where("tenant_id = ?", string(tid)).
			Where("id = ?", string(id)).
			Exists(ctx)
		switch {
		case err != nil:
			return nil, fmt.Errorf("find attempts of event %s of tenant %s: %w", id, tid, err)
		case !exists:
			return nil, fmt.Errorf("find attempts of event %s of tenant %s: %w", id, tid, relay.ErrNotFound)
		}
	}
	out := make([]relay.Attempt, len(rows))
	for i := range rows {
		out[i] = rows[i].toDomain()
	}
	return out, nil
}

// attemptRow is a row of the attempts table. tenant_id repeats the event's,
// so that reads are scoped to a tenant without a join.
type attemptRow struct {
	bun.BaseModel `bun:"table:attempts,alias:a"`

	Seq          int64     `bun:"seq,pk,autoincrement"`
	EventID      string    `bun:"event_id"`
	TenantID     string    `bun:"tenant_id"`
	Time         time.Time `bun:"time"`
	HTTPStatus   int       `bun:"http_status"`
	LatencyMS    int64     `bun:"latency_ms"`
	ErrorClass   string    `bun:"error_class"`
	Error        string    `bun:"error"`
	ResponseBody []byte    `bun:"response_body"`
	// ResponseHeaders are cut by the caller (relay.MaxResponseHeaders).
	ResponseHeaders string `bun:"response_headers"`
}

// newAttemptRow converts attempt a at event id of tenant tid. The response
// body is cut to its first 4 KiB should the caller not have done so: an
// outcome is worth more than the end of a long answer.
func newAttemptRow(tid tenant.ID, id relay.EventID, a relay.Attempt) *attemptRow {
	body := a.ResponseBody
	if len(body) > maxResponseBody {
		body = body[:maxResponseBody]
	}
	return &attemptRow{
		EventID:      string(id),
		TenantID:     string(tid),
		Time:         a.Time.UTC(),
		HTTPStatus:   a.HTTPStatus,
		LatencyMS:    a.Latency.Round(time.Millisecond).Milliseconds(),
		ErrorClass:   a.ErrorClass,
		Error:        a.Error,
		ResponseBody: nonNil(body),

		ResponseHeaders: a.ResponseHeaders,
	}
}

func (r *attemptRow) toDomain() relay.Attempt {
	return relay.Attempt{
		Time:         r.Time.UTC(),
		HTTPStatus:   r.HTTPStatus,
		Latency:      time.Duration(r.LatencyMS) * time.Millisecond,
		ErrorClass:   r.ErrorClass,
		Error:        r.Error,
		ResponseBody: r.ResponseBody,

		ResponseHeaders: r.ResponseHeaders,
	}
}

// AttemptsPerMinute counts tenant tid's delivery attempts that succeeded
// and failed in each minute of [from, to), oldest first; minutes without
// attempts are left out. Counted by the database: a busy tenant's day is
// hundreds of thousands of attempts, and the answer at most 1,440 rows.
func (s *EventStore) AttemptsPerMinute(ctx context.Context, tid tenant.ID, from, to time.Time) ([]relay.MinuteCount, error) {
	minute := "CAST(strftime('%s', a.time) AS INTEGER) / 60"
	if s.db.bun.Dialect().Name() == dialect.PG {
		minute = "CAST(floor(extract(epoch FROM a.time) / 60) AS BIGINT)"
	}
	var rows []struct {
		Minute    int64 `bun:"minute"`
		Delivered int   `bun:"delivered"`
		Failed    int   `bun:"failed"`
	}
	err := s.db.bun.NewSelect().Model((*attemptRow)(nil)).
		ColumnExpr(minute+" AS minute").
		ColumnExpr("SUM(CASE WHEN a.error_class = '' THEN 1 ELSE 0 END) AS delivered").
		ColumnExpr("SUM(CASE WHEN a.error_class <> '' THEN 1 ELSE 0 END) AS failed").
		Where("a.tenant_id = ?", string(tid)).
		Where("a.time >= ?", from.UTC()).Where("a.time < ?", to.UTC()).
		GroupExpr("minute").OrderExpr("minute").
		Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("attempts per minute of tenant %s: %w", tid, err)
	}
	out := make([]relay.MinuteCount, len(rows))
	for i, r := range rows {
		out[i] = relay.MinuteCount{Minute: time.Unix(r.Minute*60, 0).UTC(), Delivered: r.Delivered, Failed: r.Failed}
	}
	return out, nil
}
