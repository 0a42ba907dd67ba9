package delivery

import (
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay"
)

func TestScheduleNext(t *testing.T) {
	now := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	s := DefaultSchedule
	fail500 := relay.Attempt{HTTPStatus: 500, ErrorClass: relay.ErrorHTTPStatus}
	for _, tt := range []struct {
		name       string
		index      int
		attempt    relay.Attempt
		retryAfter time.Duration
		wantMin    time.Duration
		wantMax    time.Duration
		wantFailed bool
	}{
		{"after the first attempt: 5 s", 0, fail500, 0, 4500 * time.Millisecond, 5500 * time.Millisecond, false},
		{"after the third: 30 min", 2, fail500, 0, 27 * time.Minute, 33 * time.Minute, false},
		{"429 waits at least 60 s", 0, relay.Attempt{HTTPStatus: 429, ErrorClass: relay.ErrorHTTPStatus}, 0, 60 * time.Second, 60 * time.Second, false},
		{"timeout waits at least 60 s", 0, relay.Attempt{ErrorClass: relay.ErrorTimeout}, 0, 60 * time.Second, 60 * time.Second, false},
		{"Retry-After honoured", 0, fail500, 10 * time.Minute, 10 * time.Minute, 10 * time.Minute, false},
		{"Retry-After shorter than the schedule", 3, fail500, time.Second, 108 * time.Minute, 132 * time.Minute, false},
		{"Retry-After capped", 0, fail500, 400 * 24 * time.Hour, 24 * time.Hour, 24 * time.Hour, false},
		{"last entry spent", 7, fail500, 0, 0, 0, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			at, index, failed := s.next(tt.index, now, tt.attempt, tt.retryAfter)
			if failed != tt.wantFailed {
				t.Fatalf("failed = %v, want %v", failed, tt.wantFailed)
			}
			if failed {
				return
			}
			if index != tt.index+1 {
				t.Errorf("index = %d, want %d", index, tt.index+1)
			}
			if d := at.Sub(now); d < tt.wantMin || d > tt.wantMax {
				t.Errorf("delay = %s, want %s..%s", d, tt.wantMin, tt.wantMax)
			}
		})
	}
}

func TestDefaultScheduleSpansADay(t *testing.T) {
	var total time.Duration
	for _, d := range DefaultSchedule {
		total += d
	}
	if total < 27*time.Hour || total > 28*time.Hour || len(DefaultSchedule) != 8 {
		t.Errorf("default schedule: %d attempts over %s, want 8 over about 27 h", len(DefaultSchedule), total)
	}
	if err := (Schedule{}).Validate(); err == nil {
		t.Errorf("empty schedule validated")
	}
}
