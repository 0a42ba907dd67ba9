// Package store keeps wxrelay's state in SQL through bun: in a SQLite file
// for a single node, or in PostgreSQL when several replicas share the work.
// Queries are written once, with bun's query builder and placeholders, and
// run on both engines, but for the delivery's hot path: claims and records
// are written for each engine, in delivery_pg.go and delivery_sqlite.go
// behind one interface (deliveryEngine), and the conformance tests
// (storetest.Each) run them on both. The schema lives in package
// migrations.
//
// Secrets never reach the database in the clear: they are sealed with
// AES-256-GCM under Config.SealKey, each ciphertext bound to the row and
// column it belongs to (seal.go).
//
// The store translates driver errors into the domain's sentinels (for
// example a duplicate appid into tenant.ErrConflict), wrapping them with %w
// and with detail for logs that never includes a secret.
package store

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/driver/pgdriver"
	"github.com/uptrace/bun/migrate"

	"github.com/wxrelay/wxrelay/migrations"
)

// Config says which database to open and how.
type Config struct {
	// DSN names the database:
	//
	//	wxrelay.db, ./data/wxrelay.db   a SQLite file path
	//	sqlite:data/wxrelay.db          the same, explicitly
	//	sqlite:///var/lib/wxrelay.db    an absolute path in URL form (file: works alike)
	//	postgres://user:pass@host/db    PostgreSQL (also postgresql://)
	//
	// A prefix that looks like a URL scheme ("mysql://...", "redis:...")
	// and is none of these is an error, not a file name; write ./name for
	// a file whose name contains a colon. Postgres URLs take pgdriver's
	// query parameters; note that pgdriver insists on TLS unless the URL
	// says sslmode=disable.
	DSN string
	// SealKey is the 32-byte key that seals tenant secrets at rest. It may
	// be nil only for a DB opened to migrate: its stores then refuse to
	// read or write secrets.
	SealKey []byte
	// Logger receives migration and start-up messages; nil discards them.
	Logger *slog.Logger
	// SkipMigrate opens the database without bringing its schema up to
	// date. Open migrates by default, so that `wxrelay serve` needs no
	// separate step; tools that want to report on migrating, such as
	// `wxrelay migrate`, set this and call DB.Migrate themselves.
	SkipMigrate bool
	// MaxConns bounds the PostgreSQL connections this process opens, its
	// two pools and the notice listener together; zero means
	// DefaultMaxConns. Every replica's share counts against the server's
	// max_connections, and a pool without a bound opened connections until
	// the server refused them all (53300), ingest commits included.
	// SQLite ignores it.
	MaxConns int
	// Clock is this process's clock; nil means time.Now. The times the
	// stores compare across processes are read off the database's clock
	// (DB.Now), measured against this one: tests set a wrong Clock to play
	// a replica whose clock is off.
	Clock func() time.Time
}

// DefaultMaxConns is the PostgreSQL connections a process opens at most:
// enough for the API's concurrent calls, ingest's group commits, delivery
// claims and records, with room for several replicas under PostgreSQL's
// default max_connections of 100.
const DefaultMaxConns = 20

// pgPoolSizes splits a process's connections between its pools: one for
// the listener of tenant notices (store.DB.WatchTenants), a quarter of the
// rest for the relaxed pool (delivery claims and records, call records),
// the others for the durable pool (ingest, API reads and writes). Idle
// connections are kept as long as they are used within idleFor: a pool
// that closes idle ones only to dial them again a moment later churned
// through 44 backends in 2 s.
func pgPoolSizes(maxConns int) (durable, relaxed int) {
	rest := max(maxConns-1, 2)
	relaxed = max(rest/4, 1)
	return rest - relaxed, relaxed
}

const pgIdleFor = 5 * time.Minute

// DB is an open database: a connection pool, the dialect it speaks and the
// key that seals secrets. It is safe for concurrent use.
type DB struct {
	bun *bun.DB
	// relaxed is for writes whose loss in a crash is harmless: on SQLite
	// a second pool on the same file whose commits skip the fsync
	// (synchronous=NORMAL); on PostgreSQL a second pool whose sessions
	// commit without waiting for the WAL flush (synchronous_commit=off).
	// On either engine the two mix safely: the WAL is one sequence, so a
	// later durable commit (or checkpoint, or PostgreSQL's WAL writer,
	// within 600 ms by default) makes every earlier relaxed one durable
	// too, and a crash can only lose the newest relaxed commits, never
	// reorder them. A relaxed commit is visible to every session at once.
	relaxed      *bun.DB
	sealer       *sealer
	log          *slog.Logger
	checkpointer *checkpointer // SQLite only
	// writes serialises this process's write transactions on SQLite,
	// which takes one writer at a time anyway. Waiting here wakes the next
	// writer the moment the last one commits, in order; waiting in
	// SQLite's busy handler sleeps 1, 2, 5, 10 ms and more between tries,
	// which added tens of milliseconds to pushes and deliveries whenever
	// ingest, claims and outcomes met (BenchmarkPushToWebhook in
	// relay/delivery). Other processes on the same file still meet in
	// SQLite's busy handler. A channel of one token rather than a mutex,
	// so that a writer with a deadline (ingest) can give up waiting.
	writes chan struct{}
	// turnWait measures how long writers wait for the write turn.
	turnWait prometheus.Histogram
	// stmts are the stores' hot statements prepared on SQLite (prepare.go).
	stmts preparedStmts
	// path and file are the SQLite database file and what it was when
	// opened: a file deleted or replaced under the process still takes its
	// writes, which are lost with it (see Writable).
	path string
	file os.FileInfo
	// clock is the database's clock, as this process estimates it
	// (clock.go).
	clock *dbClock
}

// serialize takes this process's SQLite write turn and returns its
// release; on PostgreSQL, which takes concurrent writers, it does nothing.
// Every store method that writes starts with defer s.db.serialize()().
//
// A turn held longer than slowWriteTurn is logged with the method that held
// it: every other writer, a send's reply-window reservation included, waited
// that long, so the log names what a stall of sends waited for (a durable
// commit whose fsync the disk held up, a checkpoint backstop, a big delete).
func (db *DB) serialize() func() {
	release, _ := db.writeTurn(context.Background())
	return release
}

// writeTurn is serialize for a writer that gives up when ctx ends: it
// returns ctx's error, wrapped, and holds no turn then. The ingest batch
// waits this way, so that its commit deadline (4 s, under WeChat's 5)
// holds whoever else is writing.
func (db *DB) writeTurn(ctx context.Context) (release func(), err error) {
	if db.checkpointer == nil {
		return func() {}, nil
	}
	asked := time.Now()
	select {
	case db.writes <- struct{}{}:
	default:
		select {
		case db.writes <- struct{}{}:
		case <-ctx.Done():
			db.turnWait.Observe(time.Since(asked).Seconds())
			return nil, fmt.Errorf("store: gave up waiting %s for the SQLite write turn: %w", time.Since(asked).Round(time.Millisecond), ctx.Err())
		}
	}
	took := time.Now()
	db.turnWait.Observe(took.Sub(asked).Seconds())
	return func() {
		held := time.Since(took)
		<-db.writes
		if held > slowWriteTurn {
			// The release runs deferred in the method that took the turn,
			// which is therefore its caller.
			by := "unknown"
			if pc, _, _, ok := runtime.Caller(1); ok {
				by = runtime.FuncForPC(pc).Name()
			}
			db.log.Warn("store: SQLite write turn held long; every other writer waited", "held_ms", held.Milliseconds(), "by", by)
		}
	}, nil
}

// ErrBackupExists: Backup does not overwrite a file.
var ErrBackupExists = errors.New("store: the backup file exists already; give a new path, or remove the old backup first")

// Backup writes a consistent copy of a SQLite database to path, which must
// not exist, while other processes go on writing: SQLite's VACUUM INTO
// reads one snapshot and writes a compact database of it, in rollback
// mode, its file private to its owner. Restoring is putting the file back
// as the database (with its -wal and -shm files gone) beside the same
// secret key. On PostgreSQL it is an error: use pg_dump.
func (db *DB) Backup(ctx context.Context, path string) error {
	if db.Dialect() != "sqlite" {
		return errors.New("store: backup copies SQLite databases; back PostgreSQL up with pg_dump or the server's own tools")
	}
	if _, err := os.Stat(path); err == nil {
		return ErrBackupExists
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("store: backup file: %w", err)
	}
	if _, err := db.bun.ExecContext(ctx, "VACUUM INTO ?", path); err != nil {
		os.Remove(path)
		return fmt.Errorf("store: back up to %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("store: backup file: %w", err)
	}
	return nil
}

// Collectors are the database's metrics: how long writers wait for the
// SQLite write turn (nothing is observed on PostgreSQL, which takes
// concurrent writers), and how far the database's clock is from this
// process's.
func (db *DB) Collectors() []prometheus.Collector {
	return []prometheus.Collector{db.turnWait, db.clock.gauge}
}

// slowWriteTurn is how long a write turn may be held before it is logged:
// a durable commit takes about a millisecond here.
const slowWriteTurn = 100 * time.Millisecond

// Open connects to the database named by cfg.DSN, checks that it answers,
// and, unless cfg.SkipMigrate is set, migrates it (see Migrate). For SQLite
// the file and its parent directory are created if missing.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	var sl *sealer
	if cfg.SealKey != nil {
		var err error
		if sl, err = newSealer(cfg.SealKey); err != nil {
			return nil, err
		}
	}
	tgt, err := parseDSN(cfg.DSN)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	var bdb *bun.DB
	durableConns, relaxedConns := pgPoolSizes(cmp.Or(cfg.MaxConns, DefaultMaxConns))
	switch tgt.dialect {
	case "sqlite":
		bdb, err = openSQLite(ctx, tgt.path)
	case "pg":
		bdb, err = openPostgres(ctx, tgt.url, durableConns)
	}
	if err != nil {
		return nil, err
	}
	db := &DB{bun: bdb, relaxed: bdb, sealer: sl, log: log, writes: make(chan struct{}, 1),
		turnWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "wxrelay_store_write_turn_wait_seconds",
			Help:    "How long a write waited for the SQLite write turn, which this process's writers take one at a time.",
			Buckets: []float64{.0001, .0005, .001, .005, .01, .05, .1, .5, 1, 4},
		}),
		clock: newDBClock(cfg.Clock)}
	if tgt.dialect == "sqlite" {
		db.path = tgt.path
		if db.file, err = os.Stat(tgt.path); err != nil {
			bdb.Close()
			return nil, fmt.Errorf("store: database file: %w", err)
		}
		if db.relaxed, err = openSQLiteWith(ctx, tgt.path, "NORMAL"); err != nil {
			bdb.Close()
			return nil, err
		}
		db.checkpointer = startCheckpointer(bdb.DB, log)
	} else {
		// pgdriver sends unknown URL parameters as session settings.
		u := *tgt.url
		q := u.Query()
		q.Set("synchronous_commit", "off")
		u.RawQuery = q.Encode()
		if db.relaxed, err = openPostgres(ctx, &u, relaxedConns); err != nil {
			bdb.Close()
			return nil, err
		}
	}
	readClock := databaseTime(db.relaxed, tgt.dialect)
	if err := db.clock.sync(ctx, readClock); err != nil {
		db.checkpointer.close()
		if db.relaxed != bdb {
			db.relaxed.Close()
		}
		bdb.Close()
		return nil, err
	}
	db.clock.report(log)
	go db.clock.follow(readClock, log)
	log.InfoContext(ctx, "database opened", "dialect", tgt.dialect, "location", tgt.String())

	if !cfg.SkipMigrate {
		if err := db.Migrate(ctx); err != nil {
			db.Close()
			return nil, err
		}
		if err := db.checkSealKey(ctx); err != nil {
			db.Close()
			return nil, err
		}
	}
	return db, nil
}

// ErrWrongSealKey: the seal key does not open the secrets the database
// holds, so every push and call of their tenants would fail.
var ErrWrongSealKey = errors.New("store: the secret key does not open the secrets in this database: it is not the key they were sealed with (a key file from another database, or WXRELAY_SECRET_KEY changed)")

// checkSealKey opens one tenant's sealed secrets, if there is a tenant
// and a key: a wrong key is refused at start-up, not at every push.
func (db *DB) checkSealKey(ctx context.Context) error {
	if db.sealer == nil {
		return nil
	}
	var rows []tenantRow
	if err := db.bun.NewSelect().Model(&rows).Column("id", "sealed_secrets").Limit(1).Scan(ctx); err != nil {
		return fmt.Errorf("store: check the secret key: %w", err)
	}
	if len(rows) == 0 {
		return nil
	}
	if _, err := db.sealer.open(rows[0].SealedSecrets, colSecrets, rows[0].ID); err != nil {
		return ErrWrongSealKey
	}
	return nil
}

// Writable reports whether the database can durably store a write now: it
// backs /readyz. On SQLite the file must still be the one opened (a file
// deleted under the process takes writes and loses them), and on either
// engine a durable write of one row must commit (a full disk refuses it).
func (db *DB) Writable(ctx context.Context) error {
	if err := db.fileGone(); err != nil {
		return err
	}
	// The probe below rewrites one row, which SQLite may fit in WAL space
	// the file already holds while a push, which needs fresh pages, can
	// no longer be stored: on a full file system the probe alone may say
	// ready. So the room left is asked of the file system too.
	if db.file != nil {
		if free, ok := freeBytes(db.path); ok && free < minFreeBytes {
			return fmt.Errorf("store: the file system of %s has %d bytes free: pushes could not be stored", db.path, free)
		}
	}
	defer db.serialize()()
	_, err := db.bun.NewRaw(`INSERT INTO readiness_probe (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at`,
		time.Now().UnixMilli()).Exec(ctx)
	if err != nil {
		return fmt.Errorf("store: cannot write: %w", err)
	}
	return nil
}

// minFreeBytes is the least room on the SQLite database's file system
// with which the relay says it is ready: a batch of pushes and its WAL
// frames take a few hundred KiB.
const minFreeBytes = 1 << 20

// fileGone returns an error when the SQLite database file is no longer the
// one opened: deleted, or replaced.
func (db *DB) fileGone() error {
	if db.file == nil {
		return nil
	}
	fi, err := os.Stat(db.path)
	if err != nil || !os.SameFile(fi, db.file) {
		return fmt.Errorf("store: the database file %s is gone or was replaced under the running process: writes would be lost", db.path)
	}
	return nil
}

// Bun returns the bun handle, for stores of other packages' types that live
// beside this one. Callers must keep to SQL both engines accept.
func (db *DB) Bun() *bun.DB { return db.bun }

// AddQueryHook adds a bun query hook to every pool of db, for tracing and
// tests that inspect the SQL the stores send. Call it before db is shared:
// it replaces the pools' handles.
func (db *DB) AddQueryHook(h bun.QueryHook) {
	shared := db.relaxed == db.bun
	db.bun = db.bun.WithQueryHook(h)
	if shared {
		db.relaxed = db.bun
	} else {
		db.relaxed = db.relaxed.WithQueryHook(h)
	}
}

// Dialect returns "sqlite" or "pg".
func (db *DB) Dialect() string { return db.bun.Dialect().Name().String() }

// Ping reports whether the database answers; it backs /readyz.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.bun.PingContext(ctx); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// Close closes the connection pool.
func (db *DB) Close() error {
	db.clock.close()
	db.checkpointer.close()
	db.stmts.closeAll()
	if db.relaxed != db.bun {
		db.relaxed.Close()
	}
	return db.bun.Close()
}

// migrateLockWait bounds how long Migrate waits for another process to
// finish migrating.
const migrateLockWait = time.Minute

// Migrate applies the migrations the database lacks and logs what it
// applied. It is safe to run from several processes at once, as replicas
// starting together do: one of them migrates while the others wait for it
// (until ctx is done, at most a minute) and then find nothing left to do.
//
// On SQLite the lock is bun's row in bun_migration_locks, which a process
// killed while migrating leaves behind; the error then says so and names
// the row to delete. On PostgreSQL it is a session lock, which the server
// frees when the holder's connection ends, however the holder died.
func (db *DB) Migrate(ctx context.Context) (err error) {
	ms, err := migrations.For(db.Dialect())
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	// Marking a migration applied only after it succeeded keeps a failed
	// one pending, to be retried on the next start rather than skipped.
	m := migrate.NewMigrator(db.bun, ms, migrate.WithMarkAppliedOnSuccess(true))

	unlock, err := db.lockMigrations(ctx, m)
	if err != nil {
		return err
	}
	defer func() {
		// Unlock even when ctx is cancelled mid-migration: a lock left
		// behind would stall every later start.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if uerr := unlock(ctx); uerr != nil {
			err = errors.Join(err, fmt.Errorf("store: release migration lock: %w", uerr))
		}
	}()

	if missing, err := m.MissingMigrations(ctx); err != nil {
		return fmt.Errorf("store: list applied migrations: %w", err)
	} else if len(missing) > 0 {
		// An older binary on a newer schema, as during a rolling upgrade.
		// Refusing to start would stall the rollout; say so instead.
		db.log.WarnContext(ctx, "database has migrations this binary does not know; is it older than the schema?",
			"unknown", missing.String())
	}

	group, err := m.Migrate(ctx)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	if group.IsZero() {
		db.log.DebugContext(ctx, "database schema is up to date")
	} else {
		db.log.InfoContext(ctx, "applied migrations", "group", group.ID, "migrations", group.Migrations.String())
	}
	return nil
}

// lockMigrations creates bun's bookkeeping tables and takes the migration
// lock, waiting while another process holds it, and returns its release.
func (db *DB) lockMigrations(ctx context.Context, m *migrate.Migrator) (unlock func(context.Context) error, err error) {
	ctx, cancel := context.WithTimeout(ctx, migrateLockWait)
	defer cancel()
	if db.Dialect() == "pg" {
		return db.lockMigrationsPG(ctx, m)
	}

	// bun's Lock does not wait by itself: it inserts a row that a unique
	// constraint keeps single, so a unique violation means "held".
	// Creating the tables collides too when processes start together (see
	// migrationBusy), and is retried alike.
	err = db.waitTurn(ctx, func() (bool, error) {
		err := m.Init(ctx)
		if err == nil {
			err = m.Lock(ctx)
		}
		if migrationBusy(err) {
			return false, nil
		} else if err != nil {
			return false, fmt.Errorf("store: take migration lock: %w", err)
		}
		return true, nil
	}, func() error {
		return fmt.Errorf("store: migrations are locked by another process (%w); "+
			"if none is running, one died while migrating: delete the row in bun_migration_locks and start again",
			context.Cause(ctx))
	})
	if err != nil {
		return nil, err
	}
	return m.Unlock, nil
}

// migrateLockClass is the first key of the PostgreSQL advisory lock that
// guards migrating ("wxre"); the second is a hash of the schema, so that
// databases in different schemas of one server (as the tests make) do not
// wait for each other.
const migrateLockClass = 0x77787265

// migrateLockKey is the SQL of the advisory lock's two keys.
var migrateLockKey = fmt.Sprintf("%d, hashtext(coalesce(current_schema(), ''))", migrateLockClass)

// lockMigrationsPG takes the migration lock on PostgreSQL: a session-level
// advisory lock, on a connection kept out of the pool until the release.
// The server frees it when that session ends, so a process killed while
// migrating leaves nothing behind, unlike bun's lock row. It polls with
// pg_try_advisory_lock rather than blocking in pg_advisory_lock, which
// would outlast pgdriver's read timeout.
func (db *DB) lockMigrationsPG(ctx context.Context, m *migrate.Migrator) (unlock func(context.Context) error, err error) {
	conn, err := db.bun.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: take migration lock: %w", err)
	}
	err = db.waitTurn(ctx, func() (bool, error) {
		var ok bool
		if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock("+migrateLockKey+")").Scan(&ok); err != nil {
			return false, fmt.Errorf("store: take migration lock: %w", err)
		}
		return ok, nil
	}, func() error {
		return fmt.Errorf("store: another process has been migrating the database for over %s (%w); "+
			"pg_stat_activity shows what it runs", migrateLockWait, context.Cause(ctx))
	})
	if err != nil {
		conn.Close()
		return nil, err
	}
	unlock = func(ctx context.Context) error {
		_, err := conn.ExecContext(ctx, "SELECT pg_advisory_unlock("+migrateLockKey+")")
		if err != nil {
			// Back in the pool the session would hold the lock on:
			// close it instead, which frees the lock.
			conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		return errors.Join(err, conn.Close())
	}
	// Under the lock no other process creates bun's tables at once.
	if err := m.Init(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("store: create migration tables: %w", err), unlock(context.WithoutCancel(ctx)))
	}
	return unlock, nil
}

// waitTurn calls try until it reports the lock taken or fails, backing off
// from 50 ms to a second between tries and logging once that it waits. It
// gives up with timedOut() when ctx is done.
func (db *DB) waitTurn(ctx context.Context, try func() (bool, error), timedOut func() error) error {
	for wait, busy := 50*time.Millisecond, false; ; wait = min(2*wait, time.Second) {
		ok, err := try()
		switch {
		case err == nil && ok:
			return nil
		case err == nil:
			if !busy {
				db.log.InfoContext(ctx, "waiting for another process to finish migrating the database")
				busy = true
			}
		case busy && ctx.Err() != nil:
			return timedOut() // the wait ran out during a retry
		default:
			return err
		}
		select {
		case <-ctx.Done():
			return timedOut()
		case <-time.After(wait):
		}
	}
}

// target is a parsed DSN.
type target struct {
	dialect string   // "sqlite" or "pg"
	path    string   // sqlite: the database file
	url     *url.URL // pg: the connection URL
}

// String describes the target for logs, without a password.
func (t target) String() string {
	if t.url != nil {
		return t.url.Redacted()
	}
	return t.path
}

// schemePrefix matches a URL scheme at the start of a DSN. Two letters at
// least, so that a Windows drive letter (C:\...) reads as a path.
var schemePrefix = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]+):`)

// ParseDSN checks a DSN without opening it, so that a bad --db stops
// start-up at once. It returns the dialect ("sqlite" or "pg") and, for
// SQLite, the path of the database file.
func ParseDSN(dsn string) (dialect, sqlitePath string, err error) {
	t, err := parseDSN(dsn)
	return t.dialect, t.path, err
}

func parseDSN(dsn string) (target, error) {
	if dsn == "" {
		return target{}, errors.New("store: no database given: want a SQLite file path or a postgres:// URL")
	}
	scheme := ""
	if m := schemePrefix.FindStringSubmatch(dsn); m != nil {
		scheme = strings.ToLower(m[1])
	}
	switch scheme {
	case "":
		return sqliteTarget(dsn)
	case "sqlite", "file":
		path := dsn[len(scheme)+1:]
		if strings.Contains(path, "?") {
			return target{}, fmt.Errorf("store: %s: DSN takes no query parameters: wxrelay sets the SQLite options itself", scheme)
		}
		if rest, ok := strings.CutPrefix(path, "//"); ok {
			// URL form: sqlite:///abs/path, with an empty host.
			if !strings.HasPrefix(rest, "/") {
				return target{}, fmt.Errorf("store: %s: DSN names a host; write %s:relative/path or %s:///absolute/path", scheme, scheme, scheme)
			}
			path = rest
		}
		return sqliteTarget(path)
	case "postgres", "postgresql":
		u, err := url.Parse(dsn)
		if err != nil {
			// url.Error repeats the whole URL, password included.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return target{}, fmt.Errorf("store: postgres URL does not parse: %v", err)
		}
		if !strings.HasPrefix(dsn[len(scheme)+1:], "//") {
			return target{}, fmt.Errorf("store: postgres URL must start with %s://", scheme)
		}
		return target{dialect: "pg", url: u}, nil
	default:
		return target{}, fmt.Errorf("store: unsupported database scheme %q: want a SQLite file path (or sqlite:path) or a postgres:// URL", scheme)
	}
}

func sqliteTarget(path string) (target, error) {
	if path == "" {
		return target{}, errors.New("store: SQLite DSN names no file")
	}
	// Each pooled connection to an in-memory database gets its own empty
	// one, so the schema migrated on one connection is missing on the next.
	if strings.HasPrefix(path, ":memory:") {
		return target{}, errors.New("store: in-memory SQLite is not supported; give a file path (tests: storetest.New)")
	}
	return target{dialect: "sqlite", path: filepath.Clean(path)}, nil
}

// sqliteOptions are mattn/go-sqlite3's DSN parameters. They go in the DSN,
// not in one-off PRAGMA statements, because the driver applies them to every
// connection the pool opens, and foreign_keys and busy_timeout are settings
// of a connection, not of the file.
var sqliteOptions = url.Values{
	// Readers do not block the writer, nor the writer the readers.
	"_journal_mode": {"WAL"},
	// fsync the WAL at every commit. WAL's customary NORMAL may lose the
	// last transactions on power loss or a kernel crash, and the relay
	// answers WeChat "success" only once a push is committed, so a commit
	// must be on disk. (The driver would silently pick NORMAL with WAL.)
	"_synchronous": {"FULL"},
	// Tenant deletion cascades to everything the tenant owns.
	"_foreign_keys": {"on"},
	// Wait for a busy database instead of failing at once.
	"_busy_timeout": {"10000"},
	// Take the write lock at BEGIN. A deferred transaction that reads and
	// then writes must upgrade its lock, and two of them doing so at once
	// deadlock: one fails with SQLITE_BUSY no matter the busy_timeout.
	"_txlock": {"immediate"},
}

func openSQLite(ctx context.Context, path string) (*bun.DB, error) {
	return openSQLiteWith(ctx, path, "FULL")
}

// openSQLiteWith opens a pool whose commits use the given synchronous
// setting; see sqliteOptions.
func openSQLiteWith(ctx context.Context, path, synchronous string) (*bun.DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("store: create database directory: %w", err)
	}
	// Create the file ourselves so that it is private to its owner: it holds
	// sealed secrets and key hashes, and SQLite gives the -wal and -shm
	// files the mode of the database file.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: open database file: %w", err)
	}
	f.Close()

	// A file: URI, so that a path holding ? or # stays a path; the driver
	// reads its own options from the query and SQLite ignores them.
	escaped := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	opts := maps.Clone(sqliteOptions)
	opts.Set("_synchronous", synchronous)
	sqldb, err := sql.Open(sqliteDriver, "file:"+escaped+"?"+opts.Encode())
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db := bun.NewDB(sqldb, sqlitedialect.New())

	// PRAGMA journal_mode=WAL reports failure only by answering with the
	// mode it kept, as it does on file systems without shared memory.
	mode, err := journalMode(ctx, db)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		db.Close()
		return nil, fmt.Errorf("store: open %s: SQLite journal mode is %q, not WAL (network file system?)", path, mode)
	}
	return db, nil
}

// journalMode reads the journal mode of a new pool's first connection, which
// also switches a new database to WAL (the DSN asks for it). The switch
// needs the file to itself, and SQLite answers "database is locked" at once,
// without its busy handler, when other processes open the same new file at
// the same moment (replicas starting together): so try again for a while.
func journalMode(ctx context.Context, db *bun.DB) (string, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var mode string
		err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode)
		var se sqlite3.Error
		if err == nil || !errors.As(err, &se) || (se.Code != sqlite3.ErrBusy && se.Code != sqlite3.ErrLocked) || time.Now().After(deadline) {
			return mode, err
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func openPostgres(ctx context.Context, u *url.URL, maxConns int) (*bun.DB, error) {
	connector, err := pgConnector(u.String())
	if err != nil {
		return nil, err
	}
	sqldb := sql.OpenDB(connector)
	sqldb.SetMaxOpenConns(maxConns)
	sqldb.SetMaxIdleConns(maxConns)
	sqldb.SetConnMaxIdleTime(pgIdleFor)
	db := bun.NewDB(sqldb, pgdialect.New())
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: connect to %s: %w", u.Redacted(), err)
	}
	return db, nil
}

// pgConnector builds pgdriver's connector, which panics on a bad query
// parameter (an unknown sslmode, a malformed timeout) instead of returning
// an error. parseDSN has parsed the URL already, so what pgdriver objects to
// is a parameter, and its message does not repeat the password.
func pgConnector(dsn string) (c *pgdriver.Connector, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("store: postgres URL: %v", r)
		}
	}()
	// The application name shows in pg_stat_activity; the DSN may override it.
	return pgdriver.NewConnector(pgdriver.WithApplicationName("wxrelay"), pgdriver.WithDSN(dsn)), nil
}

// migrationBusy reports whether err from bun's Init or Lock means that
// another process got there first. On Postgres, CREATE TABLE IF NOT EXISTS
// is not atomic: two sessions may both find no table, and the slower one
// fails on the table's name (42P07) or its row type's (42710, or 23505 on
// the catalog's unique index) instead of doing nothing.
func migrationBusy(err error) bool {
	var pe pgdriver.Error
	return isUniqueViolation(err) ||
		(errors.As(err, &pe) && (pe.Field('C') == "42P07" || pe.Field('C') == "42710"))
}

// isUniqueViolation reports whether err is a unique constraint violation on
// either engine.
func isUniqueViolation(err error) bool {
	var le sqlite3.Error
	var pe pgdriver.Error
	return (errors.As(err, &le) && le.ExtendedCode == sqlite3.ErrConstraintUnique) ||
		(errors.As(err, &pe) && pe.Field('C') == "23505")
}
