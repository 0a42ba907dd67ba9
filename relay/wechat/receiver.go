package wechat

import (
	"fmt"
	"net/url"
)

// Receiver authenticates and opens the pushes of one mini program. Its
// fields mirror the console's server settings. A Receiver is safe for
// concurrent use as long as its fields are not changed.
type Receiver struct {
	// Token is the console's Token, the key of every signature.
	Token string
	// Mode is the console's encryption mode. It must come from
	// configuration, never from the request: a plaintext signature covers
	// no part of the body, so a receiver that fell back to plaintext
	// whenever a push looked unencrypted would accept forged bodies.
	Mode Mode
	// Cipher opens Encrypt fields; required unless Mode is ModePlaintext.
	Cipher *Cipher
	// OriginalID, if set, is the mini program's original ID (gh_…); pushes
	// addressed to another ToUserName are refused.
	OriginalID string
}

// Receive authenticates a push POSTed to the push URL, given the request's
// query and body, and decodes its message.
//
// In plaintext mode it checks signature over Token, timestamp and nonce and
// decodes the body. In compatible and safe modes it checks msg_signature
// over Token, timestamp, nonce and the body's Encrypt, decrypts that, and
// decodes the inner message; the plaintext fields of a compatible-mode body
// are ignored because no signature covers them. Receive does not judge
// the timestamp's age: WeChat's retries reuse it, so how old is too old is
// the caller's policy (relay/ingress refuses pushes outside a window).
//
// It returns ErrInvalidConfig for an unusable Receiver, ErrBadSignature,
// ErrMalformed, ErrBadCiphertext, ErrAppIDMismatch, or ErrWrongRecipient when
// OriginalID is set and the message's ToUserName differs.
func (r *Receiver) Receive(query url.Values, body []byte) (*Message, error) {
	if err := checkEndpoint(r.Token, r.Mode, r.Cipher); err != nil {
		return nil, err
	}
	ts, nonce := query.Get("timestamp"), query.Get("nonce")

	inner := body
	if r.Mode == ModePlaintext {
		if !VerifySignature(query.Get("signature"), r.Token, ts, nonce) {
			return nil, ErrBadSignature
		}
	} else {
		env, err := ParseEnvelope(body)
		if err != nil {
			return nil, err
		}
		if !VerifySignature(query.Get("msg_signature"), r.Token, ts, nonce, env.Encrypt) {
			return nil, ErrBadSignature
		}
		if inner, err = r.Cipher.Decrypt(env.Encrypt); err != nil {
			return nil, err
		}
	}

	m, err := DecodeMessage(inner)
	if err != nil {
		return nil, err
	}
	if r.OriginalID != "" && m.ToUserName != r.OriginalID {
		return nil, fmt.Errorf("%w: ToUserName %q", ErrWrongRecipient, truncate([]byte(m.ToUserName), 64))
	}
	return m, nil
}

// Reply prepares a passive reply (such as a [TransferReply]) to the push
// whose query is given, in format f. In plaintext mode the reply is returned
// as it is; in compatible and safe modes it is sealed with [SealReply],
// echoing the push's nonce as WeChat's documentation suggests, and encoded
// in f. timestamp is the current time in Unix seconds. Answer [Success]
// directly: it never needs sealing.
func (r *Receiver) Reply(query url.Values, f Format, reply []byte, timestamp int64) ([]byte, error) {
	if err := checkEndpoint(r.Token, r.Mode, r.Cipher); err != nil {
		return nil, err
	}
	if r.Mode == ModePlaintext {
		return reply, nil
	}
	sealed, err := SealReply(r.Cipher, r.Token, reply, timestamp, query.Get("nonce"))
	if err != nil {
		return nil, err
	}
	return sealed.Encode(f), nil
}
