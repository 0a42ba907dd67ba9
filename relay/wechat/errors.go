package wechat

import (
	"errors"
	"fmt"
)

// Errors returned by this package. Their text is safe to show to the sender
// of a push; functions wrap them with details meant for logs, so compare with
// errors.Is.
var (
	// ErrBadSignature means a signature or msg_signature did not match, or
	// was missing.
	ErrBadSignature = errors.New("wechat: bad signature")

	// ErrMalformed means a body or query could not be parsed, or lacks a
	// field the protocol requires.
	ErrMalformed = errors.New("wechat: malformed body")

	// ErrNotEncrypted means a push expected in safe mode has no Encrypt
	// field: it came in plaintext (the mini-program console's message push
	// is set to another mode than the relay's). It is an ErrMalformed.
	ErrNotEncrypted = fmt.Errorf("%w: no Encrypt field", ErrMalformed)

	// ErrBadCiphertext means an Encrypt value is not a well-formed
	// ciphertext under the configured key: bad base64, bad length, bad
	// padding or an impossible message length.
	ErrBadCiphertext = errors.New("wechat: bad ciphertext")

	// ErrAppIDMismatch means a ciphertext decrypted cleanly but was sealed
	// for another appid, so the push belongs to another mini program.
	ErrAppIDMismatch = errors.New("wechat: ciphertext is for another appid")

	// ErrWrongRecipient means a push's ToUserName is not the mini program's
	// original ID.
	ErrWrongRecipient = errors.New("wechat: push is for another mini program")

	// ErrInvalidConfig means a token, EncodingAESKey, appid, mode or format
	// given to this package is unusable.
	ErrInvalidConfig = errors.New("wechat: invalid configuration")

	// ErrTooLarge means a message is too large to encrypt.
	ErrTooLarge = errors.New("wechat: message too large")
)
