package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/uptrace/bun"
)

// appendPerRow, when set, makes run insert one event per statement: the
// variant measured against the multi-row one. TEMPORARY.
var appendPerRow bool

func (b *appendBatch) runPerRow(ctx context.Context, tx bun.Tx) error {
	for j, r := range b.rows {
		b.stored[j], b.dup[j] = "", false
		var ids []string
		_, err := tx.NewInsert().Model(r).
			On("CONFLICT (tenant_id, dedup_key) DO NOTHING").
			Returning("id").
			Exec(ctx, &ids)
		if err != nil {
			return fmt.Errorf("insert event: %w", err)
		}
		if len(ids) == 1 {
			b.stored[j] = ids[0]
			continue
		}
		var id string
		err = tx.NewSelect().Table("events").Column("id").
			Where("tenant_id = ?", r.TenantID).Where("dedup_key = ?", r.DedupKey).
			Scan(ctx, &id)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("original gone")
		} else if err != nil {
			return err
		}
		b.stored[j], b.dup[j] = id, true
	}
	return nil
}
