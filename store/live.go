package store

import (
	"context"

	"github.com/uptrace/bun"
)

// appendForLiveTenants runs insert in one relaxed transaction, with the
// set of tenants among ids that exist, so that it leaves out the rows of
// tenants deleted meanwhile: records of the past (call records, counts of
// refused pushes) are dropped with their tenant, not an error. Twice: on
// PostgreSQL a tenant deleted between the look and the insert fails the
// insert's foreign key, and the second round leaves it out. It commits
// relaxed: a record lost in a crash loses an account, not state.
func (db *DB) appendForLiveTenants(ctx context.Context, ids []string, insert func(ctx context.Context, tx bun.Tx, live map[string]bool) error) error {
	defer db.serialize()()
	var err error
	for range 2 {
		err = db.relaxed.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			var found []string
			if err := tx.NewSelect().Table("tenants").Column("id").Where("id IN (?)", bun.List(ids)).Scan(ctx, &found); err != nil {
				return err
			}
			live := make(map[string]bool, len(found))
			for _, id := range found {
				live[id] = true
			}
			return insert(ctx, tx, live)
		})
		if err == nil || !isForeignKeyViolation(err) {
			break
		}
	}
	return err
}

// distinct is the tenant ids of items, each once, in their first order.
func distinct[T any](items []T, id func(T) string) []string {
	seen := make(map[string]bool)
	var out []string
	for _, it := range items {
		if k := id(it); !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}
