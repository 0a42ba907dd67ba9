package store

import (
	"context"
	"database/sql"
	"log/slog"
	"sync"
	"time"

	"github.com/mattn/go-sqlite3"
)

// sqliteDriver is mattn/go-sqlite3 with one connection setting more than
// its DSN can express: a far-off automatic checkpoint.
//
// By default SQLite checkpoints when the WAL passes 1,000 pages, and the
// connection whose commit crossed that line does the checkpoint before its
// commit returns: copying the WAL into the database and fsyncing it. Under a
// steady stream of pushes that is the single ingest writer, every few
// thousand events, and every push waiting on it waits for the checkpoint
// too. Instead a background checkpointer (checkpointer below) runs PASSIVE
// checkpoints on its own connection, which never block the writer; the
// automatic one stays as a backstop at 40 MiB in case it falls behind.
const sqliteDriver = "sqlite3_wxrelay"

func init() {
	sql.Register(sqliteDriver, &sqlite3.SQLiteDriver{
		ConnectHook: func(c *sqlite3.SQLiteConn) error {
			_, err := c.Exec("PRAGMA wal_autocheckpoint = 10000", nil)
			return err
		},
	})
}

// checkpointInterval is how often the background checkpointer runs.
const checkpointInterval = 250 * time.Millisecond

// checkpointer runs PASSIVE WAL checkpoints until stopped. A PASSIVE
// checkpoint copies what it can without waiting for readers or writers;
// once it has caught up, the next writer starts the WAL over from its
// beginning, so the WAL stays small.
type checkpointer struct {
	stop chan struct{}
	once sync.Once
	done sync.WaitGroup
}

func startCheckpointer(db *sql.DB, log *slog.Logger) *checkpointer {
	c := &checkpointer{stop: make(chan struct{})}
	c.done.Add(1)
	go func() {
		defer c.done.Done()
		t := time.NewTicker(checkpointInterval)
		defer t.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				if _, err := db.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)"); err != nil {
					log.Warn("store: WAL checkpoint", "err", err)
				}
				cancel()
			}
		}
	}()
	return c
}

func (c *checkpointer) close() {
	if c == nil {
		return
	}
	// DB.Close may be called more than once.
	c.once.Do(func() { close(c.stop) })
	c.done.Wait()
}
