// Package migrations holds wxrelay's database schema as SQL migrations, one
// set per engine: sqlite/ for single-node deployments and postgres/ for
// scale-out. Both sets carry the same migration names, so a schema version
// means the same thing on either engine (parity_test.go keeps it so).
//
// Each change is a pair of files named <UTC timestamp>_<what>.tx.up.sql and
// .tx.down.sql; the ".tx" makes bun run each file in a transaction, so a
// failed migration leaves no half-built schema behind.
//
// The files are embedded rather than discovered from the source tree at run
// time (migrate.Migrations.DiscoverCaller), which would break any binary that
// runs away from its checkout, such as in a container.
package migrations

import (
	"embed"
	"fmt"
	"io/fs"

	"github.com/uptrace/bun/migrate"
)

//go:embed sqlite/*.sql postgres/*.sql
var files embed.FS

// dirs maps bun's dialect names to the directory holding their migrations.
var dirs = map[string]string{
	"sqlite": "sqlite",
	"pg":     "postgres",
}

// For returns the migrations for a bun dialect name: "sqlite" or "pg", as
// returned by bun's dialect.Name.String.
func For(dialect string) (*migrate.Migrations, error) {
	sub, err := dir(dialect)
	if err != nil {
		return nil, err
	}
	m := migrate.NewMigrations()
	if err := m.Discover(sub); err != nil {
		return nil, fmt.Errorf("migrations: %s: %w", dialect, err)
	}
	return m, nil
}

// dir returns the SQL files of one dialect.
func dir(dialect string) (fs.FS, error) {
	d, ok := dirs[dialect]
	if !ok {
		return nil, fmt.Errorf("migrations: unsupported dialect %q (want sqlite or pg)", dialect)
	}
	return fs.Sub(files, d)
}
