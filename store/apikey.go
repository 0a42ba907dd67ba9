package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/wxrelay/wxrelay/tenant"
)

// sqliteKeyHash is APIKeyHash's query on SQLite, with a parameter: bun
// writes values into a statement's text, so SQLite would compile it anew
// at every call.
const sqliteKeyHash = `SELECT api_key_hash FROM tenants AS t WHERE id = ? AND ` + notMarked

var _ tenant.KeyHashStore = (*TenantStore)(nil)

// APIKeyHash returns the hash of tenant id's current API key id, read
// alone: every authenticated call with an API key asks for it, so that a
// rotated key or a deleted tenant is refused at once, and reading and
// opening the whole tenant for it was a quarter of the relay's CPU per send
// (docs/benchmarks.md, "Sending"). tenant.ErrNotFound.
func (s *TenantStore) APIKeyHash(ctx context.Context, id tenant.ID) ([]byte, error) {
	var h []byte
	var err error
	if s.db.Dialect() == "pg" {
		err = s.db.bun.NewSelect().TableExpr("tenants AS t").Column("api_key_hash").Where("id = ?", string(id)).Where(notMarked).Scan(ctx, &h)
	} else {
		stmt, perr := s.db.prepared(ctx, s.db.bun, sqliteKeyHash)
		if perr != nil {
			return nil, fmt.Errorf("api key of tenant %s: prepare: %w", id, perr)
		}
		err = stmt.QueryRowContext(ctx, string(id)).Scan(&h)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("api key of tenant %s: %w", id, tenant.ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("api key of tenant %s: %w", id, err)
	}
	return h, nil
}
