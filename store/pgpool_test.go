package store_test

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
)

// TestPostgresPoolsAreBounded: 150 goroutines reading tenants for a second
// through a store opened with MaxConns 10, on a role that may hold 12
// connections: none fails, and the role never holds more than 10. Before
// the pools were bounded, they opened connections until the server
// refused them (53300, "too many connections").
func TestPostgresPoolsAreBounded(t *testing.T) {
	dsn := storetest.PostgresLimitedDSN(t, 12) // skips unless WXRELAY_TEST_POSTGRES is set
	cfg := storetest.Config(t, dsn)
	cfg.MaxConns = 10
	db, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ts := store.NewTenantStore(db)
	tid := mustCreateTenant(t, db, "tn_a")

	var failures atomic.Int64
	var first atomic.Value
	var most atomic.Int64
	stop := time.Now().Add(time.Second)
	var wg sync.WaitGroup
	for range 150 {
		wg.Go(func() {
			for time.Now().Before(stop) {
				if _, err := ts.FindByID(context.Background(), tid); err != nil {
					if failures.Add(1) == 1 {
						first.Store(err)
					}
				}
			}
		})
	}
	// Count the role's connections meanwhile, as the server's admin.
	u, _ := url.Parse(dsn)
	admin := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(os.Getenv(storetest.PostgresEnv))))
	defer admin.Close()
	for time.Now().Before(stop) {
		var n int64
		if err := admin.QueryRow("SELECT count(*) FROM pg_stat_activity WHERE usename = $1", u.User.Username()).Scan(&n); err == nil && n > most.Load() {
			most.Store(n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Errorf("%d reads failed; the first: %v", n, first.Load())
	}
	if n := most.Load(); n > 10 {
		t.Errorf("the role held %d connections at once, over MaxConns 10", n)
	}
}
