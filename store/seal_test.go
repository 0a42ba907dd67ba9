package store

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
)

func mustSealer(t *testing.T) *sealer {
	t.Helper()
	key := make([]byte, SealKeySize)
	rand.Read(key)
	s, err := newSealer(key)
	if err != nil {
		t.Fatalf("newSealer: %v", err)
	}
	return s
}

func TestSealer_RoundTrip(t *testing.T) {
	s := mustSealer(t)
	for _, plain := range []string{"", "x", `{"app_secret":"0123456789abcdef0123456789abcdef"}`, strings.Repeat("秘", 4096)} {
		sealed := s.seal([]byte(plain), "tenants.sealed_secrets", "tn_a")
		got, err := s.open(sealed, "tenants.sealed_secrets", "tn_a")
		if err != nil {
			t.Fatalf("open(seal(%.20q)) error = %v", plain, err)
		}
		if string(got) != plain {
			t.Errorf("open(seal(%.20q)) = %.20q", plain, got)
		}
		// Short plaintexts may turn up in random bytes by chance.
		if len(plain) >= 8 && bytes.Contains(sealed, []byte(plain)) {
			t.Errorf("seal(%.20q) contains the plaintext", plain)
		}
	}
}

func TestSealer_RandomNonce(t *testing.T) {
	s := mustSealer(t)
	a := s.seal([]byte("secret"), "c", "r")
	b := s.seal([]byte("secret"), "c", "r")
	if bytes.Equal(a, b) {
		t.Error("sealing the same plaintext twice gave the same bytes; want a fresh nonce each time")
	}
	if got, want := a[0], sealFormatV1; got != want {
		t.Errorf("format byte = %d, want %d", got, want)
	}
}

// TestSealer_Refuses checks that a sealed value opens only unchanged, in the
// place it was sealed for, under the key that sealed it.
func TestSealer_Refuses(t *testing.T) {
	const plain, column, row = "the-app-secret-0123456789", "tenants.sealed_secrets", "tn_a"
	s := mustSealer(t)
	sealed := s.seal([]byte(plain), column, row)

	flipped := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 0x01
		return b
	}
	for _, tt := range []struct {
		name    string
		s       *sealer
		sealed  []byte
		column  string
		row     string
		wantErr error
	}{
		{"other row", s, sealed, column, "tn_b", errSealOpen},
		{"row id prefix", s, sealed, column, "tn_", errSealOpen},
		{"other column", s, sealed, "tenants.sealed_webhook_secrets", row, errSealOpen},
		{"column and row run together", s, sealed, column + "\x00tn", "_a", errSealOpen},
		{"other key", mustSealer(t), sealed, column, row, errSealOpen},
		{"nonce flipped", s, flipped(1), column, row, errSealOpen},
		{"ciphertext flipped", s, flipped(len(sealed) / 2), column, row, errSealOpen},
		{"tag flipped", s, flipped(len(sealed) - 1), column, row, errSealOpen},
		{"truncated", s, sealed[:len(sealed)-1], column, row, errSealOpen},
		{"tag only", s, sealed[:1+16], column, row, errSealOpen},
		{"extended", s, append(bytes.Clone(sealed), 0), column, row, errSealOpen},
		{"unknown format", s, append([]byte{2}, sealed[1:]...), column, row, errSealFormat},
		{"empty", s, nil, column, row, errSealFormat},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.s.open(tt.sealed, tt.column, tt.row)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("open() = %q, %v; want error %v", got, err, tt.wantErr)
			}
			if got != nil {
				t.Errorf("open() returned %d bytes with its error", len(got))
			}
			if strings.Contains(err.Error(), plain) {
				t.Errorf("error %q contains the plaintext", err)
			}
		})
	}
}

func TestNewSealer_KeySize(t *testing.T) {
	for _, n := range []int{0, 16, 24, 31, 33, 64} {
		key := bytes.Repeat([]byte{'k'}, n)
		_, err := newSealer(key)
		if err == nil {
			t.Errorf("newSealer(%d bytes) error = nil, want an error", n)
			continue
		}
		if n > 0 && strings.Contains(err.Error(), string(key[:min(n, 8)])) {
			t.Errorf("newSealer(%d bytes) error %q shows the key", n, err)
		}
	}
}
