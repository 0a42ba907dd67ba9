package tenant

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

func testAuthenticator(t *testing.T, now *time.Time) *Authenticator {
	t.Helper()
	a, err := NewAuthenticator(bytes.Repeat([]byte{7}, 32), nil, func() time.Time { return *now })
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestWeChatToken(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	a := testAuthenticator(t, &now)
	tn := &Tenant{ID: "tn_abcdefghijklmnop", APIKeyHash: hashKeyID("key-1")}
	tok, err := a.IssueWeChatToken(tn, now.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Trim(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" || len(tok) > 100 {
		t.Fatalf("token %q: want URL-safe characters only, under 100", tok)
	}

	w, err := a.ParseWeChatToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	if w.Tenant != tn.ID || !w.ExpiresAt.Equal(now.Add(2*time.Hour)) || !w.IssuedTo(tn) {
		t.Fatalf("parsed %+v, issued to %v", w, w.IssuedTo(tn))
	}

	t.Run("rotated key", func(t *testing.T) {
		rotated := *tn
		rotated.APIKeyHash = hashKeyID("key-2")
		if w.IssuedTo(&rotated) {
			t.Fatal("a token of the previous key passes for the new key's")
		}
	})
	t.Run("another tenant", func(t *testing.T) {
		other := *tn
		other.ID = "tn_qrstuvwxyzabcdef"
		if w.IssuedTo(&other) {
			t.Fatal("a token passes for another tenant's")
		}
	})
	t.Run("expired", func(t *testing.T) {
		later := now.Add(2*time.Hour + clockLeeway)
		b := testAuthenticator(t, &later)
		if _, err := b.ParseWeChatToken(tok); !errors.Is(err, ErrWeChatTokenExpired) || !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("at expiry: %v, want ErrWeChatTokenExpired", err)
		}
	})
	t.Run("tampered", func(t *testing.T) {
		raw, _ := base64.RawURLEncoding.DecodeString(tok)
		for i := range raw {
			c := bytes.Clone(raw)
			c[i] ^= 1
			if _, err := a.ParseWeChatToken(base64.RawURLEncoding.EncodeToString(c)); !errors.Is(err, ErrWeChatTokenInvalid) {
				t.Fatalf("byte %d flipped: %v, want ErrWeChatTokenInvalid", i, err)
			}
		}
	})
	t.Run("another relay's key", func(t *testing.T) {
		b, _ := NewAuthenticator(bytes.Repeat([]byte{8}, 32), nil, func() time.Time { return now })
		if _, err := b.ParseWeChatToken(tok); !errors.Is(err, ErrWeChatTokenInvalid) {
			t.Fatalf("%v, want ErrWeChatTokenInvalid", err)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		for _, s := range []string{"", "x", "ACCESS_TOKEN", strings.Repeat("A", 80), "a.b.c"} {
			if _, err := a.ParseWeChatToken(s); !errors.Is(err, ErrWeChatTokenInvalid) {
				t.Fatalf("%q: %v, want ErrWeChatTokenInvalid", s, err)
			}
		}
	})
	t.Run("no api key", func(t *testing.T) {
		if _, err := a.IssueWeChatToken(&Tenant{ID: "tn_x"}, now.Add(time.Hour)); err == nil {
			t.Fatal("issued a token to a tenant without an api key")
		}
	})
}
