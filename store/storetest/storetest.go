// Package storetest provides real, migrated databases for tests, as
// net/http/httptest provides real servers: a SQLite file in the test's
// temporary directory, and, when WXRELAY_TEST_POSTGRES is set, a fresh
// schema on a PostgreSQL server. Each runs a test body on every engine
// available, so a store's whole suite covers both.
//
// Every database lives as long as the test that made it.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/wxrelay/wxrelay/store"
)

// PostgresEnv names the environment variable that enables the PostgreSQL
// variants: a postgres:// URL of a server where the user may create schemas.
const PostgresEnv = "WXRELAY_TEST_POSTGRES"

// New returns a migrated SQLite database in tb.TempDir(), sealing with a
// random key.
func New(tb testing.TB) *store.DB {
	tb.Helper()
	return MustOpen(tb, SQLiteDSN(tb))
}

// NewPostgres returns a migrated database in a schema of its own on the
// server named by WXRELAY_TEST_POSTGRES, dropped when the test ends. It
// skips the test when the variable is unset.
func NewPostgres(tb testing.TB) *store.DB {
	tb.Helper()
	return MustOpen(tb, PostgresDSN(tb))
}

// Each runs body as the subtests "sqlite" and "pg", each on a fresh migrated
// database. The "pg" subtest skips unless WXRELAY_TEST_POSTGRES is set.
func Each(t *testing.T, body func(t *testing.T, db *store.DB)) {
	t.Helper()
	EachDSN(t, func(t *testing.T, dsn string) {
		body(t, MustOpen(t, dsn))
	})
}

// EachDSN is Each for tests of opening and migrating: body gets the DSN of
// a fresh database that has not been opened yet.
func EachDSN(t *testing.T, body func(t *testing.T, dsn string)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { body(t, SQLiteDSN(t)) })
	t.Run("pg", func(t *testing.T) { body(t, PostgresDSN(t)) })
}

// MustOpen opens and migrates the database at dsn with a random seal key,
// logging to the test's output, and closes it when the test ends.
func MustOpen(tb testing.TB, dsn string) *store.DB {
	tb.Helper()
	db, err := store.Open(context.Background(), Config(tb, dsn))
	if err != nil {
		tb.Fatalf("store.Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("close database: %v", err)
		}
	})
	return db
}

// Config returns the configuration MustOpen uses: dsn, a random seal key
// and a logger writing to the test's output.
func Config(tb testing.TB, dsn string) store.Config {
	key := make([]byte, store.SealKeySize)
	rand.Read(key)
	return store.Config{
		DSN:     dsn,
		SealKey: key,
		Logger:  slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// SQLiteDSN returns the path of a SQLite database file, not yet created, in
// tb.TempDir().
func SQLiteDSN(tb testing.TB) string {
	return filepath.Join(tb.TempDir(), "wxrelay.db")
}

// PostgresDSN creates an empty schema on the WXRELAY_TEST_POSTGRES server,
// drops it when the test ends, and returns a URL whose connections work in
// that schema alone. It skips the test when the variable is unset.
func PostgresDSN(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		tb.Skipf("PostgreSQL tests are off: set %s to a postgres:// URL of a server where the user may CREATE SCHEMA, "+
			"e.g. %s='postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable'", PostgresEnv, PostgresEnv)
	}
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("%s does not parse as a URL", PostgresEnv) // not the error: it repeats the password
	}

	b := make([]byte, 8)
	rand.Read(b)
	schema := "wxrelay_test_" + hex.EncodeToString(b) // a plain identifier: no quoting needed

	admin := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(base)))
	defer admin.Close()
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		tb.Fatalf("create schema on %s: %v", u.Redacted(), err)
	}
	tb.Cleanup(func() {
		admin := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(base)))
		defer admin.Close()
		if _, err := admin.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})

	// pgdriver sends unknown query parameters as session settings, so every
	// pooled connection gets this search_path.
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// PostgresLimitedDSN is PostgresDSN for a role of its own that may hold at
// most limit connections at once, as a server whose max_connections is
// limit would allow: a pool that opens more meets the server's refusal
// (53300), as it would in production. It skips the test as PostgresDSN
// does.
func PostgresLimitedDSN(tb testing.TB, limit int) string {
	tb.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		tb.Skipf("PostgreSQL tests are off: set %s to a postgres:// URL of a server where the user may CREATE ROLE and CREATE SCHEMA", PostgresEnv)
	}
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("%s does not parse as a URL", PostgresEnv)
	}
	b := make([]byte, 8)
	rand.Read(b)
	name := "wxrelay_lim_" + hex.EncodeToString(b) // the role and its schema

	admin := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(base)))
	defer admin.Close()
	for _, q := range []string{
		// Not a superuser: superusers pass connection limits.
		fmt.Sprintf("CREATE ROLE %s LOGIN CONNECTION LIMIT %d", name, limit),
		fmt.Sprintf("CREATE SCHEMA %s AUTHORIZATION %s", name, name),
	} {
		if _, err := admin.Exec(q); err != nil {
			tb.Fatalf("%s on %s: %v", q, u.Redacted(), err)
		}
	}
	tb.Cleanup(func() {
		admin := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(base)))
		defer admin.Close()
		for _, q := range []string{"DROP SCHEMA " + name + " CASCADE", "DROP ROLE " + name} {
			if _, err := admin.Exec(q); err != nil {
				tb.Errorf("%s: %v", q, err)
			}
		}
	})
	u.User = url.User(name)
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}
