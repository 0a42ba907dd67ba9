package main

import (
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/wxrelay/wxrelay/relay/wechat/wxsim/load"
)

// BenchmarkDeleteUnderLoad measures what deleting a tenant with a long
// history costs the others: the push answer p99 of another tenant at a
// fixed rate (WXRELAY_BENCH_RATE, default 1000/s) while the relay purges
// a deleted tenant of WXRELAY_BENCH_EVENTS events (default 1,000,000, each
// with its bodies and one delivery attempt), against the same load with
// nothing being deleted, in alternating rounds (WXRELAY_BENCH_ROUNDS,
// default 2) on one SQLite relay. It also reports how long the DELETE call
// took (a mark, whatever the history) and the purge's pace.
//
//	go test ./cmd/wxrelay -run '^$' -bench DeleteUnderLoad -benchtime 1x -timeout 30m
func BenchmarkDeleteUnderLoad(b *testing.B) {
	rate := benchEnvInt(b, "WXRELAY_BENCH_RATE", 1000)
	events := benchEnvInt(b, "WXRELAY_BENCH_EVENTS", 1_000_000)
	rounds := benchEnvInt(b, "WXRELAY_BENCH_ROUNDS", 2)
	dbPath := filepath.Join(b.TempDir(), "wxrelay.db")
	key := make([]byte, 32)
	rand.Read(key)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer hook.Close()
	env := []string{"WXRELAY_ALLOW_PRIVATE_WEBHOOKS=true", "WXRELAY_LOG_LEVEL=warn",
		"WXRELAY_DB=" + dbPath, "WXRELAY_SECRET_KEY=" + base64.StdEncoding.EncodeToString(key)}

	// The tenants, through the API; then their histories, written
	// straight into the stopped relay's database.
	ps := startReplicas(b, 1, env...)
	other := benchTenant(b, ps[0], env, hook.URL)
	admin := adminTokenFor(b, b.TempDir(), env)
	big := make([]string, rounds)
	for i := range big {
		var err error
		if big[i], _, err = createPlainTenant(ps[0].process, admin, fmt.Sprintf("wx%016x", 0xb16000+i), "s", i); err != nil {
			b.Fatal(err)
		}
	}
	ps[0].stop(b, syscall.SIGTERM)
	db, err := sql.Open("sqlite3", dbPath+"?_busy_timeout=10000")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	for _, id := range big {
		seedHistory(b, db, id, events)
	}
	b.Logf("seeded %d tenants of %d events in %v", rounds, events, time.Since(start).Round(time.Second))

	ps = startReplicas(b, 1, env...)
	chunk := 2 * time.Second
	pushFor := func() *load.Result {
		return runSplit(b, ps, other, nil, load.Options{Rate: float64(rate), Duration: chunk, Concurrency: 64}, rate*int(chunk/time.Second)+100)
	}
	var idle, during []*load.Result
	var marks, purges []time.Duration
	for _, id := range big {
		for range 5 {
			idle = append(idle, pushFor())
		}
		var first int64
		if err := db.QueryRow(`SELECT min(seq) FROM events WHERE tenant_id = ?`, id).Scan(&first); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if code := ps[0].api(b, "DELETE", "/v1/tenants/"+id, admin, "", nil); code != 200 {
			b.Fatalf("delete tenant: %d", code)
		}
		marks = append(marks, time.Since(t0))
		// Pushes count from the chunk in which the purge began (its job
		// runs every 10 s) to the one in which it ended.
		var began time.Time
		for deadline := time.Now().Add(20 * time.Minute); ; {
			r := pushFor()
			var started, gone bool
			db.QueryRow(`SELECT NOT EXISTS (SELECT 1 FROM events WHERE seq = ?)`, first).Scan(&started)
			db.QueryRow(`SELECT NOT EXISTS (SELECT 1 FROM tenants WHERE id = ?)`, id).Scan(&gone)
			if started && began.IsZero() {
				began = time.Now().Add(-chunk)
			}
			if started {
				during = append(during, r)
			}
			if gone {
				purges = append(purges, time.Since(began))
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("tenant %s not purged in 20 minutes", id)
			}
		}
	}
	ps[0].stop(b, syscall.SIGTERM)
	// The relay logs at warn: its own failures are news; the tenants'
	// token refreshes fail by design (wxsim knows none of their appids).
	for _, line := range strings.Split(ps[0].log.String(), "\n") {
		if line != "" && !strings.Contains(line, "refresh") {
			b.Logf("the relay logged: %s", line)
		}
	}
	base, busy := load.Merge(idle...), load.Merge(during...)
	for name, r := range map[string]*load.Result{"idle": base, "during the purge": busy} {
		if r.Failed+r.NotSent > 0 {
			b.Errorf("%s: %d pushes failed, %d not sent: %v", name, r.Failed, r.NotSent, r.ErrorSamples)
		}
	}
	slices.Sort(purges)
	purge := purges[len(purges)/2]
	b.ReportMetric(ms(base.Latency.P99), "idle-p99-ms")
	b.ReportMetric(ms(busy.Latency.P99), "purge-p99-ms")
	b.ReportMetric(ms(busy.Latency.P99)/ms(base.Latency.P99), "p99-ratio")
	b.ReportMetric(ms(slices.Max(marks)), "delete-call-max-ms")
	b.ReportMetric(purge.Seconds(), "purge-s")
	b.ReportMetric(float64(events)/purge.Seconds(), "purged-events/s")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d/s pushes of another tenant: p99 %v idle (%d pushes), %v while a tenant of %d events was purged (%d pushes); DELETE calls %v; purges took %v",
		rate, base.Latency.P99, base.Sent, busy.Latency.P99, events, busy.Sent, marks, purges)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// seedHistory writes n delivered events of tenant id, with their bodies
// (200 and 300 bytes) and one attempt each, as months of pushes leave them.
func seedHistory(b *testing.B, db *sql.DB, id string, n int) {
	b.Helper()
	at := time.Now().UTC().Add(-24 * time.Hour).Format("2006-01-02 15:04:05.999999-07:00")
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?)
INSERT INTO events (id, tenant_id, dedup_key, type, openid, create_time, receive_time, state, attempt_count, next_attempt_at, finished_at)
SELECT ? || '-' || x, ?, 'k' || x, 'message.text', 'o' || (x % 1000), ?, ?, 'delivered', 1, ?, ? FROM c`,
			[]any{n, id, id, at, at, at, at}},
		{`INSERT INTO event_bodies (seq, raw, payload) SELECT seq, randomblob(200), randomblob(300) FROM events WHERE tenant_id = ?`, []any{id}},
		{`INSERT INTO attempts (event_id, tenant_id, time, http_status, latency_ms, error_class, error, response_body)
SELECT id, tenant_id, ?, 204, 5, '', '', x'' FROM events WHERE tenant_id = ?`, []any{at, id}},
	} {
		if _, err := db.Exec(q.sql, q.args...); err != nil {
			b.Fatalf("seed the history of %s: %v", id, err)
		}
	}
}
