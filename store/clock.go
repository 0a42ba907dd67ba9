package store

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/uptrace/bun"
)

// Leases (deliveries, token refreshes, job locks), due times and token
// expiries are written by one process and compared by another. Compared on
// each replica's own clock, a replica whose clock runs 60 s fast sees every
// 30 s delivery lease as run out and takes over events that another
// replica is still delivering: duplicated deliveries. The database's clock
// is the one clock they all share, so the times the stores compare are
// read off it, as River does with now() in its SQL.
//
// Doing the arithmetic in SQL would need each statement written per
// engine, and would take away the tests' fixed times. Instead, each DB
// measures how far the database's clock is from this process's, as NTP
// does (the middle of a round trip against the time the database
// answered, the quickest of a few tries), and DB.Now adds that offset to
// the local clock. The error is at most half a round trip, milliseconds
// against leases of 30 s. The offset is measured again every
// clockResync, so that a clock stepped by NTP, on either side, is
// followed.
//
// On SQLite the database's clock is this host's (the file is on a local
// disk, SQLite's own rule), so the offset is near zero; it is measured the
// same way, which lets one test play a skewed replica on either engine.

// clockResync is how often the offset to the database's clock is measured.
const clockResync = 30 * time.Second

// clockSkewWarning is the offset past which the relay logs a warning: the
// machine's clock is wrong, which the leases no longer mind but an
// operator reading logs side by side would.
const clockSkewWarning = time.Second

// dbClock is this process's estimate of the database's clock.
type dbClock struct {
	local  func() time.Time
	offset atomic.Int64 // nanoseconds the database is ahead of local
	gauge  prometheus.Gauge
	stop   chan struct{}
	done   chan struct{}
	warned bool // the last report was a warning
}

func newDBClock(local func() time.Time) *dbClock {
	if local == nil {
		local = time.Now
	}
	return &dbClock{local: local, stop: make(chan struct{}), done: make(chan struct{}),
		gauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wxrelay_store_clock_offset_seconds",
			Help: "How far the database's clock is ahead of this process's (negative: behind). Leases and due times are read off the database's clock.",
		})}
}

// Now returns the time on the database's clock, as this process estimates
// it. Every time that another process compares (leases, due times, token
// expiries) is taken from it.
func (db *DB) Now() time.Time { return db.clock.now() }

// ClockOffset returns how far the database's clock is ahead of this
// process's, as last measured.
func (db *DB) ClockOffset() time.Duration { return time.Duration(db.clock.offset.Load()) }

func (c *dbClock) now() time.Time {
	return c.local().Add(time.Duration(c.offset.Load())).UTC()
}

// sync measures the offset and keeps it. It tries a few times and keeps
// the quickest round trip, whose middle is the closest to when the
// database read its clock.
func (c *dbClock) sync(ctx context.Context, read func(context.Context) (time.Time, error)) error {
	best, bestRTT := time.Duration(0), time.Duration(-1)
	for range 3 {
		sent := c.local()
		at, err := read(ctx)
		back := c.local()
		if err != nil {
			return fmt.Errorf("store: read the database's clock: %w", err)
		}
		rtt := back.Sub(sent)
		if bestRTT < 0 || rtt < bestRTT {
			best, bestRTT = at.Sub(sent.Add(rtt/2)), rtt
		}
	}
	c.offset.Store(int64(best))
	c.gauge.Set(best.Seconds())
	return nil
}

// follow measures the offset every clockResync until close, reporting
// each measure.
func (c *dbClock) follow(read func(context.Context) (time.Time, error), log *slog.Logger) {
	defer close(c.done)
	t := time.NewTicker(clockResync)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := c.sync(ctx, read); err != nil {
			// The last offset stands: clocks drift by milliseconds a day.
			log.Warn("store: could not measure the database's clock; keeping the last offset", "err", err)
		}
		cancel()
		c.report(log)
	}
}

// report logs when the offset goes past clockSkewWarning (once, until it
// comes back). Only Open and follow call it, one after the other.
func (c *dbClock) report(log *slog.Logger) {
	off := time.Duration(c.offset.Load())
	switch far := off.Abs() > clockSkewWarning; {
	case far && !c.warned:
		log.Warn("store: this machine's clock is off the database's; leases and due times use the database's, but check NTP", "database_ahead_by", off.Round(time.Millisecond).String())
		c.warned = true
	case !far && c.warned:
		log.Info("store: this machine's clock agrees with the database's again", "database_ahead_by", off.Round(time.Millisecond).String())
		c.warned = false
	}
}

func (c *dbClock) close() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.done
}

// databaseTime returns a function that reads the database's clock.
func databaseTime(bdb *bun.DB, dialect string) func(context.Context) (time.Time, error) {
	if dialect == "pg" {
		return func(ctx context.Context) (t time.Time, err error) {
			// clock_timestamp, not now(): now() is the transaction's start.
			err = bdb.QueryRowContext(ctx, `SELECT clock_timestamp()`).Scan(&t)
			return t, err
		}
	}
	return func(ctx context.Context) (time.Time, error) {
		// SQLite reads the host's clock through its VFS, to the millisecond.
		var s string
		if err := bdb.QueryRowContext(ctx, `SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')`).Scan(&s); err != nil {
			return time.Time{}, err
		}
		return time.ParseInLocation("2006-01-02 15:04:05.000", s, time.UTC)
	}
}
