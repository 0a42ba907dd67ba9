package api_test

import (
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	wxrelayv1 "github.com/wxrelay/wxrelay/api/gen/wxrelay/v1"
)

// windowInfo returns the metadata of the REPLY_WINDOW_CLOSED ErrorInfo in
// r's details.
func windowInfo(t *testing.T, r response) map[string]any {
	t.Helper()
	details, _ := r.body["details"].([]any)
	for _, d := range details {
		m, _ := d.(map[string]any)
		if m["@type"] == "type.googleapis.com/google.rpc.ErrorInfo" && m["reason"] == "REPLY_WINDOW_CLOSED" && m["domain"] == "wxrelay" {
			md, _ := m["metadata"].(map[string]any)
			return md
		}
	}
	t.Fatalf("no REPLY_WINDOW_CLOSED ErrorInfo in %s", r.raw)
	return nil
}

// TestSendReplyWindow goes through the real gateway, ingress and store: a
// user's message opens 5 sends (an idempotent replay is not one), the 6th
// is refused without calling WeChat;
// a user who never wrote to a tenant known for over 48 h is refused with
// 45015, also over gRPC, and an idempotency key of a refused send stays
// free; the tenant's opt-out lets every send through.
func TestSendReplyWindow(t *testing.T) {
	e := newEnv(t)
	tn := e.wxTenant()
	// The relay has stored the tenant's pushes for over a minute when o1
	// writes, so it knows o1 entered no session in the last minute. (The
	// push path stamps the real time; the check runs on e.clock.)
	e.push(tn, tn.appid, "o_other", 1)
	e.clock.Advance(2 * time.Minute)
	e.push(tn, tn.appid, "o1", 2)

	// A replay under an idempotency key sends nothing, so counts nothing.
	e.mustStatus(e.sendKey(tn, "r1", textBody("o1", "hi")), 200)
	e.mustStatus(e.sendKey(tn, "r1", textBody("o1", "hi")), 200)
	for i := 1; i < 5; i++ {
		e.mustStatus(e.do("POST", sendPath(tn.id), tn.apiKey, textBody("o1", "hi")), 200)
		if n := len(e.sends()); n != i+1 {
			t.Fatalf("after %d sends wxsim saw %d", i+1, n)
		}
	}
	r := e.mustStatus(e.do("POST", sendPath(tn.id), tn.apiKey, textBody("o1", "hi")), 400)
	if md := windowInfo(t, r); md["errcode"] != "45047" || md["openid"] != "o1" || md["errmsg"] != "out of response count limit" {
		t.Errorf("ErrorInfo metadata %v", md)
	}
	if r.body["code"] != float64(codes.FailedPrecondition) {
		t.Errorf("code %v, want FAILED_PRECONDITION", r.body["code"])
	}
	if n := len(e.sends()); n != 5 {
		t.Fatalf("refused send reached WeChat: %d sends", n)
	}

	// 49 h later the tenant's pushes have been known for the whole
	// window: o2 never wrote.
	e.clock.Advance(49 * time.Hour)
	r = e.mustStatus(e.sendKey(tn, "k1", textBody("o2", "hi")), 400)
	if md := windowInfo(t, r); md["errcode"] != "45015" {
		t.Errorf("ErrorInfo metadata %v", md)
	}
	c := wxrelayv1.NewMessageServiceClient(e.grpcClient())
	_, err := c.SendMessage(withToken(tn.apiKey), &wxrelayv1.SendMessageRequest{
		Id: tn.id, Touser: "o2", Msgtype: "text", Text: &wxrelayv1.TextContent{Content: "hi"},
	})
	st := status.Convert(err)
	var info *errdetails.ErrorInfo
	for _, d := range st.Details() {
		if i, ok := d.(*errdetails.ErrorInfo); ok {
			info = i
		}
	}
	if st.Code() != codes.FailedPrecondition || info == nil || info.GetReason() != "REPLY_WINDOW_CLOSED" || info.GetMetadata()["errcode"] != "45015" {
		t.Fatalf("gRPC send: %v, details %v", err, st.Details())
	}
	if n := len(e.sends()); n != 5 {
		t.Fatalf("refused send reached WeChat: %d sends", n)
	}

	// The opt-out, in and out of the Tenant resource.
	r = e.mustStatus(e.do("GET", "/v1/tenants/"+tn.id, e.admin, nil), 200)
	if r.body["ignore_reply_window"] == true {
		t.Fatalf("ignore_reply_window on by default: %s", r.raw)
	}
	r = e.mustStatus(e.do("PATCH", "/v1/tenants/"+tn.id, e.admin, map[string]any{"ignore_reply_window": true}), 200)
	if r.body["ignore_reply_window"] != true {
		t.Fatalf("patched tenant %s", r.raw)
	}
	// The key of the refused send was not used up.
	e.mustStatus(e.sendKey(tn, "k1", textBody("o2", "hi")), 200)
	e.mustStatus(e.do("POST", sendPath(tn.id), tn.apiKey, textBody("o1", "hi")), 200)
	if n := len(e.sends()); n != 7 {
		t.Fatalf("opted out: wxsim saw %d sends, want 7", n)
	}

	// Set at creation too.
	body := validTenant()
	body["ignore_reply_window"] = true
	created := e.mustStatus(e.do("POST", "/v1/tenants", e.admin, body), 200)
	if created.body["tenant"].(map[string]any)["ignore_reply_window"] != true {
		t.Errorf("created tenant %s", created.raw)
	}
}
