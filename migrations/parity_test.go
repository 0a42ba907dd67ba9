package migrations

import (
	"io/fs"
	"path"
	"slices"
	"strings"
	"testing"
)

// TestParity keeps the two engines on the same schema history: a migration
// added for one must be added for the other under the same name, with both
// an up and a down step.
func TestParity(t *testing.T) {
	names := map[string][]string{}
	for dialect := range dirs {
		m, err := For(dialect)
		if err != nil {
			t.Fatalf("For(%q): %v", dialect, err)
		}
		for _, mig := range m.Sorted() {
			if mig.Up == nil || mig.Down == nil {
				t.Errorf("%s: migration %s: up or down step missing", dialect, mig)
			}
			names[dialect] = append(names[dialect], mig.String())
		}
	}
	if got, want := names["pg"], names["sqlite"]; !slices.Equal(got, want) {
		t.Errorf("postgres migrations = %v, sqlite migrations = %v; want the same names", got, want)
	}
	if len(names["sqlite"]) == 0 {
		t.Error("no migrations found")
	}
}

// TestFileNames catches files that bun's Discover would silently skip or run
// outside a transaction: every file must be <digits>_<name>.tx.{up,down}.sql.
func TestFileNames(t *testing.T) {
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		base := path.Base(p)
		stem, ok := strings.CutSuffix(base, ".tx.up.sql")
		if !ok {
			stem, ok = strings.CutSuffix(base, ".tx.down.sql")
		}
		digits, name, _ := strings.Cut(stem, "_")
		if !ok || len(digits) != 14 || strings.Trim(digits, "0123456789") != "" || name == "" {
			t.Errorf("%s: want <UTC yyyymmddhhmmss>_<name>.tx.up.sql or .tx.down.sql", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestForUnknownDialect(t *testing.T) {
	if _, err := For("mysql"); err == nil {
		t.Error(`For("mysql") error = nil, want an error`)
	}
}
