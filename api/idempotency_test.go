package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	wxrelayv1 "github.com/wxrelay/wxrelay/api/gen/wxrelay/v1"
	"github.com/wxrelay/wxrelay/relay/wechat"
)

// sendKey sends body as tenant tn with the Idempotency-Key header key.
func (e *env) sendKey(tn created, key, body string) response {
	e.t.Helper()
	req, err := http.NewRequest("POST", e.url+sendPath(tn.id), strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tn.apiKey)
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Error(err)
		return response{}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := response{status: resp.StatusCode, raw: string(raw)}
	_ = json.Unmarshal(raw, &out.body)
	return out
}

func textBody(to, content string) string {
	return `{"touser":"` + to + `","msgtype":"text","text":{"content":"` + content + `"}}`
}

func TestIdempotencySameKeySendsOnce(t *testing.T) {
	e := newEnv(t)
	tn := e.wxTenant()
	first := e.mustStatus(e.sendKey(tn, "k1", textBody("o1", "hi")), 200)
	again := e.mustStatus(e.sendKey(tn, "k1", textBody("o1", "hi")), 200)
	if first.raw != again.raw {
		t.Errorf("answers differ: %s then %s", first.raw, again.raw)
	}
	// Same body, keys in the field and the header alike.
	e.mustStatus(e.sendKey(tn, "k1", `{"touser":"o1","msgtype":"text","text":{"content":"hi"},"idempotency_key":"k1"}`), 200)
	if n := len(e.sends()); n != 1 {
		t.Fatalf("wxsim saw %d sends, want 1", n)
	}
	// Another key sends again; no key always sends.
	e.mustStatus(e.sendKey(tn, "k2", textBody("o1", "hi")), 200)
	e.mustStatus(e.sendKey(tn, "", textBody("o1", "hi")), 200)
	e.mustStatus(e.sendKey(tn, "", textBody("o1", "hi")), 200)
	if n := len(e.sends()); n != 4 {
		t.Fatalf("wxsim saw %d sends, want 4", n)
	}
}

func TestIdempotencyDifferentBody(t *testing.T) {
	e := newEnv(t)
	tn := e.wxTenant()
	e.mustStatus(e.sendKey(tn, "k", textBody("o1", "hi")), 200)
	r := e.mustStatus(e.sendKey(tn, "k", textBody("o1", "bye")), 409)
	if r.body["code"] != float64(codes.AlreadyExists) {
		t.Errorf("code = %v, want ALREADY_EXISTS; %s", r.body["code"], r.raw)
	}
	if n := len(e.sends()); n != 1 {
		t.Fatalf("wxsim saw %d sends, want 1", n)
	}
	// Field and header disagreeing is a client bug.
	r = e.mustStatus(e.sendKey(tn, "k", `{"touser":"o1","msgtype":"text","text":{"content":"hi"},"idempotency_key":"other"}`), 400)
	if msg, _ := r.body["message"].(string); !strings.HasPrefix(msg, "idempotency_key:") {
		t.Errorf("message %q", msg)
	}
	e.mustStatus(e.sendKey(tn, strings.Repeat("x", 256), textBody("o1", "hi")), 400)
	// An invalid body does not take the key.
	e.mustStatus(e.sendKey(tn, "k3", `{"touser":"o1","msgtype":"text"}`), 400)
	e.mustStatus(e.sendKey(tn, "k3", textBody("o1", "hi")), 200)
	if n := len(e.sends()); n != 2 {
		t.Fatalf("wxsim saw %d sends, want 2", n)
	}
}

func TestIdempotencyPerTenant(t *testing.T) {
	e := newEnv(t)
	a, b := e.wxTenant(), e.wxTenant()
	e.mustStatus(e.sendKey(a, "k", textBody("o1", "hi")), 200)
	e.mustStatus(e.sendKey(b, "k", textBody("o1", "bye")), 200)
	e.mustStatus(e.sendKey(b, "k", textBody("o1", "bye")), 200)
	sends := e.sends()
	if len(sends) != 2 || sends[0].AppID != a.appid || sends[1].AppID != b.appid {
		t.Fatalf("wxsim saw %+v", sends)
	}
}

func TestIdempotencyReplaysFailure(t *testing.T) {
	e := newEnv(t)
	tn := e.wxTenant()
	if err := e.sim.RejectSends("closed", wechat.CodeOutOfWindow); err != nil {
		t.Fatal(err)
	}
	first := e.mustStatus(e.sendKey(tn, "k", textBody("closed", "hi")), 400)
	again := e.mustStatus(e.sendKey(tn, "k", textBody("closed", "hi")), 400)
	if first.raw != again.raw {
		t.Errorf("answers differ:\n%s\n%s", first.raw, again.raw)
	}
	if md := errorInfo(t, again); md["errcode"] != "45015" {
		t.Errorf("metadata = %v", md)
	}
	if n := len(e.sends()); n != 1 {
		t.Fatalf("wxsim saw %d sends, want 1", n)
	}
}

func TestIdempotencyExpires(t *testing.T) {
	e := newEnv(t)
	tn := e.wxTenant()
	e.mustStatus(e.sendKey(tn, "k", textBody("o1", "hi")), 200)
	// Age the key past 24 hours.
	if _, err := e.db.Bun().NewUpdate().Table("idempotency_keys").
		Set("created_at = ?", time.Now().UTC().Add(-25*time.Hour)).
		Where("tenant_id = ?", tn.id).Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Expired: sends again, even with another body, and holds the key anew.
	e.mustStatus(e.sendKey(tn, "k", textBody("o1", "bye")), 200)
	e.mustStatus(e.sendKey(tn, "k", textBody("o1", "bye")), 200)
	if n := len(e.sends()); n != 2 {
		t.Fatalf("wxsim saw %d sends, want 2", n)
	}
	var rows int
	if err := e.db.Bun().NewSelect().Table("idempotency_keys").ColumnExpr("count(*)").Scan(context.Background(), &rows); err != nil {
		t.Fatal(err)
	}
	if rows != 1 {
		t.Errorf("%d key rows, want 1 (the expired one pruned)", rows)
	}
}

func TestIdempotencyGRPCField(t *testing.T) {
	e := newEnv(t)
	tn := e.wxTenant()
	c := wxrelayv1.NewMessageServiceClient(e.grpcClient())
	req := &wxrelayv1.SendMessageRequest{Id: tn.id, Touser: "o1", Msgtype: "text", Text: &wxrelayv1.TextContent{Content: "hi"}, IdempotencyKey: "g"}
	for range 2 {
		if _, err := c.SendMessage(withToken(tn.apiKey), req); err != nil {
			t.Fatal(err)
		}
	}
	// The metadata works over gRPC too, and is the same key.
	req.IdempotencyKey = ""
	ctx := metadata.AppendToOutgoingContext(withToken(tn.apiKey), "idempotency-key", "g")
	if _, err := c.SendMessage(ctx, req); err != nil {
		t.Fatal(err)
	}
	if n := len(e.sends()); n != 1 {
		t.Fatalf("wxsim saw %d sends, want 1", n)
	}
	req.IdempotencyKey = "g"
	req.Text.Content = "bye"
	if _, err := c.SendMessage(withToken(tn.apiKey), req); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("other body: %v, want AlreadyExists", err)
	}
}

func TestIdempotencyConcurrent(t *testing.T) {
	e := newEnv(t)
	tn := e.wxTenant()
	e.sim.SetLatency(50 * time.Millisecond)
	var wg sync.WaitGroup
	results := make([]response, 10)
	for i := range results {
		wg.Go(func() { results[i] = e.sendKey(tn, "same", textBody("o1", "hi")) })
	}
	wg.Wait()
	var ok, inProgress int
	for _, r := range results {
		switch {
		case r.status == 200:
			ok++
		case r.status == 409 && r.body["code"] == float64(codes.Aborted):
			inProgress++
		default:
			t.Errorf("answer %d %s", r.status, r.raw)
		}
	}
	if ok < 1 || ok+inProgress != len(results) {
		t.Errorf("%d ok, %d in progress", ok, inProgress)
	}
	if n := len(e.sends()); n != 1 {
		t.Fatalf("wxsim saw %d sends, want 1", n)
	}
	// Once done, a repeat gets the answer.
	e.mustStatus(e.sendKey(tn, "same", textBody("o1", "hi")), 200)
}
