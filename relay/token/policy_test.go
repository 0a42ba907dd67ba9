package token

import (
	"errors"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/tenant"
)

// policyNow is 10:00 in Beijing.
var policyNow = time.Date(2026, 12, 5, 2, 0, 0, 0, time.UTC)

func TestSatisfies(t *testing.T) {
	tn := Subject{AppID: "wx00000000000000a1", Endpoint: tenant.TokenStable}
	good := func() *State {
		return &State{Token: "tok", AppID: tn.AppID, Endpoint: tenant.TokenStable,
			ExpiresAt: policyNow.Add(time.Hour), DueAt: policyNow.Add(time.Minute)}
	}
	for _, tt := range []struct {
		name string
		st   func() *State
		r    request
		want bool
	}{
		{"a good token", good, request{}, true},
		{"none", func() *State { return nil }, request{}, false},
		{"another app's", func() *State { s := good(); s.AppID = "wx00000000000000b2"; return s }, request{}, false},
		{"another endpoint's", func() *State { s := good(); s.Endpoint = tenant.TokenClassic; return s }, request{}, false},
		{"within the skew of expiry", func() *State { s := good(); s.ExpiresAt = policyNow.Add(expirySkew - time.Second); return s }, request{}, false},
		{"the one a call refused", good, request{failed: "tok"}, false},
		{"another than the refused", good, request{failed: "old"}, true},
		{"due, for a scheduled run", func() *State { s := good(); s.DueAt = policyNow; return s }, request{due: true}, false},
		{"due, for a caller", func() *State { s := good(); s.DueAt = policyNow; return s }, request{}, true},
	} {
		if got := satisfies(tt.st(), tn, tt.r, policyNow); got != tt.want {
			t.Errorf("%s: satisfies = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	for _, tt := range []struct {
		name          string
		code, fails   int
		least, atMost time.Duration
	}{
		{"no answer, first", 0, 1, 5 * time.Second, 5500 * time.Millisecond},
		{"no answer, doubling", 0, 3, 20 * time.Second, 22 * time.Second},
		{"no answer, capped", 0, 30, 5 * time.Minute, 5*time.Minute + 30*time.Second},
		{"system error", wechat.CodeSystemError, 2, 10 * time.Second, 11 * time.Second},
		{"minute quota", wechat.CodeMinuteQuota, 1, time.Minute, 66 * time.Second},
		{"minute quota, capped", wechat.CodeMinuteQuota, 9, 10 * time.Minute, 11 * time.Minute},
		{"wrong secret", 40125, 1, time.Minute, 66 * time.Second},
		{"wrong secret, capped", 40125, 9, 30 * time.Minute, 33 * time.Minute},
		// 10:00 in Beijing: the daily quota returns at midnight, 14 h on.
		{"daily quota", wechat.CodeDailyQuota, 1, 14 * time.Hour, 14*time.Hour + 5*time.Minute},
	} {
		if got := backoff(tt.code, tt.fails, policyNow); got < tt.least || got > tt.atMost {
			t.Errorf("%s: backoff(%d, %d) = %v, want %v to %v", tt.name, tt.code, tt.fails, got, tt.least, tt.atMost)
		}
	}
}

func TestNextDue(t *testing.T) {
	exp := policyNow.Add(2 * time.Hour)
	for range 100 { // jitter: every draw within its window
		if d := nextDue(tenant.TokenStable, 10*time.Minute, 5*time.Minute, exp, policyNow); d.Before(exp.Add(-stableLeadMax)) || d.After(exp.Add(-stableLeadMin)) {
			t.Fatalf("stable token due %v before expiry, want %v to %v", exp.Sub(d), stableLeadMin, stableLeadMax)
		}
		if d := nextDue(tenant.TokenClassic, 10*time.Minute, 5*time.Minute, exp, policyNow); d.Before(exp.Add(-15*time.Minute)) || d.After(exp.Add(-10*time.Minute)) {
			t.Fatalf("classic token due %v before expiry, want 10 to 15 min", exp.Sub(d))
		}
	}
	// Never sooner than minDue after the last fetch, whatever the token's life.
	if d := nextDue(tenant.TokenStable, 0, 0, policyNow.Add(time.Minute), policyNow); d.Before(policyNow.Add(minDue)) {
		t.Errorf("a short-lived token due at %v, before now + %v", d, minDue)
	}
}

func TestForceAllowed(t *testing.T) {
	today := policyNow.In(beijing).Format(time.DateOnly)
	for _, tt := range []struct {
		name      string
		st        State
		ok        bool
		wantCount int // ForcedCount after the call
	}{
		{"never forced", State{}, true, 0},
		{"under the daily budget", State{ForcedDay: today, ForcedCount: 19, ForcedAt: policyNow.Add(-time.Minute)}, true, 19},
		{"the daily budget spent", State{ForcedDay: today, ForcedCount: forceDailyMax, ForcedAt: policyNow.Add(-time.Hour)}, false, forceDailyMax},
		{"a new Beijing day", State{ForcedDay: "2026-12-04", ForcedCount: forceDailyMax, ForcedAt: policyNow.Add(-time.Hour)}, true, 0},
		{"too soon after the last", State{ForcedDay: today, ForcedCount: 1, ForcedAt: policyNow.Add(-10 * time.Second)}, false, 1},
		{"the gap over", State{ForcedDay: today, ForcedCount: 1, ForcedAt: policyNow.Add(-forceGap)}, true, 1},
	} {
		st := tt.st
		err := forceAllowed(&st, policyNow)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrForceLimited)) {
			t.Errorf("%s: forceAllowed = %v, want ok=%v (ErrForceLimited otherwise)", tt.name, err, tt.ok)
		}
		if st.ForcedCount != tt.wantCount || st.ForcedDay != today {
			t.Errorf("%s: count %d on %q after, want %d on %q", tt.name, st.ForcedCount, st.ForcedDay, tt.wantCount, today)
		}
	}
}
