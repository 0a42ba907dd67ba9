package relay

import "time"

// Attempt is one try at delivering an event to its tenant's webhook.
type Attempt struct {
	Time       time.Time
	HTTPStatus int // 0 when no HTTP answer came
	Latency    time.Duration
	// ErrorClass sorts failures for metrics and retry policy: "" on
	// success, else one of the Error* classes.
	ErrorClass string
	// Error says what went wrong, for people; empty on success.
	Error string
	// ResponseBody is the first 4 KiB of the webhook's answer.
	ResponseBody []byte
	// ResponseHeaders are the answer's headers as "Name: value" lines,
	// sorted, the first MaxResponseHeaders bytes of them.
	ResponseHeaders string
}

// MaxResponseHeaders bounds what an Attempt keeps of the answer's headers.
const MaxResponseHeaders = 2 << 10

// Attempt error classes.
const (
	ErrorHTTPStatus = "http_status" // a non-2xx answer (3xx included: redirects are not followed)
	ErrorTimeout    = "timeout"     // no answer within the attempt timeout
	ErrorConnect    = "connect"     // DNS, refused or reset connection, TLS
	ErrorBlocked    = "blocked"     // the address is private and private webhooks are not allowed
	ErrorRequest    = "request"     // the webhook URL or request could not be made
)

// MinuteCount is how many delivery attempts of a tenant succeeded and
// failed in one minute.
type MinuteCount struct {
	Minute    time.Time // the minute's start, UTC
	Delivered int
	Failed    int
}
