package wechat

import "testing"

func TestParseEnvelope(t *testing.T) {
	for _, tt := range []struct {
		name    string
		body    string
		want    Envelope
		wantErr error
	}{
		{"safe JSON", o3Body, Envelope{Format: FormatJSON, ToUserName: "gh_97417a04a28d", Encrypt: mustEnvelope(t, o3Body).Encrypt}, nil},
		{"safe XML", `<xml><ToUserName><![CDATA[gh_1]]></ToUserName><Encrypt><![CDATA[abc=]]></Encrypt></xml>`, Envelope{Format: FormatXML, ToUserName: "gh_1", Encrypt: "abc="}, nil},
		{"compatible XML", v1Body, Envelope{Format: FormatXML, ToUserName: "gh_10f6c3c3ac5a", Encrypt: v1Encrypt}, nil},
		{"compatible JSON", `{"ToUserName":"gh_1","MsgType":"text","CreateTime":1,"Encrypt":"abc="}`, Envelope{Format: FormatJSON, ToUserName: "gh_1", Encrypt: "abc="}, nil},
		{"JSON labelled nothing, leading newline", "\n{\"Encrypt\":\"abc=\"}", Envelope{Format: FormatJSON, Encrypt: "abc="}, nil},
		{"plaintext push", o2Body, Envelope{}, ErrMalformed},
		{"empty Encrypt", `{"ToUserName":"gh_1","Encrypt":""}`, Envelope{}, ErrMalformed},
		{"Encrypt an object", `{"Encrypt":{"a":"b"}}`, Envelope{}, ErrMalformed},
		{"Encrypt repeated in XML", `<xml><Encrypt>a</Encrypt><Encrypt>b</Encrypt></xml>`, Envelope{}, ErrMalformed},
		{"form body", `Encrypt=abc`, Envelope{}, ErrMalformed},
		{"empty", ``, Envelope{}, ErrMalformed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEnvelope([]byte(tt.body))
			wantErr(t, "ParseEnvelope", err, tt.wantErr)
			if err == nil && *got != tt.want {
				t.Errorf("ParseEnvelope = %+v, want %+v", *got, tt.want)
			}
		})
	}
}

func TestDetectFormat(t *testing.T) {
	for _, tt := range []struct {
		body    string
		want    Format
		wantErr error
	}{
		{"{}", FormatJSON, nil},
		{" \t\r\n<xml/>", FormatXML, nil},
		{"\ufeff<xml/>", 0, ErrMalformed}, // a BOM is not blank
		{"[]", 0, ErrMalformed},
		{"", 0, ErrMalformed},
	} {
		got, err := DetectFormat([]byte(tt.body))
		wantErr(t, "DetectFormat("+tt.body+")", err, tt.wantErr)
		if err == nil && got != tt.want {
			t.Errorf("DetectFormat(%q) = %v, want %v", tt.body, got, tt.want)
		}
	}
}

func TestParseFormatAndMode(t *testing.T) {
	for s, want := range map[string]Format{"xml": FormatXML, "JSON": FormatJSON} {
		if got, err := ParseFormat(s); err != nil || got != want || got.String() != want.String() {
			t.Errorf("ParseFormat(%q) = %v, %v, want %v", s, got, err, want)
		}
	}
	if _, err := ParseFormat("yaml"); !errorsIsAny(err, ErrInvalidConfig) {
		t.Errorf("ParseFormat(yaml) error = %v, want ErrInvalidConfig", err)
	}
	for s, want := range map[string]Mode{"plaintext": ModePlaintext, "Compatible": ModeCompatible, "safe": ModeSafe} {
		if got, err := ParseMode(s); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %v, %v, want %v", s, got, err, want)
		}
	}
	if _, err := ParseMode("aes"); !errorsIsAny(err, ErrInvalidConfig) {
		t.Errorf("ParseMode(aes) error = %v, want ErrInvalidConfig", err)
	}
	if got := Mode(9).String(); got != "Mode(9)" {
		t.Errorf("Mode(9).String() = %q", got)
	}
	if FormatXML.ContentType() != "text/xml" || FormatJSON.ContentType() != "application/json" {
		t.Errorf("ContentType = %q, %q", FormatXML.ContentType(), FormatJSON.ContentType())
	}
}
