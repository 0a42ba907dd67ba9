package message

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/tenant"
)

// IdempotencyTTL is how long an idempotency key holds: a repeat within it
// gets the first outcome; after it the key is free and sends again.
const IdempotencyTTL = 24 * time.Hour

// MaxIdempotencyKeyLen caps an idempotency key's length in bytes.
const MaxIdempotencyKeyLen = 255

// ErrKeyTaken is returned by IdempotencyStore.ReserveIdempotencyKey when a
// live row for the key exists; the Reservation returned beside it says whose.
var ErrKeyTaken = errors.New("message: idempotency key already used")

// Outcome is the recorded result of a send made under an idempotency key.
type Outcome struct {
	// Code is the gRPC code the caller got; 0 (OK) for success.
	Code int32
	// Errcode and Errmsg are WeChat's, when WeChat refused the send.
	Errcode int
	Errmsg  string
	// Status is the serialised google.rpc.Status the caller got, replayed
	// as is; empty for success.
	Status []byte
}

// Fingerprint is what an idempotency key remembers of the message sent
// under it, the same for every API (REST, gRPC, the compatible API): the
// SHA-256, in hex, of the message as the relay sends it (validated, only
// its msgtype's payload, encoded as WeChat reads it). The same message
// written with other spacing or field order, or sent through another API,
// has the same fingerprint; a different message has another.
func Fingerprint(m Message) (string, error) {
	if err := Validate(&m); err != nil {
		return "", err
	}
	body, err := wechat.EncodeJSON(onlyType(m))
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:]), nil
}

// FingerprintBody is Fingerprint of a send body as a caller wrote it (the
// compatible API forwards bodies it does not parse): a body that is no
// valid message is fingerprinted as its bytes, marked so, which no valid
// message's fingerprint equals.
func FingerprintBody(body []byte) string {
	var m Message
	if json.Unmarshal(body, &m) == nil {
		if fp, err := Fingerprint(m); err == nil {
			return fp
		}
	}
	sum := sha256.Sum256(body)
	return "raw:" + hex.EncodeToString(sum[:])
}

// Reservation is the state of an idempotency key.
type Reservation struct {
	// Fingerprint is the sha256 (hex) of the canonical body sent under the key.
	Fingerprint string
	// Done is false while the first send is in progress.
	Done      bool
	Outcome   Outcome
	CreatedAt time.Time
}

// IdempotencyStore keeps idempotency keys per tenant; *store.IdempotencyStore
// is one.
type IdempotencyStore interface {
	// ReserveIdempotencyKey records key as pending for tid with fingerprint
	// at now, unless a row for it younger than ttl exists: it then returns
	// that row and ErrKeyTaken. A row older than ttl is taken over.
	// tenant.ErrNotFound.
	ReserveIdempotencyKey(ctx context.Context, tid tenant.ID, key, fingerprint string, now time.Time, ttl time.Duration) (*Reservation, error)
	// FinishIdempotencyKey records the outcome of the send under key.
	FinishIdempotencyKey(ctx context.Context, tid tenant.ID, key string, o Outcome, now time.Time) error
	// ReleaseIdempotencyKey deletes a pending key, for a send that never
	// reached WeChat, so that a retry with the key may send.
	ReleaseIdempotencyKey(ctx context.Context, tid tenant.ID, key string) error
}
