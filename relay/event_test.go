package relay_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay"
)

func TestNewEventIDSortsByTime(t *testing.T) {
	base := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	var ids []string
	seen := map[relay.EventID]bool{}
	for i := range 1000 {
		id := relay.NewEventID(base.Add(time.Duration(i) * time.Millisecond))
		if len(id) != len("evt_")+26 || !strings.HasPrefix(string(id), "evt_") {
			t.Fatalf("id %q is not evt_ + 26 characters", id)
		}
		if seen[id] {
			t.Fatalf("id %q made twice", id)
		}
		seen[id] = true
		ids = append(ids, string(id))
	}
	if !slices.IsSorted(ids) {
		t.Errorf("ids made a millisecond apart do not sort by time")
	}
	// Within one millisecond the random part keeps them apart.
	a, b := relay.NewEventID(base), relay.NewEventID(base)
	if a == b || a[:14] != b[:14] {
		t.Errorf("same-millisecond ids %s %s: want the same time prefix and different tails", a, b)
	}
}
