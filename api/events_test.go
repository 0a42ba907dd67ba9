package api_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat"
)

// push sends a safe-mode JSON text push for tenant c, as WeChat would.
func (e *env) push(c created, appid, openid string, msgID int64) {
	e.t.Helper()
	cipher, err := wechat.NewCipher(testAESKey, appid)
	if err != nil {
		e.t.Fatal(err)
	}
	p := &wechat.Pusher{Token: testToken, Mode: wechat.ModeSafe, Cipher: cipher}
	msg := wechat.TextMessage(wechat.FormatJSON, wechat.Header{ToUserName: "gh_x", FromUserName: openid, CreateTime: time.Now().Unix()}, "hello", msgID)
	req, err := p.Push(msg, time.Now().Unix(), "1")
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := http.Post(e.url+"/wx/"+c.id+"?"+req.RawQuery(), req.ContentType, bytes.NewReader(req.Body))
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		e.t.Fatalf("push answered %d", resp.StatusCode)
	}
}

func TestEventsAPI(t *testing.T) {
	e := newEnv(t)
	body := validTenant()
	a := e.createTenant(body)
	b := e.createTenant(validTenant())
	const n = 5
	for i := range n {
		e.push(a, body["appid"].(string), fmt.Sprintf("o_%d", i), 9007199254740993+int64(i))
	}

	// Newest first, paged.
	var ids []string
	token := ""
	for {
		r := e.mustStatus(e.do("GET", "/v1/tenants/"+a.id+"/events?page_size=2&page_token="+token, a.apiKey, nil), 200)
		evs, _ := r.body["events"].([]any)
		for _, ev := range evs {
			m := ev.(map[string]any)
			ids = append(ids, m["id"].(string))
			if m["type"] != "message.text" || m["state"] != "STATE_PENDING" || m["receive_time"] == nil {
				t.Errorf("listed event %v", m)
			}
			if _, has := m["payload"]; has {
				t.Errorf("list carries payloads: %v", m)
			}
		}
		if token, _ = r.body["next_page_token"].(string); token == "" {
			break
		}
	}
	if len(ids) != n {
		t.Fatalf("listed %d events, want %d", len(ids), n)
	}
	newest := e.mustStatus(e.do("GET", "/v1/tenants/"+a.id+"/events/"+ids[0], a.apiKey, nil), 200)
	if newest.body["openid"] != fmt.Sprintf("o_%d", n-1) {
		t.Errorf("first listed event is from %v, want the newest push", newest.body["openid"])
	}
	payload, _ := newest.body["payload"].(map[string]any)
	data, _ := payload["data"].(map[string]any)
	if payload["id"] != ids[0] || payload["tenant_id"] != a.id || data["Content"] != "hello" {
		t.Errorf("payload = %v", payload)
	}
	// MsgId is beyond 2^53: exact, as a string.
	if got, want := data["MsgId"], fmt.Sprint(9007199254740993+n-1); got != want {
		t.Errorf("payload.data.MsgId = %v (%T), want the exact string %s", got, got, want)
	}
	if !strings.Contains(newest.raw, `"attempt_count"`) && !strings.Contains(newest.raw, `"state"`) {
		t.Errorf("event lacks state: %s", newest.raw)
	}
	// The body as delivered, byte for byte: MsgId a number, WeChat's
	// field order; and when the (first) attempt is due.
	delivered, _ := newest.body["delivered_body"].(string)
	if !strings.Contains(delivered, fmt.Sprintf(`"MsgId":%d`, 9007199254740993+n-1)) || !strings.HasPrefix(delivered, `{"id":"`+ids[0]+`","type":"message.text"`) {
		t.Errorf("delivered_body = %s", delivered)
	}
	if next, _ := newest.body["next_attempt_time"].(string); next == "" {
		t.Errorf("a pending event has no next_attempt_time: %s", newest.raw)
	}

	// Filters: by type, state and receive time; a bad one names itself.
	count := func(query string) int {
		t.Helper()
		r := e.mustStatus(e.do("GET", "/v1/tenants/"+a.id+"/events?"+query, a.apiKey, nil), 200)
		evs, _ := r.body["events"].([]any)
		return len(evs)
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	for query, want := range map[string]int{
		"type=message.text": n, "type=event.subscribe": 0,
		"state=STATE_PENDING": n, "state=STATE_DELIVERED": 0,
		"received_after=" + past: n, "received_after=" + future: 0,
		"received_before=" + past: 0, "received_before=" + future + "&type=message.text&state=STATE_PENDING": n,
	} {
		if got := count(query); got != want {
			t.Errorf("?%s listed %d events, want %d", query, got, want)
		}
	}
	for query, field := range map[string]string{
		"type=text":         "type",
		"state=STATE_BOGUS": "state",
		"received_after=" + future + "&received_before=" + past: "received_before",
	} {
		r := e.do("GET", "/v1/tenants/"+a.id+"/events?"+query, a.apiKey, nil)
		if r.status != 400 || !strings.Contains(r.raw, field) {
			t.Errorf("?%s answered %d %s, want 400 naming %s", query, r.status, r.raw, field)
		}
	}

	// Scoping: tenant B sees none of A's events, by either route.
	e.mustStatus(e.do("GET", "/v1/tenants/"+a.id+"/events", b.apiKey, nil), 403)
	e.mustStatus(e.do("GET", "/v1/tenants/"+b.id+"/events/"+ids[0], b.apiKey, nil), 404)
	e.mustStatus(e.do("GET", "/v1/tenants/"+a.id+"/events/"+ids[0], e.admin, nil), 200)
	e.mustStatus(e.do("GET", "/v1/tenants/"+a.id+"/events/evt_nope", a.apiKey, nil), 404)
	e.mustStatus(e.do("GET", "/v1/tenants/"+a.id+"/events?page_token=bogus", a.apiKey, nil), 400)

	// Redelivery: the tenant may queue its own event again, not another's.
	r := e.mustStatus(e.do("POST", "/v1/tenants/"+a.id+"/events/"+ids[0]+":redeliver", a.apiKey, "{}"), 200)
	if r.body["id"] != ids[0] || r.body["state"] != "STATE_PENDING" {
		t.Errorf("redeliver answered %s", r.raw)
	}
	e.mustStatus(e.do("POST", "/v1/tenants/"+a.id+"/events/"+ids[0]+":redeliver", b.apiKey, "{}"), 403)
	e.mustStatus(e.do("POST", "/v1/tenants/"+b.id+"/events/"+ids[0]+":redeliver", b.apiKey, "{}"), 404)
}

// TestSendTestEvent: a test event is stored for delivery like a push,
// carries the note and who sent it, and follows the API's access rules.
func TestSendTestEvent(t *testing.T) {
	e := newEnv(t)
	c := e.createTenant(validTenant())
	other := validTenant()
	other["appid"] = "wx00000000000000ab"
	d := e.createTenant(other)

	r := e.mustStatus(e.do("POST", "/v1/tenants/"+c.id+"/events:sendTest", c.apiKey, `{"note":"is the shop's endpoint up?"}`), 200)
	payload, _ := r.body["payload"].(map[string]any)
	data, _ := payload["data"].(map[string]any)
	if r.body["type"] != "wxrelay.test" || r.body["state"] != "STATE_PENDING" || payload["tenant_id"] != c.id ||
		data["note"] != "is the shop's endpoint up?" || data["sent_by"] != "tenant" {
		t.Errorf("test event %s, want a pending wxrelay.test with the note, sent by the tenant", r.raw)
	}
	id, _ := r.body["id"].(string)
	if got := e.mustStatus(e.do("GET", "/v1/tenants/"+c.id+"/events/"+id, e.admin, nil), 200); got.body["type"] != "wxrelay.test" {
		t.Errorf("the test event is not stored: %s", got.raw)
	}
	if r := e.mustStatus(e.do("POST", "/v1/tenants/"+c.id+"/events:sendTest", e.admin, `{}`), 200); r.body["payload"].(map[string]any)["data"].(map[string]any)["sent_by"] != "admin" {
		t.Errorf("an admin's test event: %s", r.raw)
	}
	e.mustStatus(e.do("POST", "/v1/tenants/"+c.id+"/events:sendTest", d.apiKey, `{}`), 403)
	r = e.mustStatus(e.do("POST", "/v1/tenants/"+c.id+"/events:sendTest", e.admin, `{"note":"`+strings.Repeat("x", 201)+`"}`), 400)
	if msg, _ := r.body["message"].(string); !strings.HasPrefix(msg, "note:") {
		t.Errorf("a note too long: %s", r.raw)
	}
}

// TestSearch: an admin finds a tenant by its id or appid, and events by
// id or openid, across tenants; a tenant's key may not search.
func TestSearch(t *testing.T) {
	e := newEnv(t)
	body := validTenant()
	c := e.createTenant(body)
	appid := body["appid"].(string)
	e.push(c, appid, "oSearchUser0000000000000001", 1)
	e.push(c, appid, "oSearchUser0000000000000001", 2)
	e.push(c, appid, "oOtherUser00000000000000001", 3)

	search := func(q string) (ids []string, events []map[string]any) {
		t.Helper()
		r := e.mustStatus(e.do("GET", "/v1/search?query="+q, e.admin, nil), 200)
		ts, _ := r.body["tenants"].([]any)
		for _, x := range ts {
			ids = append(ids, x.(map[string]any)["id"].(string))
		}
		hits, _ := r.body["events"].([]any)
		for _, h := range hits {
			events = append(events, h.(map[string]any))
		}
		return ids, events
	}
	if ids, _ := search(strings.ToUpper(appid[:2]) + appid[2:]); len(ids) != 1 || ids[0] != c.id {
		t.Errorf("search by appid found tenants %v, want %s", ids, c.id)
	}
	if ids, _ := search(c.id); len(ids) != 1 || ids[0] != c.id {
		t.Errorf("search by tenant id found tenants %v", ids)
	}
	_, hits := search("oSearchUser0000000000000001")
	if len(hits) != 2 || hits[0]["tenant_id"] != c.id {
		t.Fatalf("search by openid found %v, want the user's 2 events of %s", hits, c.id)
	}
	ev := hits[0]["event"].(map[string]any)
	if _, hits := search(ev["id"].(string)); len(hits) != 1 || hits[0]["event"].(map[string]any)["openid"] != "oSearchUser0000000000000001" {
		t.Errorf("search by event id found %v", hits)
	}
	if ids, hits := search("oNobody"); len(ids)+len(hits) != 0 {
		t.Errorf("search for nothing found %v %v", ids, hits)
	}
	e.mustStatus(e.do("GET", "/v1/search?query="+c.id, c.apiKey, nil), 403)
	e.mustStatus(e.do("GET", "/v1/search?query=a%20b", e.admin, nil), 400)
	e.mustStatus(e.do("GET", "/v1/search", e.admin, nil), 400)

	// A tenant's events of one user.
	r := e.mustStatus(e.do("GET", "/v1/tenants/"+c.id+"/events?openid=oOtherUser00000000000000001", c.apiKey, nil), 200)
	if evs, _ := r.body["events"].([]any); len(evs) != 1 {
		t.Errorf("events of one user: %s", r.raw)
	}
}

// TestRecoverFailedEvents: a recovery counts the tenant's failed events
// since its time and reports its progress; its inputs are checked, and
// it follows the API's access rules.
func TestRecoverFailedEvents(t *testing.T) {
	e := newEnv(t)
	body := validTenant()
	c := e.createTenant(body)
	other := validTenant()
	other["appid"] = "wx00000000000000ac"
	d := e.createTenant(other)
	for i := range 3 {
		e.push(c, body["appid"].(string), fmt.Sprintf("oRecoverUser00000000000000%d", i), int64(100+i))
	}
	if _, err := e.db.Bun().Exec(`UPDATE events SET state = 'failed', finished_at = receive_time WHERE tenant_id = ?`, c.id); err != nil {
		t.Fatal(err)
	}
	since := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	r := e.mustStatus(e.do("POST", "/v1/tenants/"+c.id+"/events:recoverFailed", c.apiKey, `{"since":"`+since+`"}`), 200)
	id, _ := r.body["id"].(string)
	if !strings.HasPrefix(id, "rcv_") || r.body["state"] != "STATE_RUNNING" || r.body["total"] != "3" || r.body["requested_by"] != "tenant" {
		t.Errorf("recovery %s, want rcv_..., running, 3 to recover, asked by the tenant", r.raw)
	}
	if got := e.mustStatus(e.do("GET", "/v1/tenants/"+c.id+"/recoveries/"+id, e.admin, nil), 200); got.body["id"] != id {
		t.Errorf("GetRecovery: %s", got.raw)
	}
	if list := e.mustStatus(e.do("GET", "/v1/tenants/"+c.id+"/recoveries", c.apiKey, nil), 200); len(list.body["recoveries"].([]any)) != 1 {
		t.Errorf("ListRecoveries: %s", list.raw)
	}
	e.mustStatus(e.do("GET", "/v1/tenants/"+d.id+"/recoveries/"+id, e.admin, nil), 404)
	e.mustStatus(e.do("POST", "/v1/tenants/"+c.id+"/events:recoverFailed", d.apiKey, `{"since":"`+since+`"}`), 403)
	// One at a time: another, while this one runs, is refused and told
	// which one to follow (in the message, and for scripts in the details).
	again := e.mustStatus(e.do("POST", "/v1/tenants/"+c.id+"/events:recoverFailed", e.admin, `{"since":"`+since+`"}`), 409)
	if msg, _ := again.body["message"].(string); !strings.Contains(msg, id) || !strings.Contains(msg, "still running") ||
		!strings.Contains(again.raw, `"RECOVERY_RUNNING"`) || !strings.Contains(again.raw, `"recovery_id":"`+id+`"`) {
		t.Errorf("a second recovery while %s runs: %s", id, again.raw)
	}
	for _, bad := range []string{`{}`, `{"since":"` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `"}`} {
		r := e.mustStatus(e.do("POST", "/v1/tenants/"+c.id+"/events:recoverFailed", e.admin, bad), 400)
		if msg, _ := r.body["message"].(string); !strings.HasPrefix(msg, "since:") {
			t.Errorf("recover with %s: %s, want an error at since", bad, r.raw)
		}
	}
}

// TestPendingEventSaysWhatHoldsIt: a disabled tenant's pending event
// says that the tenant's state holds it.
func TestPendingEventSaysWhatHoldsIt(t *testing.T) {
	e := newEnv(t)
	body := validTenant()
	c := e.createTenant(body)
	e.push(c, body["appid"].(string), "oHeldUser00000000000000001", 7)
	list := e.mustStatus(e.do("GET", "/v1/tenants/"+c.id+"/events", e.admin, nil), 200)
	id := list.body["events"].([]any)[0].(map[string]any)["id"].(string)
	if r := e.mustStatus(e.do("GET", "/v1/tenants/"+c.id+"/events/"+id, e.admin, nil), 200); r.body["held"] != nil {
		t.Errorf("an active tenant's pending event is held: %v", r.body["held"])
	}
	e.mustStatus(e.do("PATCH", "/v1/tenants/"+c.id, e.admin, `{"state":"STATE_DISABLED"}`), 200)
	r := e.mustStatus(e.do("GET", "/v1/tenants/"+c.id+"/events/"+id, e.admin, nil), 200)
	if held, _ := r.body["held"].(string); !strings.Contains(held, "disabled") {
		t.Errorf("a disabled tenant's pending event says held %q, want the tenant's state", held)
	}
}
