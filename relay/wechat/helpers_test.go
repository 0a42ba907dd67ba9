package wechat

import (
	"errors"
	"net/url"
	"testing"
)

// mustCipher returns the Cipher for key and appID or stops the test.
func mustCipher(tb testing.TB, key, appID string) *Cipher {
	tb.Helper()
	c, err := NewCipher(key, appID)
	if err != nil {
		tb.Fatalf("NewCipher(%q, %q): %v", key, appID, err)
	}
	return c
}

// mustQuery parses a raw query string or stops the test.
func mustQuery(tb testing.TB, raw string) url.Values {
	tb.Helper()
	q, err := url.ParseQuery(raw)
	if err != nil {
		tb.Fatalf("ParseQuery(%q): %v", raw, err)
	}
	return q
}

// random16 turns a 16-character test prefix into a frame prefix.
func random16(tb testing.TB, s string) [RandomLen]byte {
	tb.Helper()
	if len(s) != RandomLen {
		tb.Fatalf("random prefix %q has %d bytes, want %d", s, len(s), RandomLen)
	}
	return [RandomLen]byte([]byte(s))
}

// wantErr fails the test unless err matches want (nil meaning no error).
func wantErr(tb testing.TB, op string, err, want error) {
	tb.Helper()
	if want == nil && err != nil {
		tb.Fatalf("%s: unexpected error %v", op, err)
	}
	if want != nil && !errors.Is(err, want) {
		tb.Fatalf("%s: error = %v, want %v", op, err, want)
	}
}

func errorsIsAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// with returns a copy of q with key set to value.
func with(q url.Values, key, value string) url.Values {
	c := url.Values{}
	for k, v := range q {
		c[k] = append([]string(nil), v...)
	}
	c.Set(key, value)
	return c
}
