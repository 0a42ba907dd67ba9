package wechat

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// messageSeeds are real and built message bodies in both formats.
func messageSeeds() [][]byte {
	seeds := [][]byte{
		[]byte(o2Body), []byte(o3Inner), []byte(v1Inner), []byte(v2Msg2), []byte(v3Reply), []byte(v5PowerDecrypted),
		[]byte(`{"MsgType":"text","MsgId":"6054768590064713728","CreateTime":"1482048670"}`),
		[]byte(`<xml><MsgType>event</MsgType><a><b>1</b><b><![CDATA[2]]></b></a><c/></xml>`),
	}
	for _, f := range []Format{FormatXML, FormatJSON} {
		seeds = append(seeds,
			TextMessage(f, testHeader, "hi ]]> <&>", bigMsgID),
			MiniProgramPageMessage(f, testHeader, MiniProgramPage{Title: "t", AppID: "wx1"}, 1),
			EnterTempSessionEvent(f, testHeader, "s"),
		)
	}
	return seeds
}

func FuzzParseEnvelope(f *testing.F) {
	for _, s := range []string{o3Body, v1Body, v3Body, o2Body, `<xml><Encrypt>a</Encrypt></xml>`, `{"Encrypt":1}`, "", "<"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		env, err := ParseEnvelope(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseEnvelope error %v is not ErrMalformed", err)
			}
			return
		}
		if env.Encrypt == "" {
			t.Fatal("ParseEnvelope succeeded without Encrypt")
		}
		if f, _ := DetectFormat(body); f != env.Format {
			t.Fatalf("Format = %v, DetectFormat says %v", env.Format, f)
		}
	})
}

func FuzzDecodeMessage(f *testing.F) {
	for _, s := range messageSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := DecodeMessage(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodeMessage error %v is not ErrMalformed", err)
			}
			return
		}
		if m.MsgType == "" || m.DedupKey() == "" {
			t.Fatalf("decoded %+v without MsgType or DedupKey", m)
		}
		if !json.Valid(m.Data) || m.Data[0] != '{' {
			t.Fatalf("Data %q is not a JSON object", m.Data)
		}
		// Data is canonical: decoding it again changes nothing but the
		// format, and XML and JSON agree on every typed field.
		again, err := DecodeMessage(m.Data)
		if err != nil {
			t.Fatalf("DecodeMessage(Data %s): %v", m.Data, err)
		}
		want := *m
		want.Format = FormatJSON
		if again.ToUserName != want.ToUserName || again.FromUserName != want.FromUserName || again.CreateTime != want.CreateTime ||
			again.MsgType != want.MsgType || again.Event != want.Event || again.MsgID != want.MsgID || !bytes.Equal(again.Data, want.Data) {
			t.Fatalf("re-decoded Data gives\n%+v\nwant\n%+v", *again, want)
		}
	})
}

func FuzzDecrypt(f *testing.F) {
	c := mustCipher(f, v1Key, v1AppID)
	other := mustCipher(f, v1Key, "wx0000000000000001")
	for _, s := range []string{v1Encrypt, mustEnvelope(f, o3Body).Encrypt, o4Encrypt, v2Encrypt1, v2Encrypt2, v3EchoEncrypted, "", "====", "AAAAAAAAAAAAAAAAAAAAAA=="} {
		f.Add(s, []byte(v1Inner), []byte(v2Random))
	}
	f.Add("", []byte{}, []byte{})
	f.Add("x", bytes.Repeat([]byte{0}, 26), []byte("1234567890123456"))
	f.Fuzz(func(t *testing.T, encrypted string, msg, random []byte) {
		// Any input: an answer or a sentinel, never a panic.
		if _, err := c.Decrypt(encrypted); err != nil && !errors.Is(err, ErrBadCiphertext) && !errors.Is(err, ErrAppIDMismatch) {
			t.Fatalf("Decrypt error %v is not a sentinel", err)
		}

		var r [RandomLen]byte
		copy(r[:], random)
		enc, err := c.EncryptWithRandom(r, msg)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Decrypt(enc)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("Decrypt(Encrypt(%q)) = %q, %v", msg, got, err)
		}
		if _, err := other.Decrypt(enc); !errors.Is(err, ErrAppIDMismatch) {
			t.Fatalf("Decrypt for another appid: error = %v, want ErrAppIDMismatch", err)
		}
	})
}

func FuzzParseEncryptedReply(f *testing.F) {
	c := mustCipher(f, oKey, oAppID)
	for _, s := range []string{v1Reply, `{"Encrypt":"` + o4Encrypt + `","MsgSignature":"1b9339964ed2e271e7c7b6ff2b0ef902fc94dea1","TimeStamp":"1713424427","Nonce":415670741}`, `{}`, `success`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseEncryptedReply(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseEncryptedReply error %v is not ErrMalformed", err)
			}
			return
		}
		if _, err := r.Open(c, oToken); err != nil && !errors.Is(err, ErrBadSignature) &&
			!errors.Is(err, ErrBadCiphertext) && !errors.Is(err, ErrAppIDMismatch) {
			t.Fatalf("Open error %v is not a sentinel", err)
		}
		// Whatever parsed re-encodes to a reply that parses the same (in XML,
		// if XML can carry its strings unchanged).
		for _, f := range []Format{FormatXML, FormatJSON} {
			if f == FormatXML && !xmlSafe(r.Encrypt, r.MsgSignature, r.Nonce) {
				continue
			}
			back, err := ParseEncryptedReply(r.Encode(f))
			if err != nil || *back != *r {
				t.Fatalf("ParseEncryptedReply(Encode(%v)) = %+v, %v, want %+v", f, back, err, *r)
			}
		}
	})
}

func FuzzBuildMessage(f *testing.F) {
	f.Add("gh_1", "o1", int64(1714112445), "hi <a href=\"x\">&</a> ]]> 你好", int64(bigMsgID))
	f.Add("", "", int64(-1), "", int64(0))
	f.Add(" 42 ", "007", int64(9223372036854775807), "\n\t", int64(-9223372036854775808))
	f.Fuzz(func(t *testing.T, to, from string, createTime int64, content string, msgID int64) {
		h := Header{ToUserName: to, FromUserName: from, CreateTime: createTime}
		for _, build := range []func(Format) []byte{
			func(f Format) []byte { return TextMessage(f, h, content, msgID) },
			func(f Format) []byte { return ImageMessage(f, h, content, from, msgID) },
			func(f Format) []byte {
				return MiniProgramPageMessage(f, h, MiniProgramPage{Title: content, PagePath: to}, msgID)
			},
			func(f Format) []byte { return EnterTempSessionEvent(f, h, content) },
		} {
			x, errX := DecodeMessage(build(FormatXML))
			j, errJ := DecodeMessage(build(FormatJSON))
			if errX != nil || errJ != nil {
				t.Fatalf("DecodeMessage: xml %v, json %v", errX, errJ)
			}
			if !xmlSafe(to, from, content) {
				continue // XML replaced or normalised some character
			}
			if !bytes.Equal(x.Data, j.Data) || x.ToUserName != to || x.FromUserName != from || x.CreateTime != createTime {
				t.Fatalf("XML and JSON disagree:\n%+v\n%+v", *x, *j)
			}
		}
	})
}

// xmlSafe reports whether XML carries every s unchanged: valid UTF-8 of
// XML characters, with no "\r" for a reader to normalise.
func xmlSafe(ss ...string) bool {
	for _, s := range ss {
		if !utf8.ValidString(s) || strings.ContainsRune(s, '\r') {
			return false
		}
		for _, r := range s {
			if !isXMLChar(r) {
				return false
			}
		}
	}
	return true
}
