package store

import (
	"strings"
	"testing"
)

func TestParseDSN(t *testing.T) {
	for _, tt := range []struct {
		dsn         string
		wantDialect string
		wantPath    string // sqlite only
		wantErr     string // a substring of the error
	}{
		{dsn: "wxrelay.db", wantDialect: "sqlite", wantPath: "wxrelay.db"},
		{dsn: "./data/../data/wxrelay.db", wantDialect: "sqlite", wantPath: "data/wxrelay.db"},
		{dsn: "/var/lib/wxrelay/wxrelay.db", wantDialect: "sqlite", wantPath: "/var/lib/wxrelay/wxrelay.db"},
		{dsn: "./odd:name?.db", wantDialect: "sqlite", wantPath: "odd:name?.db"},
		{dsn: "sqlite:data/wxrelay.db", wantDialect: "sqlite", wantPath: "data/wxrelay.db"},
		{dsn: "SQLite:wxrelay.db", wantDialect: "sqlite", wantPath: "wxrelay.db"},
		{dsn: "sqlite:///var/lib/wxrelay.db", wantDialect: "sqlite", wantPath: "/var/lib/wxrelay.db"},
		{dsn: "file:wxrelay.db", wantDialect: "sqlite", wantPath: "wxrelay.db"},
		{dsn: "file:///tmp/wxrelay.db", wantDialect: "sqlite", wantPath: "/tmp/wxrelay.db"},
		{dsn: "postgres://u:p@db:5432/wxrelay?sslmode=disable", wantDialect: "pg"},
		{dsn: "postgresql://db/wxrelay", wantDialect: "pg"},

		{dsn: "", wantErr: "no database given"},
		{dsn: "mysql://u:p@db/wxrelay", wantErr: `unsupported database scheme "mysql"`},
		{dsn: "redis:localhost", wantErr: `unsupported database scheme "redis"`},
		{dsn: "my.db:backup", wantErr: "unsupported database scheme"},
		{dsn: ":memory:", wantErr: "in-memory SQLite is not supported"},
		{dsn: "file::memory:", wantErr: "in-memory SQLite is not supported"},
		{dsn: "sqlite:", wantErr: "names no file"},
		{dsn: "sqlite://host/wxrelay.db", wantErr: "names a host"},
		{dsn: "file:wxrelay.db?mode=ro", wantErr: "takes no query parameters"},
		{dsn: "postgres:db", wantErr: "must start with postgres://"},
		{dsn: "postgres://u:hunter2@db:port/x", wantErr: "does not parse"},
	} {
		t.Run(tt.dsn, func(t *testing.T) {
			got, err := parseDSN(tt.dsn)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseDSN(%q) error = %v, want one containing %q", tt.dsn, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("error %q shows the password", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseDSN(%q) error = %v", tt.dsn, err)
			}
			if got.dialect != tt.wantDialect || got.path != tt.wantPath {
				t.Errorf("parseDSN(%q) = %s %q, want %s %q", tt.dsn, got.dialect, got.path, tt.wantDialect, tt.wantPath)
			}
		})
	}
}

func TestTargetStringHidesPassword(t *testing.T) {
	tgt, err := parseDSN("postgres://wxrelay:hunter2@db:5432/wxrelay")
	if err != nil {
		t.Fatal(err)
	}
	if s := tgt.String(); strings.Contains(s, "hunter2") {
		t.Errorf("target.String() = %q, shows the password", s)
	}
}
