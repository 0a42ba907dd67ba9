package store_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
	"github.com/wxrelay/wxrelay/tenant"
)

func newComponent(id, appid string) *tenant.Component {
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	return &tenant.Component{
		ID: tenant.ComponentID(id), DisplayName: "Agency", AppID: appid,
		Secrets:    tenant.ComponentSecrets{Secret: "c0c0c0c0c0c0c0c0c0c0c0c0c0c00123", Token: "CompToken1", EncodingAESKey: "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"},
		CreateTime: at, UpdateTime: at, Version: 1,
	}
}

// Components round-trip with their secrets sealed at rest, keep one row
// per appid whatever its case, page in id order, change only at the
// version read, and keep the latest ticket whatever order tickets are
// saved in.
func TestComponentStore(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := store.NewComponentStore(db)
		a := newComponent("cp_aaaaaaaaaaaaaaaa", "wx134c8103faa5a59e")
		if err := s.CreateComponent(ctx, a); err != nil {
			t.Fatal(err)
		}
		dup := newComponent("cp_bbbbbbbbbbbbbbbb", "WX134C8103FAA5A59E")
		var ce *tenant.ConflictError
		if err := s.CreateComponent(ctx, dup); !errors.As(err, &ce) || ce.AppID == "" {
			t.Errorf("the same appid in capitals: %v, want a conflict naming it", err)
		}
		got, err := s.FindComponent(ctx, a.ID)
		if err != nil || got.Secrets != a.Secrets || got.AppID != a.AppID || !got.Ticket.ReceiveTime.IsZero() {
			t.Fatalf("FindComponent = %+v, %v", got, err)
		}
		var raw []byte
		db.Bun().NewSelect().Table("components").Column("sealed_secrets").Where("id = ?", string(a.ID)).Scan(ctx, &raw)
		if bytes.Contains(raw, []byte("c0c0c0c0c0c0c0c0c0c0c0c0c0c00123")) || bytes.Contains(raw, []byte("CompToken1")) {
			t.Error("the component's secrets are stored in the clear")
		}
		if _, err := s.FindComponent(ctx, "cp_cccccccccccccccc"); !errors.Is(err, tenant.ErrComponentNotFound) {
			t.Errorf("FindComponent(unknown) = %v", err)
		}

		// Tickets: the later one stays.
		t1 := tenant.Ticket{Value: "ticket@@@one", ReceiveTime: time.Date(2026, 12, 5, 10, 10, 0, 0, time.UTC)}
		t0 := tenant.Ticket{Value: "ticket@@@zero", ReceiveTime: t1.ReceiveTime.Add(-10 * time.Minute)}
		for _, tk := range []tenant.Ticket{t1, t0} {
			if err := s.SaveTicket(ctx, a.ID, tk); err != nil {
				t.Fatal(err)
			}
		}
		if got, _ := s.FindComponent(ctx, a.ID); got.Ticket.Value != t1.Value || !got.Ticket.ReceiveTime.Equal(t1.ReceiveTime) {
			t.Errorf("ticket after saving a later then an earlier one = %+v, want %+v", got.Ticket, t1)
		}
		db.Bun().NewSelect().Table("components").Column("sealed_ticket").Where("id = ?", string(a.ID)).Scan(ctx, &raw)
		if bytes.Contains(raw, []byte("ticket@@@one")) {
			t.Error("the ticket is stored in the clear")
		}
		if err := s.SaveTicket(ctx, "cp_cccccccccccccccc", t1); !errors.Is(err, tenant.ErrComponentNotFound) {
			t.Errorf("SaveTicket(unknown) = %v", err)
		}

		// An update at the version read; a stale one is a conflict, and
		// the ticket is untouched by either.
		got.DisplayName = "Renamed"
		stale := *got
		if err := s.UpdateComponent(ctx, got); err != nil || got.Version != 2 {
			t.Fatalf("UpdateComponent = %v, version %d", err, got.Version)
		}
		stale.DisplayName = "Lost"
		if err := s.UpdateComponent(ctx, &stale); !errors.Is(err, tenant.ErrConflict) {
			t.Errorf("a stale update: %v, want a conflict", err)
		}
		if got, _ := s.FindComponent(ctx, a.ID); got.DisplayName != "Renamed" || got.Ticket.Value != t1.Value {
			t.Errorf("after the updates: %q, ticket %q", got.DisplayName, got.Ticket.Value)
		}

		dup.AppID = "wx00000000000000c1"
		if err := s.CreateComponent(ctx, dup); err != nil {
			t.Fatal(err)
		}
		page, err := s.FindComponents(ctx, "", 1)
		if err != nil || len(page) != 1 || page[0].ID != a.ID {
			t.Fatalf("first page = %v, %v", page, err)
		}
		page, _ = s.FindComponents(ctx, page[0].ID, 10)
		if len(page) != 1 || page[0].ID != dup.ID {
			t.Errorf("second page = %v", page)
		}

		if err := s.DeleteComponent(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteComponent(ctx, a.ID); !errors.Is(err, tenant.ErrComponentNotFound) {
			t.Errorf("deleting it again: %v", err)
		}
	})
}
