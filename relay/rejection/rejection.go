// Package rejection counts the pushes the relay refuses, per tenant and
// cause, so that a misconfigured tenant (a wrong Token or EncodingAESKey
// after onboarding, a clock far off) shows in its health, its gauges and
// the console instead of only in INFO log lines.
//
// Anyone may POST to a push URL, so a refused push must cost the relay
// next to nothing: it is counted in memory (a Tally, bounded by the number
// of tenants times the causes, since only pushes to existing tenants are
// counted), and each replica adds its counts to the store every few
// seconds, one row per tenant and cause. However many pushes are refused,
// the writes are at most one per tenant and cause per flush, and no body
// is ever kept.
//
// The store keeps, per tenant and cause, a run: how many pushes were
// refused since it began and when the latest was. A run ends when
// Window passes without a refusal; the next refusal begins a new one.
// While a run's latest refusal is within Window, health reports
// PUSH_REJECTED.
package rejection

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/wxrelay/wxrelay/tenant"
)

// Window is how long after its latest refusal a run is in force (health's
// PUSH_REJECTED) and goes on counting.
const Window = 15 * time.Minute

// Retention is how long a run that ended is kept to be shown.
const Retention = 24 * time.Hour

// Cause is why a push was refused: the ingress outcome.
type Cause string

// The causes counted. Pushes refused because the tenant is unknown or
// disabled, the relay is busy, or the client went away are not: they say
// nothing of the tenant's settings.
const (
	BadTimestamp   Cause = "bad_timestamp"
	StaleTimestamp Cause = "stale_timestamp"
	BadSignature   Cause = "bad_signature"
	WrongAppID     Cause = "wrong_appid"
	WrongRecipient Cause = "wrong_recipient"
	BadCiphertext  Cause = "bad_ciphertext"
	NotEncrypted   Cause = "not_encrypted"
	Malformed      Cause = "malformed"
	Replayed       Cause = "replayed"
	TooLarge       Cause = "too_large"
)

// Causes are all the causes, in the order they are shown.
var Causes = []Cause{BadSignature, BadCiphertext, WrongAppID, WrongRecipient, NotEncrypted,
	StaleTimestamp, BadTimestamp, Replayed, Malformed, TooLarge}

// Counted reports whether outcome, an ingress outcome, is a cause that is
// counted.
func Counted(outcome string) bool { return slices.Contains(Causes, Cause(outcome)) }

// Hint says what a cause usually means, and what to check.
func (c Cause) Hint() string {
	switch c {
	case BadSignature:
		return "the signature does not match: check that the tenant's token is the Token in the mini-program console (消息推送)"
	case BadCiphertext:
		return "the body does not decrypt: check that the tenant's encoding_aes_key is the EncodingAESKey in the mini-program console"
	case WrongAppID:
		return "the push was encrypted for another mini program: check the tenant's appid, or whose push URL this is"
	case WrongRecipient:
		return "the push is for another ToUserName: check the tenant's original_id"
	case NotEncrypted:
		return "the push is plaintext but the tenant expects safe mode: set encrypt_mode to the mode chosen in the mini-program console"
	case StaleTimestamp:
		return "the timestamp is minutes away from the relay's clock: check the relay's clock (NTP), or these are replays"
	case BadTimestamp:
		return "the timestamp is not Unix seconds: not a push from WeChat"
	case Replayed:
		return "a plaintext push's signature was used again for another body: a replay"
	case Malformed:
		return "the body does not parse in the tenant's format: check the tenant's format (XML or JSON) against the console's 数据格式"
	case TooLarge:
		return "the body exceeds 1 MiB: not a push from WeChat"
	}
	return ""
}

// Count is a run of refusals of one tenant's pushes for one cause.
type Count struct {
	Tenant tenant.ID
	Cause  Cause
	N      int64
	First  time.Time // the run's first refusal
	Last   time.Time // its latest
}

// InForce reports whether the run is still counting at now.
func (c Count) InForce(now time.Time) bool { return now.Sub(c.Last) <= Window }

// Store keeps the runs; *store.RejectionStore is one.
type Store interface {
	// AddPushRejections adds counts to the runs, each beginning a new
	// run where the stored one's latest refusal is over Window before
	// the earliest of counts (a flush's counts are seconds apart).
	// Counts of tenants that no longer exist are dropped, not an error.
	AddPushRejections(ctx context.Context, counts []Count) error
	// PushRejections returns tid's runs whose latest refusal is after
	// since, in the order of Causes.
	PushRejections(ctx context.Context, tid tenant.ID, since time.Time) ([]Count, error)
}

type key struct {
	tenant tenant.ID
	cause  Cause
}

// Tally counts refusals in memory until they are flushed to a Store. It
// is safe for concurrent use.
type Tally struct {
	mu     sync.Mutex
	counts map[key]*Count
}

// Note counts one refusal of a push to tid at at.
func (t *Tally) Note(tid tenant.ID, cause Cause, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.add(Count{Tenant: tid, Cause: cause, N: 1, First: at, Last: at})
}

// add adds c to the count of its tenant and cause. t.mu must be held.
func (t *Tally) add(c Count) {
	if t.counts == nil {
		t.counts = make(map[key]*Count)
	}
	k := key{c.Tenant, c.Cause}
	mine := t.counts[k]
	if mine == nil {
		t.counts[k] = &c
		return
	}
	mine.N += c.N
	mine.First, mine.Last = minTime(mine.First, c.First), maxTime(mine.Last, c.Last)
}

// FlushChunk is how many counts one store call adds: a flush after
// strangers had pushes to many tenants refused holds the write lock in
// short turns, not in one long statement.
const FlushChunk = 500

// Flush adds what was counted since the last flush to s, FlushChunk
// counts a call. Counts that could not be stored are kept for the next
// flush; those stored before are not counted again.
func (t *Tally) Flush(ctx context.Context, s Store) error {
	t.mu.Lock()
	taken := t.counts
	t.counts = nil
	t.mu.Unlock()
	if len(taken) == 0 {
		return nil
	}
	counts := make([]Count, 0, len(taken))
	for _, c := range taken {
		counts = append(counts, *c)
	}
	// A stable order: two replicas' flushes then take rows' locks in
	// the same order and cannot deadlock.
	slices.SortFunc(counts, func(a, b Count) int {
		if a.Tenant != b.Tenant {
			return cmp.Compare(string(a.Tenant), string(b.Tenant))
		}
		return cmp.Compare(string(a.Cause), string(b.Cause))
	})
	for start := 0; start < len(counts); start += FlushChunk {
		if err := s.AddPushRejections(ctx, counts[start:min(start+FlushChunk, len(counts))]); err != nil {
			t.mu.Lock()
			for _, c := range counts[start:] {
				t.add(c)
			}
			t.mu.Unlock()
			return err
		}
	}
	return nil
}

// Pending is how many tenant-cause counts wait for the next flush.
func (t *Tally) Pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.counts)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
