package wechat

import (
	"bytes"
	"testing"
)

func TestTransferReply(t *testing.T) {
	m := &Message{ToUserName: "gh_xxx", FromUserName: "OPENID", MsgType: "text"}
	for _, tt := range []struct {
		f    Format
		want string
	}{
		// The documented forms (protocol §5).
		{FormatXML, `<xml><ToUserName><![CDATA[OPENID]]></ToUserName><FromUserName><![CDATA[gh_xxx]]></FromUserName><CreateTime>1399197672</CreateTime><MsgType><![CDATA[transfer_customer_service]]></MsgType></xml>`},
		{FormatJSON, `{"ToUserName":"OPENID","FromUserName":"gh_xxx","CreateTime":1399197672,"MsgType":"transfer_customer_service"}`},
	} {
		t.Run(tt.f.String(), func(t *testing.T) {
			if got := string(TransferReply(m, tt.f, 1399197672)); got != tt.want {
				t.Errorf("TransferReply =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestEncryptedReplyRoundTrip(t *testing.T) {
	c := mustCipher(t, v1Key, v1AppID)
	inner := TransferReply(&Message{ToUserName: "gh_1", FromUserName: "o1"}, FormatXML, 1)
	for _, f := range []Format{FormatXML, FormatJSON} {
		t.Run(f.String(), func(t *testing.T) {
			sealed, err := SealReply(c, v1Token, inner, 1409735669, v1Nonce)
			wantErr(t, "SealReply", err, nil)
			parsed, err := ParseEncryptedReply(sealed.Encode(f))
			wantErr(t, "ParseEncryptedReply", err, nil)
			if *parsed != *sealed {
				t.Errorf("ParseEncryptedReply(Encode) = %+v, want %+v", *parsed, *sealed)
			}
			got, err := parsed.Open(c, v1Token)
			wantErr(t, "Open", err, nil)
			if !bytes.Equal(got, inner) {
				t.Errorf("Open = %s, want %s", got, inner)
			}
		})
	}
}

func TestEncryptedReplyDeterministicXML(t *testing.T) {
	c := mustCipher(t, oKey, oAppID)
	r, err := SealReplyWithRandom(c, oToken, random16(t, "707722b803182950"), []byte(`{"demo_resp":"good luck"}`), 1713424427, "415670741")
	wantErr(t, "SealReplyWithRandom", err, nil)
	want := `<xml><Encrypt><![CDATA[` + o4Encrypt + `]]></Encrypt><MsgSignature><![CDATA[1b9339964ed2e271e7c7b6ff2b0ef902fc94dea1]]></MsgSignature><TimeStamp>1713424427</TimeStamp><Nonce><![CDATA[415670741]]></Nonce></xml>`
	if got := string(r.Encode(FormatXML)); got != want {
		t.Errorf("Encode(XML) =\n%s\nwant\n%s", got, want)
	}
}

func TestParseEncryptedReplyVariants(t *testing.T) {
	c := mustCipher(t, oKey, oAppID)
	for _, tt := range []struct {
		name    string
		body    string
		wantErr error
	}{
		{"doc JSON", `{"Encrypt":"` + o4Encrypt + `","MsgSignature":"1b9339964ed2e271e7c7b6ff2b0ef902fc94dea1","TimeStamp":1713424427,"Nonce":"415670741"}`, nil},
		{"TimeStamp and Nonce as strings", `{"Encrypt":"` + o4Encrypt + `","MsgSignature":"1b9339964ed2e271e7c7b6ff2b0ef902fc94dea1","TimeStamp":"1713424427","Nonce":"415670741"}`, nil},
		{"Nonce as a number", `{"Encrypt":"` + o4Encrypt + `","MsgSignature":"1b9339964ed2e271e7c7b6ff2b0ef902fc94dea1","TimeStamp":1713424427,"Nonce":415670741}`, nil},
		{"XML with bare Nonce", `<xml><Encrypt><![CDATA[` + o4Encrypt + `]]></Encrypt><MsgSignature><![CDATA[1b9339964ed2e271e7c7b6ff2b0ef902fc94dea1]]></MsgSignature><TimeStamp>1713424427</TimeStamp><Nonce>415670741</Nonce></xml>`, nil},
		{"wrong signature", `{"Encrypt":"` + o4Encrypt + `","MsgSignature":"0b9339964ed2e271e7c7b6ff2b0ef902fc94dea1","TimeStamp":1713424427,"Nonce":"415670741"}`, ErrBadSignature},
		{"wrong TimeStamp", `{"Encrypt":"` + o4Encrypt + `","MsgSignature":"1b9339964ed2e271e7c7b6ff2b0ef902fc94dea1","TimeStamp":1713424428,"Nonce":"415670741"}`, ErrBadSignature},
		{"no signature", `{"Encrypt":"` + o4Encrypt + `","TimeStamp":1713424427,"Nonce":"415670741"}`, ErrBadSignature},
		{"no Encrypt", `{"MsgSignature":"x","TimeStamp":1,"Nonce":"1"}`, ErrMalformed},
		{"TimeStamp not an integer", `{"Encrypt":"a","TimeStamp":"now"}`, ErrMalformed},
		{"plain success", `success`, ErrMalformed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseEncryptedReply([]byte(tt.body))
			if err == nil {
				var got []byte
				got, err = r.Open(c, oToken)
				if err == nil && string(got) != `{"demo_resp":"good luck"}` {
					t.Errorf("Open = %s", got)
				}
			}
			wantErr(t, "ParseEncryptedReply+Open", err, tt.wantErr)
		})
	}
}

func TestReceiverReply(t *testing.T) {
	c := mustCipher(t, oKey, oAppID)
	q := mustQuery(t, o3Query)
	inner := []byte(`{"ToUserName":"o1","FromUserName":"gh_1","CreateTime":1,"MsgType":"transfer_customer_service"}`)

	plain, err := (&Receiver{Token: oToken}).Reply(q, FormatJSON, inner, 1714112446)
	wantErr(t, "Reply(plaintext)", err, nil)
	if !bytes.Equal(plain, inner) {
		t.Errorf("plaintext Reply = %s, want it unchanged", plain)
	}

	for _, mode := range []Mode{ModeCompatible, ModeSafe} {
		for _, f := range []Format{FormatXML, FormatJSON} {
			t.Run(mode.String()+"/"+f.String(), func(t *testing.T) {
				body, err := (&Receiver{Token: oToken, Mode: mode, Cipher: c}).Reply(q, f, inner, 1714112446)
				wantErr(t, "Reply", err, nil)
				if got, _ := DetectFormat(body); got != f {
					t.Errorf("Reply format = %v, want %v", got, f)
				}
				r, err := ParseEncryptedReply(body)
				wantErr(t, "ParseEncryptedReply", err, nil)
				if r.Nonce != q.Get("nonce") || r.TimeStamp != 1714112446 {
					t.Errorf("reply Nonce, TimeStamp = %s, %d, want %s, 1714112446", r.Nonce, r.TimeStamp, q.Get("nonce"))
				}
				got, err := r.Open(c, oToken)
				wantErr(t, "Open", err, nil)
				if !bytes.Equal(got, inner) {
					t.Errorf("Open = %s, want %s", got, inner)
				}
			})
		}
	}

	_, err = (&Receiver{Token: oToken, Mode: ModeSafe}).Reply(q, FormatJSON, inner, 1)
	wantErr(t, "Reply without cipher", err, ErrInvalidConfig)
}
