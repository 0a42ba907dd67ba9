package token

import (
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/tenant"
)

// The keeper's policy: when a token is good enough, when the next is
// fetched, how long a failure waits, and when WeChat's forced refresh may
// be spent. Pure functions of a token's State, its Subject and the clock,
// table-tested in policy_test.go; keeper.go is the mechanism that applies
// them (memory, shared flights, leases, the Store), for every kind of
// token alike, and source.go says what each kind's token is for and how
// WeChat hands it out.

const (
	// expirySkew: a token with less than this left counts as expired, so
	// that a call made with it has time to reach WeChat.
	expirySkew = 30 * time.Second
	// recheckEvery is how often, once a token is due, memory asks the
	// Store whether another process has replaced it.
	recheckEvery = 5 * time.Second
	// minDue is the earliest a next fetch is scheduled after the last.
	minDue = 30 * time.Second

	// A stable token's normal mode hands out the next token only in the
	// current one's last five minutes (protocol §6); earlier fetches get the
	// same token back. Stable tokens are therefore refreshed between these
	// two leads before expiry.
	stableLeadMin = 90 * time.Second
	stableLeadMax = 270 * time.Second

	// WeChat's force_refresh limits (protocol §6).
	forceDailyMax = 20
	forceGap      = 30 * time.Second
)

// beijing is WeChat's day boundary for daily quotas.
var beijing = time.FixedZone("CST", 8*60*60)

// satisfies reports whether st holds a token that answers r for sub.
func satisfies(st *State, sub Subject, r request, now time.Time) bool {
	switch {
	case st == nil || st.Token == "" || st.AppID != sub.AppID || st.Endpoint != sub.Endpoint:
		return false
	case !now.Before(st.ExpiresAt.Add(-expirySkew)):
		return false
	case r.failed != "" && st.Token == r.failed:
		return false
	case r.due && !now.Before(st.DueAt):
		return false
	}
	return true
}

// backingOff returns ErrBackoff, with the last failure, while the backoff
// after a failed fetch lasts, unless the owner changed since.
func backingOff(st *State, sub Subject, now time.Time) error {
	if st == nil || st.Failures == 0 || st.TenantVersion != sub.Version || !now.Before(st.DueAt) {
		return nil
	}
	err := fmt.Errorf("%w (until %s, after %d failures): %s",
		ErrBackoff, st.DueAt.Format(time.RFC3339), st.Failures, st.LastError)
	if st.LastErrcode != 0 {
		err = errors.Join(err, &wechat.APIError{Code: st.LastErrcode, Msg: st.LastError})
	}
	return err
}

// nextDue schedules the next fetch of a token expiring at exp, at a random
// point of its endpoint's window.
func nextDue(ep tenant.TokenEndpoint, margin, spread time.Duration, exp, now time.Time) time.Time {
	var lead time.Duration
	if ep == tenant.TokenClassic {
		lead = margin + jitter(spread)
	} else {
		lead = stableLeadMin + jitter(stableLeadMax-stableLeadMin)
	}
	return latest(exp.Add(-lead), now.Add(minDue))
}

// backoff is how long to wait before fetching again after failures
// consecutive failures, the last with errcode code (0: no answer).
func backoff(code, failures int, now time.Time) time.Duration {
	n := min(failures-1, 16)
	var d time.Duration
	switch code {
	case wechat.CodeDailyQuota:
		// The quota comes back at midnight, Beijing time.
		b := now.In(beijing)
		d = time.Date(b.Year(), b.Month(), b.Day()+1, 0, 0, 0, 0, beijing).Sub(now)
		return max(d, time.Minute) + jitter(5*time.Minute)
	case wechat.CodeMinuteQuota:
		d = min(time.Minute<<n, 10*time.Minute) // "retry next minute"
	case wechat.CodeSystemError, 0:
		d = min(5*time.Second<<n, 5*time.Minute)
	default:
		// Wrong secret, IP not whitelisted, frozen account: waiting does
		// not help, but a tenant update lifts the backoff at once.
		d = min(time.Minute<<n, 30*time.Minute)
	}
	return d + jitter(d/10)
}

// forceAllowed reports whether a forced refresh fits WeChat's budget at
// now (ErrForceLimited, saying why, if not), and starts a new Beijing day's
// count in st when the day has turned.
func forceAllowed(st *State, now time.Time) error {
	day := now.In(beijing).Format(time.DateOnly)
	if st.ForcedDay != day {
		st.ForcedDay, st.ForcedCount = day, 0
	}
	if st.ForcedCount >= forceDailyMax {
		return fmt.Errorf("%w: %d today (Beijing)", ErrForceLimited, st.ForcedCount)
	}
	if since := now.Sub(st.ForcedAt); !st.ForcedAt.IsZero() && since < forceGap {
		return fmt.Errorf("%w: the last was %s ago", ErrForceLimited, since.Round(time.Second))
	}
	return nil
}

func endpointOf(t *tenant.Tenant) tenant.TokenEndpoint {
	if t.TokenEndpoint == tenant.TokenClassic {
		return tenant.TokenClassic
	}
	return tenant.TokenStable
}

func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(mrand.Int64N(int64(d)))
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
