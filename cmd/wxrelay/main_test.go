package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestBadSettingsStopStartup(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "x.db")
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"bad http addr", []string{"serve", "--db", db, "--http-addr", "8080"}, nil, "--http-addr"},
		{"bad grpc port", []string{"serve", "--db", db, "--grpc-addr", ":99999"}, nil, "--grpc-addr"},
		{"unknown db scheme", []string{"serve", "--db", "mysql://x"}, nil, `unsupported database scheme "mysql"`},
		{"short key", []string{"serve", "--db", db}, map[string]string{"WXRELAY_SECRET_KEY": "c2hvcnQ="}, "must be 32 bytes"},
		{"key not base64", []string{"serve", "--db", db, "--secret-key", "!!!"}, nil, "not base64"},
		{"postgres without key", []string{"serve", "--db", "postgres://u@127.0.0.1:1/db"}, nil, "required with PostgreSQL"},
		{"bad public url", []string{"serve", "--db", db, "--public-url", "relay.example.com"}, nil, "--public-url"},
		{"bad retry schedule", []string{"serve", "--db", db}, map[string]string{"WXRELAY_RETRY_SCHEDULE": "0s,5 minutes"}, "WXRELAY_RETRY_SCHEDULE"},
		{"negative delay", []string{"serve", "--db", db, "--retry-schedule", "-5s"}, nil, "negative"},
		{"bad bool env", []string{"serve", "--db", db}, map[string]string{"WXRELAY_ALLOW_PRIVATE_WEBHOOKS": "sure"}, "WXRELAY_ALLOW_PRIVATE_WEBHOOKS"},
		{"bad ttl", []string{"admin-token", "--db", db, "--ttl", "-1h"}, nil, "--ttl"},
		{"bad retention", []string{"serve", "--db", db}, map[string]string{"WXRELAY_RETENTION": "7d"}, "WXRELAY_RETENTION"},
		{"short retention", []string{"serve", "--db", db, "--retention", "30m"}, nil, "--retention / WXRELAY_RETENTION: 30m0s is under the minimum of 1h0m0s"},
		{"short failed retention", []string{"serve", "--db", db}, map[string]string{"WXRELAY_FAILED_RETENTION": "10m"}, "WXRELAY_FAILED_RETENTION: 10m0s is under"},
		{"negative retention", []string{"serve", "--db", db, "--failed-retention", "-720h"}, nil, "--failed-retention"},
		{"push skew too wide", []string{"serve", "--db", db, "--push-max-skew", "2h"}, nil, "--push-max-skew / WXRELAY_PUSH_MAX_SKEW: 2h0m0s is outside 1m..30m0s"},
		{"alert webhook without secret", []string{"serve", "--db", db, "--alert-webhook", "https://ops.example.com/alerts"}, nil, "--alert-webhook-secret / WXRELAY_ALERT_WEBHOOK_SECRET: required with --alert-webhook"},
		{"alert secret without webhook", []string{"serve", "--db", db}, map[string]string{"WXRELAY_ALERT_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, "is set but --alert-webhook"},
		{"alert webhook not a url", []string{"serve", "--db", db, "--alert-webhook", "ops.example.com", "--alert-webhook-secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, nil, "--alert-webhook / WXRELAY_ALERT_WEBHOOK: not an absolute http or https URL"},
		{"bad alert secret", []string{"serve", "--db", db, "--alert-webhook", "https://ops.example.com/a"}, map[string]string{"WXRELAY_ALERT_WEBHOOK_SECRET": "hunter2-not-whsec"}, "WXRELAY_ALERT_WEBHOOK_SECRET"},
		{"health interval too short", []string{"serve", "--db", db, "--health-interval", "100ms"}, nil, "--health-interval / WXRELAY_HEALTH_INTERVAL: 100ms is outside 1s..5m"},
		{"negative tenant write rate", []string{"serve", "--db", db}, map[string]string{"WXRELAY_TENANT_WRITE_RATE": "-5"}, "--tenant-write-rate / WXRELAY_TENANT_WRITE_RATE: -5 must be 0 (no limit)"},
		{"negative push secret grace", []string{"serve", "--db", db}, map[string]string{"WXRELAY_PUSH_SECRET_GRACE": "-1m"}, "WXRELAY_PUSH_SECRET_GRACE"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tt.args, env(tt.env), &stdout, &stderr)
			if err == nil {
				t.Fatalf("run succeeded, want an error mentioning %q", tt.want)
			}
			if msg := err.Error(); !strings.Contains(msg, tt.want) || strings.Contains(msg, "\n") {
				t.Errorf("error = %q, want one line mentioning %q", msg, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q quotes the secret", err)
			}
		})
	}
}

func TestFlagsWinOverEnvironment(t *testing.T) {
	fs := newFlagSet("serve", env(map[string]string{"WXRELAY_HTTP_ADDR": ":1111", "WXRELAY_GRPC_ADDR": ":2222"}), &bytes.Buffer{})
	fs.addServeFlags()
	cfg, err := fs.parse([]string{"--http-addr", ":3333"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != ":3333" || cfg.GRPCAddr != ":2222" {
		t.Errorf("http %s grpc %s, want the flag :3333 and the env :2222", cfg.HTTPAddr, cfg.GRPCAddr)
	}
	if cfg.DB != "wxrelay.db" || len(cfg.RetrySchedule) != 8 {
		t.Errorf("defaults: db %q schedule %v", cfg.DB, cfg.RetrySchedule)
	}
	if cfg.Retention != 7*24*time.Hour || cfg.FailedRetention != 30*24*time.Hour {
		t.Errorf("default retention %s, failed %s; want 168h and 720h", cfg.Retention, cfg.FailedRetention)
	}
}

func TestRetentionSettings(t *testing.T) {
	fs := newFlagSet("serve", env(map[string]string{"WXRELAY_RETENTION": "24h", "WXRELAY_FAILED_RETENTION": "48h"}), &bytes.Buffer{})
	fs.addServeFlags()
	cfg, err := fs.parse([]string{"--failed-retention", "1h"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.validateServe(); err != nil {
		t.Fatal(err)
	}
	if cfg.Retention != 24*time.Hour || cfg.FailedRetention != time.Hour {
		t.Errorf("retention %s, failed %s; want the env 24h and the flag 1h", cfg.Retention, cfg.FailedRetention)
	}
}

func TestKeyFileMadeOnceWithMode0600(t *testing.T) {
	db := filepath.Join(t.TempDir(), "sub", "relay.db")
	cfg := &config{DB: db}
	k1, err := secretKey(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(db + ".key")
	if err != nil {
		t.Fatal(err)
	}
	if mode := st.Mode().Perm(); mode != 0o600 {
		t.Errorf("key file mode = %o, want 600", mode)
	}
	k2, err := secretKey(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k1, k2) || len(k1) != 32 {
		t.Errorf("second start read a different key")
	}
}

func TestAdminTokenPrintsOnlyAToken(t *testing.T) {
	db := filepath.Join(t.TempDir(), "relay.db")
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"admin-token", "--db", db, "--ttl", "1h", "--init"}, env(nil), &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	out := stdout.String()
	if strings.Count(out, "\n") != 1 || strings.Count(strings.TrimSpace(out), ".") != 2 {
		t.Errorf("stdout = %q, want one JWT line", out)
	}
}

// admin-token where no relay keeps its key (another directory than the
// relay's, a typo in --db) refuses, naming the database it looked for,
// instead of printing a token signed with a new key that the relay then
// refuses with 401; a mistyped --ttl says what a duration looks like.
func TestAdminTokenRefusesToMakeAStrayKey(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "relay.db")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"admin-token", "--db", db}, env(nil), &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), db) || !strings.Contains(err.Error(), "--init") || stdout.Len() != 0 {
		t.Fatalf("admin-token without a key: %v, stdout %q; want a refusal naming %s and --init", err, stdout.String(), db)
	}
	if _, err := os.Stat(db + ".key"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the refusal left a key file: %v", err)
	}
	err = run(context.Background(), []string{"admin-token", "--db", db, "--init", "--ttl", "1d"}, env(nil), &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "24h") {
		t.Errorf("--ttl 1d: %v, want a hint that 24h is a day", err)
	}
}

func TestVersion(t *testing.T) {
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"version"}, env(nil), &stdout, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stdout.String(), "wxrelay ") {
		t.Errorf("version output %q", stdout.String())
	}
}

func TestUnknownCommand(t *testing.T) {
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"frobnicate"}, env(nil), &bytes.Buffer{}, &stderr)
	if exitCode(err) != 2 || !strings.Contains(stderr.String(), "usage") {
		t.Errorf("exit %d, stderr %q", exitCode(err), stderr.String())
	}
}

func TestMigrateCreatesTheSchema(t *testing.T) {
	db := filepath.Join(t.TempDir(), "relay.db")
	var stderr bytes.Buffer
	if err := run(context.Background(), []string{"migrate", "--db", db}, env(nil), &bytes.Buffer{}, &stderr); err != nil {
		t.Fatalf("migrate: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "database is up to date") {
		t.Errorf("migrate log: %s", stderr.String())
	}
	if _, err := os.Stat(db); err != nil {
		t.Errorf("no database after migrate: %v", err)
	}
	if _, err := os.Stat(db + ".key"); err == nil {
		t.Errorf("migrate made a key file it does not need")
	}
}

// The start-up line says where the console is and how to sign in, and
// writes durations as the flags take them, not as nanoseconds.
func TestStartupLineIsReadable(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, dir, "WXRELAY_PUBLIC_URL=https://relay.example.com/")
	var line struct {
		Console string `json:"console"`
		SignIn  string `json:"console_sign_in"`
		Config  struct {
			RetrySchedule  any `json:"retry_schedule"`
			Retention      any `json:"retention"`
			HealthInterval any `json:"health_interval"`
		} `json:"config"`
	}
	found := false
	for _, l := range strings.Split(p.stderr.String(), "\n") {
		if strings.Contains(l, `"msg":"wxrelay serving"`) {
			found = json.Unmarshal([]byte(l), &line) == nil
		}
	}
	if !found {
		t.Fatalf("no start-up line in\n%s", p.stderr)
	}
	if line.Console != "https://relay.example.com/console/" || !strings.Contains(line.SignIn, "admin-token") {
		t.Errorf("console %q, sign-in %q", line.Console, line.SignIn)
	}
	c := line.Config
	if c.Retention != "168h0m0s" || c.HealthInterval != "15s" || c.RetrySchedule != "0s,5s,5m0s,30m0s,2h0m0s,5h0m0s,10h0m0s,10h0m0s" {
		t.Errorf("durations in the start-up line: retention %v, health_interval %v, retry_schedule %v", c.Retention, c.HealthInterval, c.RetrySchedule)
	}
}
