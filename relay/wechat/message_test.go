package wechat

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

var testHeader = Header{ToUserName: "gh_97417a04a28d", FromUserName: "o9AgO5Kd5ggOC-bXrbNODIiE3bGY", CreateTime: 1714112445}

// bigMsgID is above 2^53: a float64 would round it to ...712.
const bigMsgID = 9007199254740993

func TestDecodeMessageSameForXMLAndJSON(t *testing.T) {
	page := MiniProgramPage{Title: "T", AppID: "wxba5fad812f8e6fb9", PagePath: "pages/index/index?foo=bar", ThumbURL: "https://cdn.example/t.jpg", ThumbMediaID: "thumb"}
	for _, tt := range []struct {
		name  string
		build func(Format) []byte
		want  Message
		data  string
	}{
		{
			name:  "text",
			build: func(f Format) []byte { return TextMessage(f, testHeader, "hi <b>&</b> 你好", bigMsgID) },
			want:  Message{MsgType: "text", MsgID: "9007199254740993"},
			data:  `{"Content":"hi <b>&</b> 你好","CreateTime":1714112445,"FromUserName":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY","MsgId":9007199254740993,"MsgType":"text","ToUserName":"gh_97417a04a28d"}`,
		},
		{
			name: "image",
			build: func(f Format) []byte {
				return ImageMessage(f, testHeader, "https://cdn.example/p.jpg", "media-1", 6054768590064713728)
			},
			want: Message{MsgType: "image", MsgID: "6054768590064713728"},
			data: `{"CreateTime":1714112445,"FromUserName":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY","MediaId":"media-1","MsgId":6054768590064713728,"MsgType":"image","PicUrl":"https://cdn.example/p.jpg","ToUserName":"gh_97417a04a28d"}`,
		},
		{
			name:  "miniprogrampage",
			build: func(f Format) []byte { return MiniProgramPageMessage(f, testHeader, page, 1) },
			want:  Message{MsgType: "miniprogrampage", MsgID: "1"},
			data:  `{"AppId":"wxba5fad812f8e6fb9","CreateTime":1714112445,"FromUserName":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY","MsgId":1,"MsgType":"miniprogrampage","PagePath":"pages/index/index?foo=bar","ThumbMediaId":"thumb","ThumbUrl":"https://cdn.example/t.jpg","Title":"T","ToUserName":"gh_97417a04a28d"}`,
		},
		{
			name:  "user_enter_tempsession",
			build: func(f Format) []byte { return EnterTempSessionEvent(f, testHeader, "order=42]]>") },
			want:  Message{MsgType: "event", Event: "user_enter_tempsession"},
			data:  `{"CreateTime":1714112445,"Event":"user_enter_tempsession","FromUserName":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY","MsgType":"event","SessionFrom":"order=42]]>","ToUserName":"gh_97417a04a28d"}`,
		},
	} {
		for _, f := range []Format{FormatXML, FormatJSON} {
			t.Run(tt.name+"/"+f.String(), func(t *testing.T) {
				want := tt.want
				want.Format, want.ToUserName, want.FromUserName, want.CreateTime = f, testHeader.ToUserName, testHeader.FromUserName, testHeader.CreateTime
				want.Data = []byte(tt.data)
				m, err := DecodeMessage(tt.build(f))
				wantErr(t, "DecodeMessage", err, nil)
				assertMessage(t, m, &want)
			})
		}
	}
}

func TestDecodeMessageDocExamples(t *testing.T) {
	for _, tt := range []struct {
		name, body string
		want       Message
	}{
		{
			name: "text JSON",
			body: `{"ToUserName":"toUser","FromUserName":"fromUser","CreateTime":1482048670,"MsgType":"text","Content":"this is a test","MsgId":1234567890123456}`,
			want: Message{Format: FormatJSON, ToUserName: "toUser", FromUserName: "fromUser", CreateTime: 1482048670, MsgType: "text", MsgID: "1234567890123456",
				Data: []byte(`{"Content":"this is a test","CreateTime":1482048670,"FromUserName":"fromUser","MsgId":1234567890123456,"MsgType":"text","ToUserName":"toUser"}`)},
		},
		{
			name: "event XML",
			body: `<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[fromUser]]></FromUserName><CreateTime>1482048670</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[user_enter_tempsession]]></Event><SessionFrom><![CDATA[sessionFrom]]></SessionFrom></xml>`,
			want: Message{Format: FormatXML, ToUserName: "toUser", FromUserName: "fromUser", CreateTime: 1482048670, MsgType: "event", Event: "user_enter_tempsession",
				Data: []byte(`{"CreateTime":1482048670,"Event":"user_enter_tempsession","FromUserName":"fromUser","MsgType":"event","SessionFrom":"sessionFrom","ToUserName":"toUser"}`)},
		},
		{
			name: "XML with newlines between elements",
			body: v1Inner,
			want: Message{Format: FormatXML, ToUserName: "gh_10f6c3c3ac5a", FromUserName: "oyORnuP8q7ou2gfYjqLzSIWZf0rs", CreateTime: 1409735668, MsgType: "text", MsgID: "6054768590064713728",
				Data: []byte(`{"Content":"abcdteT","CreateTime":1409735668,"FromUserName":"oyORnuP8q7ou2gfYjqLzSIWZf0rs","MsgId":6054768590064713728,"MsgType":"text","ToUserName":"gh_10f6c3c3ac5a"}`)},
		},
		{
			name: "CreateTime as a string, MsgId as a string (cloud-function style)",
			body: `{"ToUserName":"gh_1","FromUserName":"o1","CreateTime":"1482048670","MsgType":"text","Content":"x","MsgId":"6054768590064713728"}`,
			want: Message{Format: FormatJSON, ToUserName: "gh_1", FromUserName: "o1", CreateTime: 1482048670, MsgType: "text", MsgID: "6054768590064713728",
				Data: []byte(`{"Content":"x","CreateTime":"1482048670","FromUserName":"o1","MsgId":"6054768590064713728","MsgType":"text","ToUserName":"gh_1"}`)},
		},
		{
			name: "MsgId beyond uint64 kept exact",
			body: `{"MsgType":"text","MsgId":123456789012345678901234567890}`,
			want: Message{Format: FormatJSON, MsgType: "text", MsgID: "123456789012345678901234567890",
				Data: []byte(`{"MsgId":123456789012345678901234567890,"MsgType":"text"}`)},
		},
		{
			name: "unknown event kept whole",
			body: `<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName><CreateTime>1</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[wxa_media_check]]></Event><isrisky>0</isrisky><trace_id><![CDATA[t1]]></trace_id><result><suggest><![CDATA[pass]]></suggest><label>100</label></result><detail><strategy><![CDATA[content_model]]></strategy></detail><detail><strategy><![CDATA[keyword]]></strategy></detail></xml>`,
			want: Message{Format: FormatXML, ToUserName: "gh_1", FromUserName: "o1", CreateTime: 1, MsgType: "event", Event: "wxa_media_check",
				Data: []byte(`{"CreateTime":1,"Event":"wxa_media_check","FromUserName":"o1","MsgType":"event","ToUserName":"gh_1","detail":[{"strategy":"content_model"},{"strategy":"keyword"}],"isrisky":0,"result":{"label":100,"suggest":"pass"},"trace_id":"t1"}`)},
		},
		{
			name: "unknown MsgType",
			body: `{"MsgType":"hologram","Payload":{"a":[1,2.50,true,null]}}`,
			want: Message{Format: FormatJSON, MsgType: "hologram", Data: []byte(`{"MsgType":"hologram","Payload":{"a":[1,2.50,true,null]}}`)},
		},
		{
			name: "CDATA digits stay a string; bare digits become a number; 007 stays a string",
			body: "<xml>\n  <MsgType><![CDATA[text]]></MsgType>\n  <Content><![CDATA[123]]></Content>\n  <Bare> 42 </Bare><Zero>007</Zero><Neg>-5</Neg><Empty></Empty><Self/><Ws>  <![CDATA[v]]>  </Ws>\n</xml>\n",
			want: Message{Format: FormatXML, MsgType: "text",
				Data: []byte(`{"Bare":42,"Content":"123","Empty":"","MsgType":"text","Neg":-5,"Self":"","Ws":"v","Zero":"007"}`)},
		},
		{
			name: "XML declaration, comments, entities and a CDATA split around ]]>",
			body: `<?xml version="1.0" encoding="UTF-8"?><!-- c --><xml><MsgType>text</MsgType><Content>a &amp; b &lt;c&gt;</Content><S><![CDATA[x]]]]><![CDATA[>y]]></S></xml>`,
			want: Message{Format: FormatXML, MsgType: "text", Data: []byte(`{"Content":"a & b <c>","MsgType":"text","S":"x]]>y"}`)},
		},
		{
			name: "leading blank space before JSON",
			body: " \r\n\t{\"MsgType\":\"text\"}\n",
			want: Message{Format: FormatJSON, MsgType: "text", Data: []byte(`{"MsgType":"text"}`)},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := DecodeMessage([]byte(tt.body))
			wantErr(t, "DecodeMessage", err, nil)
			assertMessage(t, m, &tt.want)
			again, err := DecodeMessage(m.Data)
			wantErr(t, "DecodeMessage(Data)", err, nil)
			if !bytes.Equal(again.Data, m.Data) {
				t.Errorf("Data is not canonical: re-decoding gives %s", again.Data)
			}
		})
	}
}

func TestDecodeMessageMsgIDNeverRounds(t *testing.T) {
	// Every MsgId around 2^53 and near the int64 limit must come out digit
	// for digit, whichever way it was sent.
	for _, id := range []string{"9007199254740992", "9007199254740993", "9007199254740995", "6054768590064713729", "9223372036854775807", "18446744073709551615"} {
		for name, body := range map[string]string{
			"JSON number": `{"MsgType":"text","MsgId":` + id + `}`,
			"JSON string": `{"MsgType":"text","MsgId":"` + id + `"}`,
			"XML":         `<xml><MsgType><![CDATA[text]]></MsgType><MsgId>` + id + `</MsgId></xml>`,
		} {
			m, err := DecodeMessage([]byte(body))
			wantErr(t, name, err, nil)
			if m.MsgID != id || m.DedupKey() != "msg:"+id {
				t.Errorf("%s %s: MsgID = %s, DedupKey = %s", name, id, m.MsgID, m.DedupKey())
			}
			wantData := `{"MsgId":` + id + `,"MsgType":"text"}`
			if name == "JSON string" {
				wantData = `{"MsgId":"` + id + `","MsgType":"text"}`
			}
			if string(m.Data) != wantData {
				t.Errorf("%s %s: Data = %s, want %s", name, id, m.Data, wantData)
			}
		}
	}
}

func TestDecodeMessageErrors(t *testing.T) {
	deep := strings.Repeat("<a>", 100) + strings.Repeat("</a>", 100)
	for _, tt := range []struct{ name, body string }{
		{"empty", ""},
		{"blank", " \n"},
		{"neither format", "success"},
		{"JSON array", `[{"MsgType":"text"}]`},
		{"JSON null", `null`},
		{"JSON truncated", `{"MsgType":"text"`},
		{"JSON trailing data", `{"MsgType":"text"} {}`},
		{"no MsgType", `{"ToUserName":"gh_1","Encrypt":"abc"}`},
		{"empty MsgType", `{"MsgType":""}`},
		{"MsgType is an object", `{"MsgType":{"a":1}}`},
		{"CreateTime fractional", `{"MsgType":"text","CreateTime":1.5}`},
		{"CreateTime not a number", `{"MsgType":"text","CreateTime":"soon"}`},
		{"CreateTime overflows int64", `{"MsgType":"text","CreateTime":99999999999999999999}`},
		{"CreateTime a boolean", `{"MsgType":"text","CreateTime":true}`},
		{"MsgId in exponent form", `{"MsgType":"text","MsgId":6.054768590064714e18}`},
		{"MsgId not digits", `{"MsgType":"text","MsgId":"abc"}`},
		{"MsgId an array", `{"MsgType":"text","MsgId":[1]}`},
		{"XML unclosed", `<xml><MsgType>text</MsgType>`},
		{"XML mismatched tags", `<xml><MsgType>text</Msgtype></xml>`},
		{"XML two roots", `<xml><MsgType>text</MsgType></xml><xml/>`},
		{"XML text after root", `<xml><MsgType>text</MsgType></xml>trailer`},
		{"XML text root", `<xml>text</xml>`},
		{"XML empty root", `<xml/>`},
		{"XML mixed content", `<xml>hello<MsgType>text</MsgType></xml>`},
		{"XML CDATA beside elements", `<xml><![CDATA[x]]><MsgType>text</MsgType></xml>`},
		{"XML DOCTYPE", `<!DOCTYPE xml [<!ENTITY e "boom">]><xml><MsgType>&e;</MsgType></xml>`},
		{"XML unknown entity", `<xml><MsgType>&e;</MsgType></xml>`},
		{"XML nested too deep", "<xml><MsgType>text</MsgType>" + deep + "</xml>"},
		{"XML MsgType repeated", `<xml><MsgType>a</MsgType><MsgType>b</MsgType></xml>`},
		{"XML Content repeated", `<xml><MsgType>text</MsgType><Content><![CDATA[a]]></Content><Content><![CDATA[b]]></Content></xml>`},
		{"XML nested leaf repeated", `<xml><MsgType>event</MsgType><result><label>1</label><label>2</label></result></xml>`},
		{"XML leaf then element of the same name", `<xml><MsgType>event</MsgType><detail>x</detail><detail><a>1</a></detail></xml>`},
		{"XML element then leaf of the same name", `<xml><MsgType>event</MsgType><detail><a>1</a></detail><detail>x</detail></xml>`},
		{"JSON Content repeated", `{"MsgType":"text","Content":"a","Content":"b"}`},
		{"JSON MsgType repeated", `{"MsgType":"text","MsgType":"event"}`},
		{"XML invalid UTF-8", "<xml><MsgType>\xff</MsgType></xml>"},
		{"XML other encoding", `<?xml version="1.0" encoding="GBK"?><xml><MsgType>text</MsgType></xml>`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := DecodeMessage([]byte(tt.body))
			wantErr(t, "DecodeMessage", err, ErrMalformed)
			if m != nil {
				t.Errorf("DecodeMessage = %+v, want nil", m)
			}
		})
	}
}

// TestDecodeMessageRepeatedFieldNamed: the error names the field, cut short
// when the name is long.
func TestDecodeMessageRepeatedFieldNamed(t *testing.T) {
	long := strings.Repeat("N", 5000)
	for body, want := range map[string]string{
		`{"MsgType":"text","Content":"a","Content":"b"}`:                             `field "Content" appears more than once`,
		`<xml><MsgType>text</MsgType><Content>a</Content><Content>b</Content></xml>`: `field "Content" appears more than once`,
		`{"MsgType":"text","` + long + `":1,"` + long + `":2}`:                       `field "` + long[:40] + `…" appears more than once`,
	} {
		_, err := DecodeMessage([]byte(body))
		if err == nil || !strings.Contains(err.Error(), want) || len(err.Error()) > 200 {
			t.Errorf("DecodeMessage(%.60q…) = %v, want an error saying %q in under 200 bytes", body, err, want)
		}
	}
}

func TestDedupKey(t *testing.T) {
	for _, tt := range []struct {
		name string
		m    Message
		want string
	}{
		{"message", Message{MsgType: "text", FromUserName: "o1", CreateTime: 5, MsgID: "6054768590064713728"}, "msg:6054768590064713728"},
		{"event", Message{MsgType: "event", Event: "user_enter_tempsession", FromUserName: "o1", CreateTime: 1482048670}, "evt:o1:1482048670:user_enter_tempsession"},
		{"event carrying a MsgId", Message{MsgType: "event", Event: "x", FromUserName: "o1", CreateTime: 1, MsgID: "7"}, "evt:o1:1:x"},
		{"message without MsgId", Message{MsgType: "hologram", FromUserName: "o1", CreateTime: 2}, "evt:o1:2:hologram"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.m.DedupKey(); got != tt.want {
				t.Errorf("DedupKey() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDecodeMessageDataIsValidJSONObject(t *testing.T) {
	m, err := DecodeMessage([]byte(v2Msg2))
	wantErr(t, "DecodeMessage", err, nil)
	var obj map[string]any
	if err := json.Unmarshal(m.Data, &obj); err != nil {
		t.Fatalf("Data %s is not a JSON object: %v", m.Data, err)
	}
	video, _ := obj["Video"].(map[string]any)
	if video["MediaId"] != "eYJ1MbwPRJtOvIEabaxHs7TX2D-HV71s79GUxqdUkjm6Gs2Ed1KF3ulAOA9H1xG0" {
		t.Errorf("Data = %s, want Video.MediaId kept nested", m.Data)
	}
}

func TestBuildersReplaceCharactersXMLCannotCarry(t *testing.T) {
	for _, f := range []Format{FormatXML, FormatJSON} {
		m, err := DecodeMessage(TextMessage(f, testHeader, "a\x00b\xffc\x1bd]]>e", 1))
		wantErr(t, "DecodeMessage("+f.String()+")", err, nil)
		want := "\"Content\":\"a\ufffdb\ufffdc\ufffdd]]>e\""
		if f == FormatJSON {
			// JSON can carry control characters; only invalid UTF-8 is replaced.
			want = "\"Content\":\"a\\u0000b\ufffdc\\u001bd]]>e\""
		}
		if !bytes.Contains(m.Data, []byte(want)) {
			t.Errorf("%v: Data = %s, want %s", f, m.Data, want)
		}
	}
}
