package relay_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/tenant"
)

func TestNewEventPayload(t *testing.T) {
	tn := &tenant.Tenant{ID: "tn_a", AppID: "wx0123456789abcdef"}
	h := wechat.Header{ToUserName: "gh_1", FromUserName: "o_user", CreateTime: 1714037059}
	received := time.Date(2026, 11, 23, 8, 0, 0, 123456789, time.FixedZone("CST", 8*3600))
	var payloads []map[string]any
	for _, f := range []wechat.Format{wechat.FormatJSON, wechat.FormatXML} {
		m, err := wechat.DecodeMessage(wechat.TextMessage(f, h, `<a href="x">A&B</a>`, 9007199254740993))
		if err != nil {
			t.Fatal(err)
		}
		e, err := relay.NewEvent(tn, m, []byte("raw"), received)
		if err != nil {
			t.Fatal(err)
		}
		if e.DedupKey != "msg:9007199254740993" || e.Type != "message.text" || e.OpenID != "o_user" || e.State != relay.StatePending {
			t.Errorf("%s: event %+v", f, e)
		}
		if !strings.Contains(string(e.Payload), `<a href=\"x\">A&B</a>`) {
			t.Errorf("%s: payload HTML-escaped: %s", f, e.Payload)
		}
		if !strings.Contains(string(e.Payload), `"MsgId":9007199254740993`) {
			t.Errorf("%s: MsgId not exact: %s", f, e.Payload)
		}
		var p map[string]any
		if err := json.Unmarshal(e.Payload, &p); err != nil {
			t.Fatal(err)
		}
		for k, want := range map[string]string{
			"type": "message.text", "tenant_id": "tn_a", "appid": "wx0123456789abcdef", "openid": "o_user",
			"create_time": "2024-04-25T09:24:19Z", "receive_time": "2026-11-23T00:00:00.123456Z", "id": string(e.ID),
		} {
			if p[k] != want {
				t.Errorf("%s: payload.%s = %v, want %s", f, k, p[k], want)
			}
		}
		delete(p, "id")
		payloads = append(payloads, p)
	}
	j, _ := json.Marshal(payloads[0])
	x, _ := json.Marshal(payloads[1])
	if string(j) != string(x) {
		t.Errorf("JSON and XML pushes give different payloads:\n%s\n%s", j, x)
	}
}

func TestEventTypes(t *testing.T) {
	for _, tt := range []struct {
		body, want string
	}{
		{`{"MsgType":"text","MsgId":1,"FromUserName":"o","CreateTime":1}`, "message.text"},
		{`{"MsgType":"event","Event":"user_enter_tempsession","FromUserName":"o","CreateTime":1}`, "event.user_enter_tempsession"},
		{`{"MsgType":"event","FromUserName":"o","CreateTime":1}`, "event.unknown"},
		{`{"MsgType":"hologram","MsgId":2,"FromUserName":"o","CreateTime":1}`, "message.hologram"},
	} {
		m, err := wechat.DecodeMessage([]byte(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		if got := relay.EventType(m); got != tt.want {
			t.Errorf("EventType(%s) = %q, want %q", tt.body, got, tt.want)
		}
	}
}
