package wechat

import (
	"bytes"
	"maps"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestPushThenReceive(t *testing.T) {
	c := mustCipher(t, oKey, oAppID)
	for _, mode := range []Mode{ModePlaintext, ModeCompatible, ModeSafe} {
		for _, f := range []Format{FormatXML, FormatJSON} {
			for kind, msg := range map[string][]byte{
				"text":  TextMessage(f, testHeader, "你好 <a href=\"x\">&</a>", bigMsgID),
				"image": ImageMessage(f, testHeader, "https://cdn.example/p.jpg", "m", 42),
				"event": EnterTempSessionEvent(f, testHeader, "from"),
			} {
				t.Run(mode.String()+"/"+f.String()+"/"+kind, func(t *testing.T) {
					p := &Pusher{Token: oToken, Mode: mode, Cipher: c}
					req, err := p.Push(msg, 1714112445, "415670741")
					wantErr(t, "Push", err, nil)

					if got, want := req.ContentType, f.ContentType(); got != want {
						t.Errorf("ContentType = %q, want %q", got, want)
					}
					keys := []string{"nonce", "signature", "timestamp"}
					if mode != ModePlaintext {
						keys = []string{"encrypt_type", "msg_signature", "nonce", "openid", "signature", "timestamp"}
						if req.Query.Get("openid") != testHeader.FromUserName || req.Query.Get("encrypt_type") != "aes" {
							t.Errorf("query = %v, want openid %s and encrypt_type aes", req.Query, testHeader.FromUserName)
						}
					}
					if got := slices.Sorted(maps.Keys(req.Query)); !slices.Equal(got, keys) {
						t.Errorf("query keys = %q, want %q", got, keys)
					}
					checkPushBody(t, mode, f, req.Body, msg)

					rcv := &Receiver{Token: oToken, Mode: mode, Cipher: c, OriginalID: testHeader.ToUserName}
					m, err := rcv.Receive(req.Query, req.Body)
					wantErr(t, "Receive", err, nil)
					want, _ := DecodeMessage(msg)
					assertMessage(t, m, want)
				})
			}
		}
	}
}

// checkPushBody checks the body has the shape WeChat gives it in mode.
func checkPushBody(tb testing.TB, mode Mode, f Format, body, msg []byte) {
	tb.Helper()
	if got, err := DetectFormat(body); err != nil || got != f {
		tb.Errorf("body format = %v, %v, want %v", got, err, f)
	}
	switch mode {
	case ModePlaintext:
		if !bytes.Equal(body, msg) {
			tb.Errorf("plaintext body = %s, want the message %s", body, msg)
		}
	case ModeSafe:
		obj, _, err := decodeObject(body)
		if err != nil || len(obj) != 2 || obj["ToUserName"] != testHeader.ToUserName || obj["Encrypt"] == "" {
			tb.Errorf("safe body = %s, want only ToUserName and Encrypt", body)
		}
	case ModeCompatible:
		// The plaintext fields, unchanged, plus Encrypt.
		m, err := DecodeMessage(body)
		want, _ := DecodeMessage(msg)
		if err != nil || m.MsgType != want.MsgType || m.MsgID != want.MsgID || !bytes.Contains(m.Data, []byte(`"Encrypt":"`)) {
			tb.Errorf("compatible body = %s, want the message's fields and Encrypt", body)
		}
	}
}

func TestPushRawQueryOrder(t *testing.T) {
	p := &Pusher{Token: oToken, Mode: ModeSafe, Cipher: mustCipher(t, oKey, oAppID)}
	req, err := p.Push([]byte(o3Inner), 1714112445, "415670741")
	wantErr(t, "Push", err, nil)
	var names []string
	for kv := range strings.SplitSeq(req.RawQuery(), "&") {
		name, _, _ := strings.Cut(kv, "=")
		names = append(names, name)
	}
	if want := pushQueryOrder; !slices.Equal(names, want) {
		t.Errorf("RawQuery names = %q, want %q", names, want)
	}
	if q, _ := url.ParseQuery(req.RawQuery()); q.Encode() != req.Query.Encode() {
		t.Errorf("RawQuery %s does not encode Query %s", req.RawQuery(), req.Query.Encode())
	}
}

func TestPushMislabelledBodyStillReceived(t *testing.T) {
	// In 2018 JSON bodies arrived labelled text/xml. Receive never sees
	// Content-Type, so a wrong label cannot matter; this pins that down.
	c := mustCipher(t, oKey, oAppID)
	p := &Pusher{Token: oToken, Mode: ModeSafe, Cipher: c}
	req, err := p.Push(TextMessage(FormatJSON, testHeader, "hi", 1), 1714112445, "1")
	wantErr(t, "Push", err, nil)
	req.ContentType = FormatXML.ContentType()
	m, err := (&Receiver{Token: oToken, Mode: ModeSafe, Cipher: c}).Receive(req.Query, req.Body)
	wantErr(t, "Receive", err, nil)
	if m.Format != FormatJSON {
		t.Errorf("Format = %v, want json", m.Format)
	}
}

func TestPushErrors(t *testing.T) {
	c := mustCipher(t, oKey, oAppID)
	msg := TextMessage(FormatXML, testHeader, "hi", 1)
	for _, tt := range []struct {
		name    string
		p       Pusher
		msg     []byte
		wantErr error
	}{
		{"empty token", Pusher{Mode: ModePlaintext}, msg, ErrInvalidConfig},
		{"safe without cipher", Pusher{Token: "t", Mode: ModeSafe}, msg, ErrInvalidConfig},
		{"compatible without cipher", Pusher{Token: "t", Mode: ModeCompatible}, msg, ErrInvalidConfig},
		{"unknown mode", Pusher{Token: "t", Mode: Mode(7), Cipher: c}, msg, ErrInvalidConfig},
		{"not a message", Pusher{Token: "t", Mode: ModeSafe, Cipher: c}, []byte(`{"hello":1}`), ErrMalformed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.p.Push(tt.msg, 1, "n")
			wantErr(t, "Push", err, tt.wantErr)
		})
	}
}
