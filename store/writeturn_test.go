package store_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A write turn held long is logged with the method that held it, so that a
// stall of every writer (sends' reservations among them) names its cause;
// short turns are not.
func TestSlowWriteTurnIsLogged(t *testing.T) {
	var logs syncBuffer
	cfg := storetest.Config(t, storetest.SQLiteDSN(t))
	cfg.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	db, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	store.HoldWriteTurn(db, time.Millisecond)
	if strings.Contains(logs.String(), "write turn held long") {
		t.Fatalf("a 1 ms turn was logged:\n%s", logs.String())
	}
	store.HoldWriteTurn(db, 150*time.Millisecond)
	got := logs.String()
	if !strings.Contains(got, `"msg":"store: SQLite write turn held long; every other writer waited"`) ||
		!strings.Contains(got, `"by":"github.com/wxrelay/wxrelay/store.HoldWriteTurn"`) {
		t.Errorf("a 150 ms turn was not logged with its holder:\n%s", got)
	}
}
