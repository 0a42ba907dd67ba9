package store

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/wxrelay/wxrelay/tenant"
)

// tenantChannel is the PostgreSQL notification channel that carries the id
// of every tenant changed or deleted, to every replica.
const tenantChannel = "wxrelay_tenant_changed"

// Watch timing: a quiet channel is pinged every watchPing, and a ping
// not heard back within watchPing more means the listening connection is
// dead (a silent network drop raises no error), so the watch starts over.
// A replica therefore hears of a change within milliseconds, and after a
// connection loss forgets every tenant within 2*watchPing plus a reconnect.
const (
	watchPing  = 5 * time.Second
	watchRetry = time.Second
)

// notifyTenantChanged queues a notice of tenant id's change in tx. PostgreSQL
// sends it when tx commits and drops it if tx rolls back, so no replica
// hears of a change that did not happen. SQLite has no other process to
// tell: it does nothing there.
func (db *DB) notifyTenantChanged(ctx context.Context, tx bun.Tx, id tenant.ID) error {
	if db.checkpointer != nil {
		return nil
	}
	_, err := tx.ExecContext(ctx, "SELECT pg_notify(?, ?)", tenantChannel, string(id))
	return err
}

// WatchTenants tells this process of tenants changed by any replica, until
// ctx ends: forget(id) for each change, and forgetAll whenever notices may
// have been missed (when it starts listening, and again after the
// connection was lost). Pass a tenant.Cache's Forget and ForgetAll. On
// SQLite it returns at once: changes come only through this process.
func (db *DB) WatchTenants(ctx context.Context, forget func(tenant.ID), forgetAll func()) {
	if db.checkpointer != nil {
		return
	}
	for ctx.Err() == nil {
		err := db.watchTenants(ctx, forget, forgetAll)
		if ctx.Err() != nil {
			return
		}
		db.log.WarnContext(ctx, "tenant change notices lost; listening again", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(watchRetry):
		}
	}
}

// watchTenants listens on one connection until it fails.
func (db *DB) watchTenants(ctx context.Context, forget func(tenant.ID), forgetAll func()) error {
	ln := pgdriver.NewListener(db.bun)
	defer ln.Close()
	if err := ln.Listen(ctx, tenantChannel); err != nil {
		return err
	}
	// Listening from here on: whatever changed before is read anew.
	forgetAll()
	pinged := false
	for {
		_, id, err := ln.ReceiveTimeout(ctx, watchPing)
		var ne net.Error
		switch {
		case err == nil && id == "":
			pinged = false // our ping, heard: the connection works
		case err == nil:
			forget(tenant.ID(id))
		case errors.As(err, &ne) && ne.Timeout() && !pinged:
			// Quiet: make sure it is not because the line is dead.
			if err := pgdriver.Notify(ctx, db.bun, tenantChannel, ""); err != nil {
				return err
			}
			pinged = true
		case errors.As(err, &ne) && ne.Timeout():
			return errors.New("ping on the notice channel went unanswered")
		default:
			return err
		}
	}
}
