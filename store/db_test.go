package store_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"

	"github.com/wxrelay/wxrelay/migrations"
	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
	"github.com/wxrelay/wxrelay/tenant"
)

func TestOpen_Errors(t *testing.T) {
	key := make([]byte, store.SealKeySize)
	for _, tt := range []struct {
		name    string
		cfg     store.Config
		wantErr string
	}{
		{"unknown scheme", store.Config{DSN: "mysql://root:hunter2@db/wxrelay", SealKey: key}, `unsupported database scheme "mysql"`},
		{"no DSN", store.Config{SealKey: key}, "no database given"},
		{"bad sslmode", store.Config{DSN: "postgres://u:hunter2@127.0.0.1:1/x?sslmode=bogus", SealKey: key}, "sslmode"},
		{"empty key", store.Config{DSN: filepath.Join(t.TempDir(), "a.db"), SealKey: []byte{}}, "seal key is 0 bytes, want 32"},
		{"short key", store.Config{DSN: filepath.Join(t.TempDir(), "b.db"), SealKey: key[:16]}, "seal key is 16 bytes, want 32"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db, err := store.Open(context.Background(), tt.cfg)
			if err == nil {
				db.Close()
				t.Fatalf("Open() error = nil, want one containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Open() error = %q, want one containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("Open() error %q shows the password", err)
			}
		})
	}
}

func TestOpen_Dialect(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		if got, want := db.Dialect(), filepath.Base(t.Name()); got != want {
			t.Errorf("Dialect() = %q, want %q", got, want)
		}
		if err := db.Ping(context.Background()); err != nil {
			t.Errorf("Ping() = %v", err)
		}
	})
}

// TestOpen_SQLiteFile checks that each DSN form puts the database where it
// says, creating missing directories, readable by its owner alone.
func TestOpen_SQLiteFile(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name, dsn, wantFile string
	}{
		{"plain path", filepath.Join(dir, "a.db"), filepath.Join(dir, "a.db")},
		{"missing directories", filepath.Join(dir, "x", "y", "b.db"), filepath.Join(dir, "x", "y", "b.db")},
		{"sqlite: prefix", "sqlite:" + filepath.Join(dir, "c.db"), filepath.Join(dir, "c.db")},
		{"sqlite:/// URL", "sqlite://" + filepath.Join(dir, "d.db"), filepath.Join(dir, "d.db")},
		{"file: prefix", "file:" + filepath.Join(dir, "e.db"), filepath.Join(dir, "e.db")},
		{"URI characters in the name", filepath.Join(dir, "f?x=1#%41.db"), filepath.Join(dir, "f?x=1#%41.db")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			storetest.MustOpen(t, tt.dsn)
			for _, name := range []string{tt.wantFile, tt.wantFile + "-wal"} {
				fi, err := os.Stat(name)
				if err != nil {
					t.Fatalf("database file: %v", err)
				}
				if got, want := fi.Mode().Perm(), fs.FileMode(0o600); got != want {
					t.Errorf("%s mode = %v, want %v", filepath.Base(name), got, want)
				}
			}
		})
	}

	t.Run("relative path", func(t *testing.T) {
		t.Chdir(t.TempDir())
		storetest.MustOpen(t, "wxrelay.db")
		if _, err := os.Stat("wxrelay.db"); err != nil {
			t.Errorf("database file: %v", err)
		}
	})
}

// TestOpen_SQLiteSettings checks the settings every pooled connection must
// have, not just the first one.
func TestOpen_SQLiteSettings(t *testing.T) {
	db := storetest.New(t)
	ctx := context.Background()
	for i := range 3 {
		// Holding each connection forces the pool to open a new one.
		conn, err := db.Bun().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for _, tt := range []struct{ pragma, want string }{
			{"journal_mode", "wal"},
			{"synchronous", "2"}, // FULL
			{"foreign_keys", "1"},
			{"busy_timeout", "10000"},
		} {
			var got string
			if err := conn.QueryRowContext(ctx, "PRAGMA "+tt.pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("connection %d: PRAGMA %s = %s, want %s", i, tt.pragma, got, tt.want)
			}
		}
	}
}

// TestOpen_SQLiteImmediateTx checks that a transaction takes the write lock
// when it begins, so that two read-then-write transactions cannot deadlock
// upgrading their locks.
func TestOpen_SQLiteImmediateTx(t *testing.T) {
	db := storetest.New(t)
	ctx := context.Background()
	tx, err := db.Bun().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()

	other, err := db.Bun().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.ExecContext(ctx, "PRAGMA busy_timeout = 0"); err != nil {
		t.Fatal(err)
	}
	_, err = other.ExecContext(ctx, "BEGIN IMMEDIATE")
	if err == nil {
		other.ExecContext(ctx, "ROLLBACK")
		t.Fatal("a second writer began while a transaction was open; want the first to hold the write lock")
	}
	if !strings.Contains(err.Error(), "locked") {
		t.Errorf("second BEGIN IMMEDIATE error = %v, want database is locked", err)
	}
}

// TestOpen_PostgresRelaxedCommits checks that only the relaxed pool's
// commits skip waiting for the WAL flush.
func TestOpen_PostgresRelaxedCommits(t *testing.T) {
	db := storetest.NewPostgres(t)
	for _, tt := range []struct {
		pool string
		db   *bun.DB
		want string
	}{{"durable", db.Bun(), "on"}, {"relaxed", store.Relaxed(db), "off"}} {
		var got string
		if err := tt.db.QueryRowContext(context.Background(), "SHOW synchronous_commit").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != tt.want {
			t.Errorf("%s pool: synchronous_commit = %s, want %s", tt.pool, got, tt.want)
		}
	}
}

// TestMigrate_Concurrently starts replicas together on one database: all
// must come up, and the migrations must run once.
func TestMigrate_Concurrently(t *testing.T) {
	storetest.EachDSN(t, func(t *testing.T, dsn string) {
		const replicas = 5
		var wg sync.WaitGroup
		errs := make([]error, replicas)
		for i := range replicas {
			wg.Go(func() {
				db, err := store.Open(context.Background(), storetest.Config(t, dsn))
				if err == nil {
					err = db.Close()
				}
				errs[i] = err
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("Open: %v", err)
		}

		db := storetest.MustOpen(t, dsn)
		ms, err := migrations.For(db.Dialect())
		if err != nil {
			t.Fatal(err)
		}
		applied, err := migrate.NewMigrator(db.Bun(), ms).AppliedMigrations(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(applied), len(ms.Sorted()); got != want {
			t.Errorf("applied %d migrations (%v), want %d, each once", got, applied, want)
		}
	})
}

// TestMigrate_StaleLock leaves bun's migration lock behind on SQLite, as a
// process killed while migrating would: Migrate must give up with advice,
// not hang.
func TestMigrate_StaleLock(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		if db.Dialect() == "pg" {
			t.Skip("the migration lock on PostgreSQL is a session lock, which cannot go stale: see TestMigrate_PostgresLockDiesWithSession")
		}
		ms, err := migrations.For(db.Dialect())
		if err != nil {
			t.Fatal(err)
		}
		m := migrate.NewMigrator(db.Bun(), ms)
		if err := m.Lock(context.Background()); err != nil {
			t.Fatal(err)
		}

		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		err = db.Migrate(ctx)
		if err == nil || !strings.Contains(err.Error(), "bun_migration_locks") {
			t.Fatalf("Migrate() with the lock held = %v, want an error naming bun_migration_locks", err)
		}

		if err := m.Unlock(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := db.Migrate(context.Background()); err != nil {
			t.Errorf("Migrate() after unlocking = %v", err)
		}
	})
}

// TestMigrate_PostgresLockDiesWithSession holds the migration lock in
// another session: Migrate waits for it, and a holder that dies (its
// session ends without unlocking, as after SIGKILL) frees it.
func TestMigrate_PostgresLockDiesWithSession(t *testing.T) {
	db := storetest.NewPostgres(t)
	ctx := context.Background()
	other, err := db.Bun().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	var pid int
	if err := other.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := other.ExecContext(ctx, "SELECT pg_advisory_lock("+store.MigrateLockKey+")"); err != nil {
		t.Fatal(err)
	}

	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if err := db.Migrate(short); err == nil || !strings.Contains(err.Error(), "another process has been migrating") {
		t.Fatalf("Migrate() with the lock held elsewhere = %v, want it to wait and give up", err)
	}

	// The holder dies while Migrate waits.
	done := make(chan error, 1)
	go func() { done <- db.Migrate(ctx) }()
	time.Sleep(200 * time.Millisecond)
	if _, err := db.Bun().ExecContext(ctx, "SELECT pg_terminate_backend(?)", pid); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Migrate() after the holder died = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Migrate() still waiting 10 s after the holder died")
	}

	// Migrate released the lock: another session takes it at once.
	third, err := db.Bun().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	var ok bool
	if err := third.QueryRowContext(ctx, "SELECT pg_try_advisory_lock("+store.MigrateLockKey+")").Scan(&ok); err != nil || !ok {
		t.Fatalf("lock after Migrate: %v %v, want it free", ok, err)
	}
	third.ExecContext(ctx, "SELECT pg_advisory_unlock_all()")
}

// TestMigrate_DownAndUp runs every down migration and then every up again,
// which catches a down step that does not undo its up step.
func TestMigrate_DownAndUp(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		ms, err := migrations.For(db.Dialect())
		if err != nil {
			t.Fatal(err)
		}
		m := migrate.NewMigrator(db.Bun(), ms, migrate.WithMarkAppliedOnSuccess(true))
		for {
			group, err := m.Rollback(ctx)
			if err != nil {
				t.Fatalf("Rollback: %v", err)
			}
			if group.IsZero() {
				break
			}
		}
		if _, err := db.Bun().NewSelect().Table("tenants").Count(ctx); err == nil {
			t.Error("tenants table survived rolling back every migration")
		}

		if err := db.Migrate(ctx); err != nil {
			t.Fatalf("Migrate after rollback: %v", err)
		}
		if _, err := store.NewTenantStore(db).Find(ctx, tenant.Filter{PageSize: 1}); err != nil {
			t.Errorf("Find after migrating again: %v", err)
		}
		if err := db.Migrate(ctx); err != nil {
			t.Errorf("Migrate on an up-to-date schema: %v", err)
		}
	})
}

// TestMigrate_EventBodiesKept rolls the migration that moved the events'
// bodies into event_bodies back and forth over stored events: each way,
// the bodies move with their events.
func TestMigrate_EventBodiesKept(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		tid := mustCreateTenant(t, db, "tn_a")
		es := store.NewEventStore(db)
		e1, e2 := dueEvent(tid, "1", "o1", t0), dueEvent(tid, "2", "o1", t0)
		e1.Raw, e1.Payload = []byte("<xml>one</xml>"), []byte(`{"n":1}`)
		e2.Raw, e2.Payload = []byte{0, 0xff, 'x'}, []byte{}
		mustAppend(t, es, e1, e2)

		m, bodies := migrationNamed(t, db, "event_bodies")
		if err := bodies.Down(ctx, m, bodies); err != nil {
			t.Fatalf("down: %v", err)
		}
		for _, e := range []*relay.Event{e1, e2} {
			var raw, payload []byte
			if err := db.Bun().QueryRowContext(ctx, "SELECT raw, payload FROM events WHERE id = ?", string(e.ID)).Scan(&raw, &payload); err != nil {
				t.Fatalf("bodies in the events row after down: %v", err)
			}
			if !bytes.Equal(raw, e.Raw) || !bytes.Equal(payload, e.Payload) {
				t.Errorf("after down: raw %q, payload %q; want %q, %q", raw, payload, e.Raw, e.Payload)
			}
		}
		if err := bodies.Up(ctx, m, bodies); err != nil {
			t.Fatalf("up: %v", err)
		}
		for _, e := range []*relay.Event{e1, e2} {
			got := mustFindEvent(t, es, tid, e.ID)
			if !bytes.Equal(got.Raw, e.Raw) || !bytes.Equal(got.Payload, e.Payload) {
				t.Errorf("after up: raw %q, payload %q; want %q, %q", got.Raw, got.Payload, e.Raw, e.Payload)
			}
		}
	})
}

func TestOpen_SkipMigrate(t *testing.T) {
	storetest.EachDSN(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		cfg := storetest.Config(t, dsn)
		cfg.SkipMigrate = true
		db, err := store.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := store.NewTenantStore(db).Find(ctx, tenant.Filter{PageSize: 1}); err == nil {
			t.Fatal("Find on an unmigrated database succeeded; want no tenants table")
		}
		if err := db.Migrate(ctx); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		if _, err := store.NewTenantStore(db).Find(ctx, tenant.Filter{PageSize: 1}); err != nil {
			t.Errorf("Find after Migrate: %v", err)
		}
	})
}

// migrationNamed finds the migration of db's dialect named name (its
// file name after the time), with a migrator to run its steps by hand.
func migrationNamed(t *testing.T, db *store.DB, name string) (*migrate.Migrator, *migrate.Migration) {
	t.Helper()
	ms, err := migrations.For(db.Dialect())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms.Sorted() {
		if m.Comment == name {
			return migrate.NewMigrator(db.Bun(), ms), &m
		}
	}
	t.Fatalf("no %s migration", name)
	return nil, nil
}
