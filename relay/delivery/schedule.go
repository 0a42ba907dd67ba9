package delivery

import (
	"errors"
	"math/rand/v2"
	"time"

	"github.com/wxrelay/wxrelay/relay"
)

// Schedule is the delay before each delivery attempt: one attempt per
// entry, the first entry for the first attempt (counted from receipt), each
// later one from the failure before it.
type Schedule []time.Duration

// DefaultSchedule retries for about 27 hours: at once, then 5 s, 5 min,
// 30 min, 2 h, 5 h, 10 h, 10 h.
var DefaultSchedule = Schedule{0, 5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}

// minBackoffAfterOverload is the least wait after a 429 or a timeout: the
// endpoint said it is overloaded, or could not answer in time, and an
// early retry only adds to its load.
const minBackoffAfterOverload = 60 * time.Second

// maxRetryAfter caps a Retry-After the webhook asks for, so that a bogus
// value cannot park an event for a year.
const maxRetryAfter = 24 * time.Hour

// Validate reports an empty schedule or a negative delay.
func (s Schedule) Validate() error {
	if len(s) == 0 {
		return errors.New("retry schedule needs at least one delay")
	}
	for _, d := range s {
		if d < 0 {
			return errors.New("retry schedule delays must not be negative")
		}
	}
	return nil
}

// next decides what follows a failed attempt made at position retryIndex
// of the schedule: the time of the next attempt and its position, or
// failed when the schedule is spent. retryAfter is what the webhook asked
// for (0: nothing). Delays get ±10% jitter so that events failed together
// do not all come back in the same instant.
func (s Schedule) next(retryIndex int, now time.Time, a relay.Attempt, retryAfter time.Duration) (at time.Time, index int, failed bool) {
	index = retryIndex + 1
	if index >= len(s) {
		return time.Time{}, index, true
	}
	d := jitter(s[index])
	if a.HTTPStatus == 429 || a.ErrorClass == relay.ErrorTimeout {
		d = max(d, minBackoffAfterOverload)
	}
	d = max(d, min(retryAfter, maxRetryAfter))
	return now.Add(d), index, false
}

func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(float64(d) * (0.9 + 0.2*rand.Float64()))
}
