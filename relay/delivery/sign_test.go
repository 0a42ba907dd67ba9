package delivery

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

const (
	testSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	testSecretOld = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
)

// signedHeader is what a receiver sees of a signed delivery.
func signedHeader(msgID string, ts time.Time, sig string) http.Header {
	h := http.Header{}
	h.Set(standardwebhooks.HeaderWebhookID, msgID)
	h.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(standardwebhooks.HeaderWebhookSignature, sig)
	return h
}

// mustVerifier returns the Standard Webhooks library's verifier for secret.
func mustVerifier(tb testing.TB, secret string) *standardwebhooks.Webhook {
	tb.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		tb.Fatalf("NewWebhook: %v", err)
	}
	return wh
}

func TestSignVerifiesWithStandardWebhooks(t *testing.T) {
	ts := time.Now()
	body := []byte(`{"id":"evt_1","type":"message.text","data":{"Content":"hi"}}`)
	for _, tt := range []struct {
		name     string
		secrets  []string
		verifyBy []string // each must verify alone
	}{
		{"single secret", []string{testSecret}, []string{testSecret}},
		{"rotation: current and previous", []string{testSecret, testSecretOld}, []string{testSecret, testSecretOld}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sig, err := Sign(tt.secrets, "evt_1", ts, body)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			if got, want := len(strings.Split(sig, " ")), len(tt.secrets); got != want {
				t.Errorf("signatures in %q = %d, want %d", sig, got, want)
			}
			for i, secret := range tt.verifyBy {
				if err := mustVerifier(t, secret).Verify(body, signedHeader("evt_1", ts, sig)); err != nil {
					t.Errorf("Verify with secret %d: %v", i+1, err)
				}
			}
		})
	}
}

func TestSignTamperedFails(t *testing.T) {
	ts := time.Now()
	body := []byte(`{"id":"evt_1"}`)
	sig, err := Sign([]string{testSecret, testSecretOld}, "evt_1", ts, body)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	for _, tt := range []struct {
		name   string
		secret string
		body   []byte
		header http.Header
	}{
		{"tampered body", testSecret, []byte(`{"id":"evt_2"}`), signedHeader("evt_1", ts, sig)},
		{"other id", testSecret, body, signedHeader("evt_2", ts, sig)},
		{"other timestamp", testSecret, body, signedHeader("evt_1", ts.Add(time.Second), sig)},
		{"unrelated secret", "whsec_" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", body, signedHeader("evt_1", ts, sig)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := mustVerifier(t, tt.secret).Verify(tt.body, tt.header)
			if got, want := err, standardwebhooks.ErrNoMatchingSignature; !errors.Is(got, want) {
				t.Errorf("Verify() = %v, want %v", got, want)
			}
		})
	}
}

func TestSignKnownAnswer(t *testing.T) {
	// The reference vector of the Standard Webhooks (Svix) libraries.
	got, err := Sign([]string{testSecret}, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("Sign() = %q, want %q", got, want)
	}
}

func TestSignMalformedSecret(t *testing.T) {
	for _, tt := range []struct {
		name    string
		secrets []string
		wantIn  string
	}{
		{"none", nil, "no secret"},
		{"no prefix", []string{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, "secret 1 of 1 does not start with whsec_"},
		{"not base64", []string{"whsec_not*base64!"}, "secret 1 of 1 is not standard base64"},
		{"empty key", []string{"whsec_"}, "secret 1 of 1 holds an empty key"},
		{"second of two", []string{testSecret, "whsec_%%%%"}, "secret 2 of 2 is not standard base64"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Sign(tt.secrets, "evt_1", time.Unix(0, 0), []byte("{}"))
			if got, want := err, ErrInvalidSecret; !errors.Is(got, want) {
				t.Fatalf("Sign() error = %v, want %v", got, want)
			}
			if !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("Sign() error = %q, want it to contain %q", err, tt.wantIn)
			}
			for _, s := range tt.secrets {
				if enc := strings.TrimPrefix(s, "whsec_"); enc != "" && strings.Contains(err.Error(), enc) {
					t.Errorf("Sign() error %q reveals a secret", err)
				}
			}
		})
	}
}
