package delivery

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrInvalidSecret reports a webhook secret that is not whsec_ followed by
// standard base64. Errors wrapping it say which secret, never what it holds.
var ErrInvalidSecret = errors.New("delivery: malformed webhook secret")

// secretPrefix starts every Standard Webhooks secret.
const secretPrefix = "whsec_"

// Sign returns the Standard Webhooks webhook-signature header value for one
// delivery: for each secret, "v1," and the standard base64 of the
// HMAC-SHA256 of msgID + "." + unix seconds of ts + "." + body, keyed with
// the base64-decoded part of the whsec_ secret. Several secrets (the current
// and, during a rotation, the previous one) give a space-separated list in
// the order given, so a receiver holding either secret verifies.
//
// Returns ErrInvalidSecret, wrapped with the secret's position, when a
// secret is malformed or there is none.
func Sign(secrets []string, msgID string, ts time.Time, body []byte) (string, error) {
	if len(secrets) == 0 {
		return "", fmt.Errorf("%w: no secret to sign with", ErrInvalidSecret)
	}
	// The signed content is the same for every secret: build it once.
	content := make([]byte, 0, len(msgID)+1+20+1+len(body))
	content = append(content, msgID...)
	content = append(content, '.')
	content = strconv.AppendInt(content, ts.Unix(), 10)
	content = append(content, '.')
	content = append(content, body...)

	var b strings.Builder
	for i, s := range secrets {
		key, err := decodeSecret(s)
		if err != nil {
			return "", fmt.Errorf("%w: secret %d of %d %s", ErrInvalidSecret, i+1, len(secrets), err)
		}
		mac := hmac.New(sha256.New, key)
		mac.Write(content)
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("v1,")
		b.WriteString(base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	return b.String(), nil
}

// decodeSecret returns the key inside a whsec_ secret. Its errors describe
// the problem without quoting the secret.
func decodeSecret(s string) ([]byte, error) {
	enc, ok := strings.CutPrefix(s, secretPrefix)
	if !ok {
		return nil, errors.New("does not start with " + secretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	switch {
	case err != nil:
		return nil, errors.New("is not standard base64 after " + secretPrefix)
	case len(key) == 0:
		return nil, errors.New("holds an empty key")
	}
	return key, nil
}
