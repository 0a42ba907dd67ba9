package wechat

import (
	"bytes"
	"errors"
	"testing"
)

// genericMessage and genericEnvelope are DecodeMessage and ParseEnvelope
// without the fast path of flat.go.
func genericMessage(body []byte) (*Message, error) {
	obj, f, err := decodeObject(body)
	if err != nil {
		return nil, err
	}
	r := fields{obj: obj}
	m := &Message{Format: f, ToUserName: r.string("ToUserName"), FromUserName: r.string("FromUserName"),
		CreateTime: r.int64("CreateTime"), MsgType: r.string("MsgType"), Event: r.string("Event"), MsgID: r.decimal("MsgId")}
	if r.err != nil {
		return nil, r.err
	}
	if m.MsgType == "" {
		return nil, errors.New("no MsgType")
	}
	if m.Data, err = canonicalJSON(obj); err != nil {
		return nil, err
	}
	return m, nil
}

func genericEnvelope(body []byte) (*Envelope, error) {
	obj, f, err := decodeObject(body)
	if err != nil {
		return nil, err
	}
	r := fields{obj: obj}
	env := &Envelope{Format: f, ToUserName: r.string("ToUserName"), Encrypt: r.string("Encrypt")}
	if r.err != nil {
		return nil, r.err
	}
	if env.Encrypt == "" {
		return nil, errors.New("no Encrypt")
	}
	return env, nil
}

// checkFast fails t if the fast path takes body and decides otherwise than
// the generic path.
func checkFast(t *testing.T, body []byte) {
	t.Helper()
	if m, ok := decodeMessageFast(body); ok {
		want, err := genericMessage(body)
		if err != nil {
			t.Fatalf("fast path decoded %q, generic path says %v", body, err)
		}
		if !(m.Format == want.Format && m.ToUserName == want.ToUserName && m.FromUserName == want.FromUserName &&
			m.CreateTime == want.CreateTime && m.MsgType == want.MsgType && m.Event == want.Event && m.MsgID == want.MsgID && bytes.Equal(m.Data, want.Data)) {
			t.Fatalf("fast path decoded %q as\n%+v\ngeneric path as\n%+v\nData %s\nwant %s", body, *m, *want, m.Data, want.Data)
		}
	}
	if env, ok := parseEnvelopeFast(body); ok {
		want, err := genericEnvelope(body)
		if err != nil {
			t.Fatalf("fast path parsed envelope %q, generic path says %v", body, err)
		}
		if *env != *want {
			t.Fatalf("fast path parsed %q as %+v, generic path as %+v", body, *env, *want)
		}
	}
}

var flatSeeds = []string{
	`{"ToUserName":"gh_1","FromUserName":"o1","CreateTime":1714037059,"MsgType":"text","Content":"hi <&> ]]>","MsgId":6054768590064713728}`,
	` {"MsgType":"text","MsgId":"6054768590064713728","CreateTime":"1482048670"} `,
	`{"MsgType":"event","Event":"user_enter_tempsession","SessionFrom":"s","CreateTime":1.5}`,
	`{"MsgType":"text","MsgId":1e3}`,
	`{"MsgType":"text","B":1,"A":2,"a":-0.5e+7,"é":"ü"}`,
	`{"MsgType":"text","MsgType":"image"}`,
	`{"ToUserName":"gh_1","Encrypt":"abc+/="}`,
	`{"Encrypt":1}`,
	`{"Encrypt":""}`,
	`{}`,
	`{"MsgType":"x" , "Content" : "\u2028"}`,
	"{\"MsgType\":\"x\",\"Content\":\"\u2028\"}",
	"{\"MsgType\":\"x\",\"Content\":\"\xff\"}",
	`{"MsgType":"text","CreateTime":"+5","MsgId":"007"}`,
	`{"MsgType":"text"}x`,
	`{"MsgType":"text",}`,
	`{"MsgType":01}`,
}

// xmlSeeds are XML bodies as WeChat writes them (the first four) and as it
// does not.
var xmlSeeds = []string{
	`<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName><CreateTime>1714037059</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi <&> é]]></Content><MsgId>6054768590064713728</MsgId></xml>`,
	"<xml>\n  <MsgType><![CDATA[event]]></MsgType>\n  <Event><![CDATA[user_enter_tempsession]]></Event>\n  <CreateTime>1482048670</CreateTime>\n</xml>\n",
	`<xml><ToUserName><![CDATA[gh_1]]></ToUserName><Encrypt><![CDATA[abc+/=]]></Encrypt></xml>`,
	`<xml><MsgType><![CDATA[text]]></MsgType><MsgId><![CDATA[6054768590064713728]]></MsgId><CreateTime><![CDATA[12]]></CreateTime></xml>`,
	`<?xml version="1.0"?><xml><MsgType><![CDATA[text]]></MsgType></xml>`,
	`<xml a="1"><MsgType><![CDATA[text]]></MsgType></xml>`,
	`<xml><MsgType a="1"><![CDATA[text]]></MsgType></xml>`,
	`<xml><MsgType>text</MsgType></xml>`,
	`<xml><MsgType><![CDATA[text]]></MsgType><Content>a &amp; b</Content></xml>`,
	`<xml><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[a]]><![CDATA[b]]></Content></xml>`,
	`<xml><MsgType><![CDATA[text]]></MsgType><Content> <![CDATA[a]]></Content></xml>`,
	`<xml><MsgType><![CDATA[text]]></MsgType><Content><![CDATA["q" \ ]]></Content></xml>`,
	"<xml><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[a\r\nb]]></Content></xml>",
	"<xml><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[\u2028 \uffff]]></Content></xml>",
	`<xml><MsgType><![CDATA[text]]></MsgType><MsgType><![CDATA[image]]></MsgType></xml>`,
	`<xml><MsgType><![CDATA[text]]></MsgType><List><Item><![CDATA[x]]></Item></List></xml>`,
	`<xml><MsgType><![CDATA[text]]></MsgType><Empty></Empty><Self/></xml>`,
	`<xml><MsgType><![CDATA[text]]></MsgType></xm>`,
	`<xml><MsgType><![CDATA[text]]></MsgType></xml><xml></xml>`,
	`<xml><MsgType><![CDATA[text]]></MsgType><CreateTime>-0</CreateTime><N>01</N><M> 5 </M></xml>`,
	`<xml><1a><![CDATA[x]]></1a><MsgType><![CDATA[text]]></MsgType></xml>`,
	`<xml></xml>`,
	`<xml><MsgType><![CDATA[text]]></MsgType>`,
}

func TestFlatFastPathMatchesGeneric(t *testing.T) {
	for _, s := range append(flatSeeds, xmlSeeds...) {
		checkFast(t, []byte(s))
	}
	for _, s := range messageSeeds() {
		checkFast(t, s)
	}
	for _, f := range []Format{FormatJSON, FormatXML} {
		body := TextMessage(f, testHeader, "hello there", bigMsgID)
		if m, ok := decodeMessageFast(body); !ok || m.Format != f {
			t.Fatalf("fast path refused a plain %s text message: %s", f, body)
		}
	}
	for _, body := range []string{xmlSeeds[0], xmlSeeds[1], xmlSeeds[3]} {
		if _, ok := decodeMessageFast([]byte(body)); !ok {
			t.Errorf("fast path refused %s", body)
		}
	}
	if _, ok := parseEnvelopeFast([]byte(xmlSeeds[2])); !ok {
		t.Errorf("fast path refused the XML envelope %s", xmlSeeds[2])
	}
	if _, ok := decodeMessageFast([]byte(flatSeeds[0])); !ok {
		t.Fatal("fast path refused a plain text message")
	}
}

func FuzzFlatFastPath(f *testing.F) {
	for _, s := range append(flatSeeds, xmlSeeds...) {
		f.Add([]byte(s))
	}
	for _, s := range messageSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body []byte) { checkFast(t, body) })
}

// BenchmarkReceive measures opening one safe-mode push:
//
//	go test ./relay/wechat -run '^$' -bench Receive -benchmem
func BenchmarkReceive(b *testing.B) {
	for _, f := range []Format{FormatJSON, FormatXML} {
		b.Run(f.String(), func(b *testing.B) {
			c, err := NewCipher("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wx0123456789abcdef")
			if err != nil {
				b.Fatal(err)
			}
			p := &Pusher{Token: "t", Mode: ModeSafe, Cipher: c}
			req, err := p.Push(TextMessage(f, testHeader, "hello there", bigMsgID), 1714037059, "1")
			if err != nil {
				b.Fatal(err)
			}
			r := &Receiver{Token: "t", Mode: ModeSafe, Cipher: c}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Receive(req.Query, req.Body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
