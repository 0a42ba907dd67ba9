package store

import (
	"context"
	"database/sql"
	"sync"

	"github.com/uptrace/bun"
)

// preparedStmts holds the hot SQLite statements of every store, each
// prepared once per pool. bun writes values into a statement's text, so
// SQLite would compile the same query anew at every call; a *sql.Stmt with
// parameters is compiled once on each connection database/sql runs it on.
type preparedStmts struct {
	mu    sync.Mutex
	stmts map[preparedKey]*sql.Stmt
}

type preparedKey struct {
	pool  *sql.DB // not the *bun.DB, which AddQueryHook replaces
	query string
}

// prepared returns query prepared on pool, preparing it on first use. The
// statement outlives the call, so ctx's cancellation does not reach the
// prepare; a failed prepare is not remembered, and the next call tries
// again.
func (db *DB) prepared(ctx context.Context, pool *bun.DB, query string) (*sql.Stmt, error) {
	p := &db.stmts
	p.mu.Lock()
	defer p.mu.Unlock()
	k := preparedKey{pool.DB, query}
	if st := p.stmts[k]; st != nil {
		return st, nil
	}
	st, err := pool.DB.PrepareContext(context.WithoutCancel(ctx), query)
	if err != nil {
		return nil, err
	}
	if p.stmts == nil {
		p.stmts = map[preparedKey]*sql.Stmt{}
	}
	p.stmts[k] = st
	return st, nil
}

// closeAll closes the prepared statements, before their pools close.
func (p *preparedStmts) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, st := range p.stmts {
		st.Close()
		delete(p.stmts, k)
	}
}
