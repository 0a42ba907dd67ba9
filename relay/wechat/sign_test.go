package wechat

import (
	"net/url"
	"slices"
	"testing"
)

func TestSignDoesNotReorderArguments(t *testing.T) {
	parts := []string{"c", "b", "a"}
	Sign(parts...)
	if want := []string{"c", "b", "a"}; !slices.Equal(parts, want) {
		t.Errorf("Sign reordered its argument to %q, want %q", parts, want)
	}
}

func TestSignSortsByteWise(t *testing.T) {
	// Byte-wise, "B" (0x42) sorts before "a" (0x61) and "10" before "9".
	if got, want := Sign("a", "B", "9", "10"), Sign("10", "9", "B", "a"); got != want {
		t.Errorf("Sign depends on argument order: %s != %s", got, want)
	}
	if got, want := Sign("a", "B"), Sign("Ba"); got != want {
		t.Errorf(`Sign("a", "B") = %s, want sha1("Ba") = %s`, got, want)
	}
}

func TestVerifySignature(t *testing.T) {
	good := Sign("token", "1", "2")
	for _, tt := range []struct {
		name string
		sig  string
		want bool
	}{
		{"match", good, true},
		{"empty", "", false},
		{"one digit off", good[:39] + string(good[39]^1), false},
		{"upper case", "A9993E364706816ABA3E25717850C26C9CD0D89D", false},
		{"prefix", good[:20], false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := VerifySignature(tt.sig, "token", "1", "2"); got != tt.want {
				t.Errorf("VerifySignature(%q) = %v, want %v", tt.sig, got, tt.want)
			}
		})
	}
}

func TestVerifyURL(t *testing.T) {
	valid := URLVerificationQuery(oToken, 1714036504, "1514711492", "4375120948345356249")
	for _, tt := range []struct {
		name    string
		token   string
		query   url.Values
		want    string
		wantErr error
	}{
		{"valid", oToken, valid, "4375120948345356249", nil},
		{"wrong token", "BBBBB", valid, "", ErrBadSignature},
		{"empty token", "", valid, "", ErrInvalidConfig},
		{"tampered timestamp", oToken, with(valid, "timestamp", "1714036505"), "", ErrBadSignature},
		{"tampered signature", oToken, with(valid, "signature", "f464b24fc39322e44b38aa78f5edd27bd1441697"), "", ErrBadSignature},
		{"no signature", oToken, with(valid, "signature", ""), "", ErrBadSignature},
		{"no echostr", oToken, with(valid, "echostr", ""), "", ErrMalformed},
		{"empty query", oToken, url.Values{}, "", ErrBadSignature},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := VerifyURL(tt.token, tt.query)
			wantErr(t, "VerifyURL", err, tt.wantErr)
			if got != tt.want {
				t.Errorf("VerifyURL = %q, want %q", got, tt.want)
			}
		})
	}
}
