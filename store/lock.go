package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/go-co-op/gocron/v2"
)

// ErrJobLocked means that another process holds a job's lock: the job is
// running there, or ran there recently enough to hold it still.
var ErrJobLocked = errors.New("job is locked by another process")

// JobLocker is gocron's distributed Locker (gocron.WithDistributedLocker)
// on the job_locks table, so that replicas on one database take turns at
// the scheduled jobs instead of each running all of them.
//
// A lock is a lease: a row naming its owner and when it ends, taken by one
// atomic upsert and renewed while the job runs. A holder killed mid-run
// (SIGKILL, a lost machine) stops renewing, and the lock frees itself when
// its lease runs out, at most Lease later; nothing is left to clean up by
// hand. A session lock such as pg_try_advisory_lock would free itself too,
// but it would pin a connection per job, exist on PostgreSQL alone, and be
// gone the moment a run ends, which rules out Hold.
//
// On SQLite, which one process uses, the same table works and costs a
// write per run; it also keeps processes apart that share one file.
type JobLocker struct {
	db    *DB
	owner string
	lease time.Duration
	hold  map[string]time.Duration
	log   *slog.Logger
	now   func() time.Time
}

var _ gocron.Locker = (*JobLocker)(nil)

// JobLockerOptions configures a JobLocker. The zero value works.
type JobLockerOptions struct {
	// Owner names this process in job_locks; empty means host name,
	// process id and a random suffix, unique to this locker.
	Owner string
	// Lease is how long a lock outlives its holder's last renewal: while
	// a job runs, the locker renews it every Lease/3. It bounds how long
	// a job stays stalled after its holder dies. Zero means 30 seconds.
	Lease time.Duration
	// Hold gives, per job name, how long after a run began its lock stays
	// with the process that ran it, which may take it again before then.
	// A job scheduled every d on each of several replicas, held d, runs
	// about once per d among them all rather than once per d on each,
	// mostly on the same replica. A job not named here is free for any
	// replica the moment its run ends.
	Hold map[string]time.Duration
	// Logger receives failed locks, lost leases and, at debug level, runs
	// skipped for another replica's lock; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means the database's (DB.Now), which every
	// process shares: a replica whose own clock is off neither takes a
	// lock before it ran out nor holds one past its end.
	Now func() time.Time
}

// NewJobLocker returns a JobLocker on db.
func NewJobLocker(db *DB, opts JobLockerOptions) *JobLocker {
	l := &JobLocker{db: db, owner: opts.Owner, lease: opts.Lease, hold: opts.Hold, log: opts.Logger, now: opts.Now}
	if l.owner == "" {
		l.owner = processOwner()
	}
	if l.lease <= 0 {
		l.lease = 30 * time.Second
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.now == nil {
		l.now = db.Now
	}
	return l
}

// processOwner names this process for leases: readable in the table, and
// unique even for two lockers in one process.
func processOwner() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b))
}

// Owner returns the name this locker's locks carry.
func (l *JobLocker) Owner() string { return l.owner }

// Lock takes the lock of the job named key if it is free, expired, or this
// owner's already, and renews it until the returned Lock is unlocked. It
// returns an error wrapping ErrJobLocked if another owner holds it; gocron
// then skips this run.
func (l *JobLocker) Lock(ctx context.Context, key string) (gocron.Lock, error) {
	start := l.now().UTC()
	ok, err := l.acquire(ctx, key, start, start.Add(l.lease))
	if err != nil {
		l.log.WarnContext(ctx, "scheduled job skipped: its lock failed", "job", key, "err", err)
		return nil, fmt.Errorf("lock job %s: %w", key, err)
	}
	if !ok {
		l.log.DebugContext(ctx, "scheduled job skipped: another replica holds its lock", "job", key)
		return nil, fmt.Errorf("lock job %s: %w", key, ErrJobLocked)
	}
	k := &jobLock{l: l, name: key, start: start, stop: make(chan struct{}), done: make(chan struct{})}
	go k.renew()
	return k, nil
}

// acquire makes l's owner the holder of name's lock until until, if it is
// free at now or l's already, and reports whether it did. It is one upsert,
// which both engines run atomically: no row affected means another owner
// holds the lock. (On PostgreSQL a concurrent insert of the same name waits
// for the first to commit and then takes the DO UPDATE path.)
//
// Job locks commit relaxed (DB.relaxed): losing the newest of them in a
// crash loses a lease whose holder died with it. A durable commit would
// fsync every minute (the token scan's turn) while holding SQLite's single
// write lock, which every send's reply-window reservation also takes: on a
// shared disk whose fsync stalls, every send waits out the stall
// (docs/benchmarks.md, "Sending").
func (l *JobLocker) acquire(ctx context.Context, name string, now, until time.Time) (bool, error) {
	defer l.db.serialize()()
	res, err := l.db.relaxed.ExecContext(ctx, `INSERT INTO job_locks (name, owner, locked_until) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, locked_until = excluded.locked_until
WHERE job_locks.owner = excluded.owner OR job_locks.locked_until <= ?`,
		name, l.owner, until, now)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// extend moves the end of l's lock on name to until, and reports whether l
// still held it.
func (l *JobLocker) extend(ctx context.Context, name string, until time.Time) (bool, error) {
	defer l.db.serialize()()
	res, err := l.db.relaxed.ExecContext(ctx, `UPDATE job_locks SET locked_until = ? WHERE name = ? AND owner = ?`,
		until.UTC(), name, l.owner)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// Release frees every lock l's owner holds, holds included, so that at a
// graceful stop another replica takes the jobs over at once instead of
// after their holds. Call it once the scheduler has stopped.
func (l *JobLocker) Release(ctx context.Context) error {
	defer l.db.serialize()()
	_, err := l.db.relaxed.ExecContext(ctx, `UPDATE job_locks SET locked_until = ? WHERE owner = ?`, l.now().UTC(), l.owner)
	if err != nil {
		return fmt.Errorf("release job locks: %w", err)
	}
	return nil
}

// jobLock is one held lock, renewed until Unlock.
type jobLock struct {
	l     *JobLocker
	name  string
	start time.Time
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
	err   error
}

// renew extends the lease every Lease/3 until stopped. A renewal that
// finds the lock gone means the run outlasted a lease it could not renew
// (the database was unreachable): another process may now run the job as
// well, which the jobs tolerate, since each is safe to run twice.
func (k *jobLock) renew() {
	defer close(k.done)
	t := time.NewTicker(k.l.lease / 3)
	defer t.Stop()
	for {
		select {
		case <-k.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), k.l.lease/3)
		held, err := k.l.extend(ctx, k.name, k.l.now().Add(k.l.lease))
		cancel()
		switch {
		case err != nil:
			k.l.log.Warn("renew job lock", "job", k.name, "err", err)
		case !held:
			k.l.log.Warn("lost the lock of a running job; another replica may run it too", "job", k.name)
			return
		}
	}
}

// Unlock stops the renewals and ends the lock, or shortens it to its hold.
// gocron calls it with the job's context, which is cancelled at shutdown;
// the lock is ended regardless.
func (k *jobLock) Unlock(ctx context.Context) error {
	k.once.Do(func() {
		close(k.stop)
		<-k.done
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		until := k.l.now().UTC()
		if h := k.start.Add(k.l.hold[k.name]); h.After(until) {
			until = h
		}
		if _, err := k.l.extend(ctx, k.name, until); err != nil {
			k.err = fmt.Errorf("unlock job %s: %w", k.name, err)
			// The lease ends by itself; the log says why the job waits.
			k.l.log.Warn("unlock job", "job", k.name, "err", err)
		}
	})
	return k.err
}
