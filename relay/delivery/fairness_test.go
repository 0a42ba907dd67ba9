package delivery_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay/delivery"
	"github.com/wxrelay/wxrelay/tenant"
)

// latencyReceiver answers 204 at once and notes when each event arrived.
type latencyReceiver struct {
	mu      sync.Mutex
	arrived map[string]time.Time // by webhook-id
}

func (l *latencyReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	l.arrived[r.Header.Get("webhook-id")] = time.Now()
	l.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// deliverTimed stores n events of tid one every gap and returns each one's
// time from its store to its arrival at r.
func (h *harness) deliverTimed(tid tenant.ID, r *latencyReceiver, n int, gap time.Duration) []time.Duration {
	h.t.Helper()
	stored := map[string]time.Time{}
	for i := range n {
		id := h.event(tid, fmt.Sprint("o", i), h.clock.Now())
		stored[string(id)] = time.Now()
		time.Sleep(gap)
	}
	eventually(h.t, fmt.Sprintf("%d deliveries", n), func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		for id := range stored {
			if _, ok := r.arrived[id]; !ok {
				return false
			}
		}
		return true
	})
	var lat []time.Duration
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, at := range stored {
		lat = append(lat, r.arrived[id].Sub(at))
	}
	slices.Sort(lat)
	return lat
}

func p99(lat []time.Duration) time.Duration { return lat[(len(lat)*99)/100] }

// TestSlowWebhooksDoNotDelayOthers: ten tenants whose webhooks answer
// after 14 s (no breaker opens: they answer) with 40 events each, and a
// healthy tenant: its events' time from store to webhook stays near what
// it is unloaded. Before the slow lane, the ten held every worker (16
// each of 64) and the healthy tenant waited for theirs: 9 to 12.5 s.
func TestSlowWebhooksDoNotDelayOthers(t *testing.T) {
	h := newHarness(t, delivery.Options{Sender: delivery.NewSender(delivery.SenderOptions{AllowPrivate: true, Timeout: 20 * time.Second})})
	healthy := &latencyReceiver{arrived: map[string]time.Time{}}
	hs := httptest.NewServer(healthy)
	defer hs.Close()
	ht, _ := h.tenant(hs.URL, false)
	unloaded := h.deliverTimed(ht.ID, healthy, 50, 5*time.Millisecond)

	slowDone := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(14 * time.Second):
		case <-slowDone:
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer slow.Close()
	defer close(slowDone)
	for range 10 {
		st, _ := h.tenant(slow.URL, false)
		for i := range 40 {
			h.event(st.ID, fmt.Sprint("o", i), h.clock.Now())
		}
	}
	time.Sleep(200 * time.Millisecond) // the slow webhooks hold their attempts
	loaded := h.deliverTimed(ht.ID, healthy, 50, 5*time.Millisecond)

	// The 10× the issue asks for, with a floor for a noisy machine: the
	// failure this guards against is seconds.
	bound := max(10*p99(unloaded), 250*time.Millisecond)
	t.Logf("healthy tenant's p99 store to webhook: %v unloaded, %v beside ten slow tenants (bound %v)", p99(unloaded), p99(loaded), bound)
	if p99(loaded) > bound {
		t.Errorf("p99 %v beside slow tenants, over %v (10× the unloaded %v)", p99(loaded), bound, p99(unloaded))
	}
}

// TestBreakersAreTheTenantsOwn: two tenants' webhooks on one host, one
// failing with 500: its breaker opens and its events wait, while the other
// tenant on the same host keeps being delivered at once.
func TestBreakersAreTheTenantsOwn(t *testing.T) {
	h := newHarness(t, delivery.Options{Breakers: delivery.NewBreakers(delivery.BreakerOptions{Threshold: 3, Cooldown: time.Hour})})
	host := &latencyReceiver{arrived: map[string]time.Time{}}
	var mu sync.Mutex
	failed := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/broken" {
			mu.Lock()
			failed++
			mu.Unlock()
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		host.ServeHTTP(w, r)
	}))
	defer srv.Close()
	broken, _ := h.tenant(srv.URL+"/broken", false)
	good, _ := h.tenant(srv.URL+"/good", false)
	for i := range 40 {
		h.event(broken.ID, fmt.Sprint("o", i), h.clock.Now())
	}
	eventually(t, "the broken tenant's breaker to open", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return failed >= 3
	})
	time.Sleep(100 * time.Millisecond)
	// What holds the broken tenant's events is said (an event's held).
	if until := h.disp.HeldUntil(broken.ID, srv.URL+"/broken"); until.Before(h.clock.Now().Add(30 * time.Minute)) {
		t.Errorf("HeldUntil of the broken webhook = %v, want about an hour on", until)
	}
	if until := h.disp.HeldUntil(good.ID, srv.URL+"/good"); !until.IsZero() {
		t.Errorf("HeldUntil of the good webhook = %v, want zero", until)
	}
	if lat := h.deliverTimed(good.ID, host, 10, 0); p99(lat) > 5*time.Second {
		t.Errorf("the healthy tenant on the same host waited %v", p99(lat))
	}
	mu.Lock()
	defer mu.Unlock()
	// Attempts already under way when the third failure is reported still
	// go (its share of workers, 16): the other events wait for the
	// cooldown.
	if failed > 20 {
		t.Errorf("the broken tenant's webhook got %d attempts of 40; its breaker should have opened after 3", failed)
	}
}
