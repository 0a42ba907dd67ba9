package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
)

func TestSessionStore(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := store.NewSessionStore(db)
		now := time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)
		id := []byte("0123456789abcdef0123456789abcdef")
		if err := s.CreateSession(ctx, id, "admin.token.value", now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		tok, exp, ok, err := s.FindSession(ctx, id, now)
		if err != nil || !ok || tok != "admin.token.value" || !exp.Equal(now.Add(time.Hour)) {
			t.Fatalf("FindSession = %q, %v, %v, %v", tok, exp, ok, err)
		}
		var sealed []byte
		if err := db.Bun().NewSelect().Table("console_sessions").Column("sealed_token").Scan(ctx, &sealed); err != nil {
			t.Fatal(err)
		}
		if string(sealed) == "admin.token.value" || len(sealed) == 0 {
			t.Error("the token is stored in the clear")
		}
		if _, _, ok, _ := s.FindSession(ctx, id, now.Add(2*time.Hour)); ok {
			t.Error("an expired session was found")
		}
		if err := s.DeleteSession(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, _, ok, _ := s.FindSession(ctx, id, now); ok {
			t.Error("a deleted session was found")
		}
		s.CreateSession(ctx, []byte("another"), "t", now.Add(time.Minute))
		if n, err := s.PruneSessions(ctx, now.Add(time.Hour)); err != nil || n != 1 {
			t.Errorf("PruneSessions = %d, %v; want 1", n, err)
		}
	})
}
