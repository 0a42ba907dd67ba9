package rejection_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay/rejection"
	"github.com/wxrelay/wxrelay/tenant"
)

// memStore records what flushes add, and fails while down is set.
type memStore struct {
	added [][]rejection.Count
	down  bool
}

func (m *memStore) AddPushRejections(_ context.Context, counts []rejection.Count) error {
	if m.down {
		return errors.New("database is down")
	}
	m.added = append(m.added, counts)
	return nil
}

func (m *memStore) PushRejections(context.Context, tenant.ID, time.Time) ([]rejection.Count, error) {
	return nil, nil
}

// TestTallyFlushesOneCountPerTenantAndCause: a flood of refusals is one
// count per tenant and cause, however many; a flush that fails keeps its
// counts for the next, merged with those noted meanwhile.
func TestTallyFlushesOneCountPerTenantAndCause(t *testing.T) {
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	var tally rejection.Tally
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				tally.Note("tn_a", rejection.BadSignature, at.Add(time.Duration(g*1000+i)*time.Millisecond))
			}
		})
	}
	wg.Wait()
	tally.Note("tn_b", rejection.StaleTimestamp, at)
	if n := tally.Pending(); n != 2 {
		t.Fatalf("Pending = %d after 8,001 refusals of 2 tenant-causes, want 2", n)
	}

	s := &memStore{down: true}
	if err := tally.Flush(context.Background(), s); err == nil {
		t.Fatal("Flush to a store that is down: no error")
	}
	tally.Note("tn_a", rejection.BadSignature, at.Add(-time.Second))
	s.down = false
	if err := tally.Flush(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if len(s.added) != 1 || len(s.added[0]) != 2 {
		t.Fatalf("flushes %+v, want one of 2 counts", s.added)
	}
	a := s.added[0][0]
	if a.Tenant != "tn_a" || a.N != 8001 || !a.First.Equal(at.Add(-time.Second)) || !a.Last.Equal(at.Add(7999*time.Millisecond)) {
		t.Errorf("tn_a's count = %+v, want 8001 from -1s to +7.999s (the failed flush's kept)", a)
	}
	if tally.Pending() != 0 {
		t.Errorf("counts left after a flush: %d", tally.Pending())
	}
	if err := tally.Flush(context.Background(), s); err != nil || len(s.added) != 1 {
		t.Errorf("an empty flush wrote: %v, %d", err, len(s.added))
	}
}

func TestCounted(t *testing.T) {
	for _, c := range rejection.Causes {
		if !rejection.Counted(string(c)) || c.Hint() == "" {
			t.Errorf("cause %s: counted %v, hint %q", c, rejection.Counted(string(c)), c.Hint())
		}
	}
	for _, outcome := range []string{"stored", "duplicate", "unknown_tenant", "disabled", "busy", "store_error", "bad_body"} {
		if rejection.Counted(outcome) {
			t.Errorf("outcome %s is counted as a refusal of the tenant's pushes", outcome)
		}
	}
}

// failingAfter stores the first ok calls' counts, then fails.
type failingAfter struct {
	memStore
	ok int
}

func (f *failingAfter) AddPushRejections(ctx context.Context, counts []rejection.Count) error {
	if f.ok == 0 {
		return errors.New("database is down")
	}
	f.ok--
	return f.memStore.AddPushRejections(ctx, counts)
}

// TestTallyFlushesInChunks: a flush of many tenants' counts is stored in
// chunks; when a chunk fails, the chunks stored before are not counted
// again at the next flush.
func TestTallyFlushesInChunks(t *testing.T) {
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	var tally rejection.Tally
	n := rejection.FlushChunk*2 + 10
	for i := range n {
		tally.Note(tenant.ID(fmt.Sprintf("tn_%05d", i)), rejection.BadSignature, at)
	}
	s := &failingAfter{ok: 1}
	if err := tally.Flush(context.Background(), s); err == nil {
		t.Fatal("a flush whose second chunk fails: no error")
	}
	if len(s.added) != 1 || len(s.added[0]) != rejection.FlushChunk || tally.Pending() != n-rejection.FlushChunk {
		t.Fatalf("after a failed second chunk: %d chunks stored, %d counts kept; want 1 of %d, and %d kept",
			len(s.added), tally.Pending(), rejection.FlushChunk, n-rejection.FlushChunk)
	}
	s.ok = 10
	if err := tally.Flush(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	stored := 0
	for _, chunk := range s.added {
		stored += len(chunk)
	}
	if stored != n || tally.Pending() != 0 {
		t.Errorf("%d counts stored in all, %d kept; want each of %d once", stored, tally.Pending(), n)
	}
}
