package wechat

import (
	"bytes"
	"net/url"
	"strings"
	"testing"
)

func TestReceiveRejects(t *testing.T) {
	c := mustCipher(t, oKey, oAppID)
	msg := TextMessage(FormatJSON, testHeader, "hi", 1)
	push := func(mode Mode, cipher *Cipher, token string, msg []byte) *PushRequest {
		t.Helper()
		req, err := (&Pusher{Token: token, Mode: mode, Cipher: cipher}).Push(msg, 1714112445, "415670741")
		if err != nil {
			t.Fatalf("Push: %v", err)
		}
		return req
	}
	safe := push(ModeSafe, c, oToken, msg)
	plain := push(ModePlaintext, nil, oToken, msg)
	otherApp := push(ModeSafe, mustCipher(t, oKey, "wx0000000000000001"), oToken, msg)
	otherGh := push(ModeSafe, c, oToken, TextMessage(FormatJSON, Header{ToUserName: "gh_other", FromUserName: "o1"}, "hi", 1))

	safeRcv := Receiver{Token: oToken, Mode: ModeSafe, Cipher: c, OriginalID: testHeader.ToUserName}
	compatRcv := Receiver{Token: oToken, Mode: ModeCompatible, Cipher: c}
	plainRcv := Receiver{Token: oToken, Mode: ModePlaintext, OriginalID: testHeader.ToUserName}

	for _, tt := range []struct {
		name    string
		rcv     Receiver
		query   url.Values
		body    []byte
		wantErr error
	}{
		{"safe, intact", safeRcv, safe.Query, safe.Body, nil},
		{"safe, wrong token", Receiver{Token: "BBBBB", Mode: ModeSafe, Cipher: c}, safe.Query, safe.Body, ErrBadSignature},
		{"safe, msg_signature tampered", safeRcv, with(safe.Query, "msg_signature", strings.Repeat("0", 40)), safe.Body, ErrBadSignature},
		{"safe, msg_signature missing", safeRcv, with(safe.Query, "msg_signature", ""), safe.Body, ErrBadSignature},
		{"safe, timestamp replaced", safeRcv, with(safe.Query, "timestamp", "1714112446"), safe.Body, ErrBadSignature},
		{"safe, Encrypt swapped for another", safeRcv, safe.Query, otherApp.Body, ErrBadSignature},
		{"safe, for another appid", safeRcv, otherApp.Query, otherApp.Body, ErrAppIDMismatch},
		{"safe, for another gh_ id", safeRcv, otherGh.Query, otherGh.Body, ErrWrongRecipient},
		{"safe, body truncated", safeRcv, safe.Query, safe.Body[:len(safe.Body)/2], ErrMalformed},
		{"safe receiver, plaintext push", safeRcv, plain.Query, plain.Body, ErrMalformed},
		{"plaintext, intact", plainRcv, plain.Query, plain.Body, nil},
		{"plaintext, signature tampered", plainRcv, with(plain.Query, "signature", strings.Repeat("0", 40)), plain.Body, ErrBadSignature},
		{"plaintext receiver, safe push", plainRcv, safe.Query, safe.Body, ErrMalformed},
		{"plaintext, for another gh_ id", plainRcv, plain.Query, TextMessage(FormatJSON, Header{ToUserName: "gh_other"}, "x", 1), ErrWrongRecipient},
		{"compatible receiver, safe push", compatRcv, safe.Query, safe.Body, nil},
		{"empty token", Receiver{Mode: ModePlaintext}, plain.Query, plain.Body, ErrInvalidConfig},
		{"safe without cipher", Receiver{Token: oToken, Mode: ModeSafe}, safe.Query, safe.Body, ErrInvalidConfig},
		{"unknown mode", Receiver{Token: oToken, Mode: Mode(3), Cipher: c}, safe.Query, safe.Body, ErrInvalidConfig},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := tt.rcv.Receive(tt.query, tt.body)
			wantErr(t, "Receive", err, tt.wantErr)
			if err != nil && m != nil {
				t.Errorf("Receive returned %+v with error %v", m, err)
			}
		})
	}
}

func TestReceiveCompatibleTrustsOnlyTheCiphertext(t *testing.T) {
	// The plaintext fields of a compatible-mode body are not signed; an
	// attacker who rewrites them must not change what is received.
	c := mustCipher(t, v1Key, v1AppID)
	q := mustQuery(t, "timestamp="+v1TS+"&nonce="+v1Nonce+"&msg_signature="+v1MsgSignature)
	forged := strings.Replace(v1Body, "abcdteT", "send money", 1)
	m, err := (&Receiver{Token: v1Token, Mode: ModeCompatible, Cipher: c}).Receive(q, []byte(forged))
	wantErr(t, "Receive", err, nil)
	if !bytes.Contains(m.Data, []byte(`"Content":"abcdteT"`)) {
		t.Errorf("Data = %s, want the signed Content abcdteT", m.Data)
	}
}
