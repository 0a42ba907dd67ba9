package component_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay/component"
	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/relay/wechat/wxsim"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
	"github.com/wxrelay/wxrelay/tenant"
)

const (
	compAppID  = "wx134c8103faa5a59e"
	compToken  = "AAAAA"
	authorizer = "wxba5fad812f8e6fb9"
)

var compKey = strings.Repeat("A", 43)

type env struct {
	db    *store.DB
	cs    *store.ComponentStore
	comp  *tenant.Component
	url   string // the authorization-event URL
	sim   *wxsim.Server
	wxURL string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	db := storetest.New(t)
	cs := store.NewComponentStore(db)
	svc := tenant.NewComponentService(cs, nil)
	c, err := svc.Create(context.Background(), &tenant.Component{AppID: compAppID,
		Secrets: tenant.ComponentSecrets{Secret: "c5ec2e7c5ec2e7c5ec2e7c5ec2e7c5ec", Token: compToken, EncodingAESKey: compKey}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/wxc/{id}/events", component.NewEventsHandler(component.Options{Store: cs}))
	relay := httptest.NewServer(mux)
	t.Cleanup(relay.Close)
	sim := wxsim.New(wxsim.Options{})
	t.Cleanup(sim.Close)
	wx := httptest.NewServer(sim)
	t.Cleanup(wx.Close)
	u := relay.URL + "/wxc/" + string(c.ID) + "/events"
	if err := sim.AddComponent(wxsim.ComponentOptions{AppID: compAppID, Secret: "c5ec2e7c5ec2e7c5ec2e7c5ec2e7c5ec", Token: compToken, EncodingAESKey: compKey,
		AuthEventURL: u, TicketEvery: -1}); err != nil {
		t.Fatal(err)
	}
	return &env{db: db, cs: cs, comp: c, url: u, sim: sim, wxURL: wx.URL}
}

// push seals inner as the open platform does, for appid with key, signed
// with token, and posts it; it returns the status and body.
func (e *env) push(t *testing.T, token, key, appid, inner string, at time.Time) (int, string) {
	t.Helper()
	c, _ := wechat.NewCipher(key, appid)
	enc, _ := c.Encrypt([]byte(inner))
	ts := strconv.FormatInt(at.Unix(), 10)
	q := url.Values{"timestamp": {ts}, "nonce": {"123"}, "encrypt_type": {"aes"},
		"signature": {wechat.Sign(token, ts, "123")}, "msg_signature": {wechat.Sign(token, ts, "123", enc)}}
	resp, err := http.Post(e.url+"?"+q.Encode(), "text/xml", strings.NewReader(fmt.Sprintf("<xml><AppId>%s</AppId><Encrypt>%s</Encrypt></xml>", appid, enc)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Tickets from wxsim are kept as the component's last good one before
// success; an authorization event goes to the inbox, once however often
// it is pushed.
func TestEventsURLKeepsTicketsAndAuthorizations(t *testing.T) {
	e := newEnv(t)
	ticket, err := e.sim.PushTicket(compAppID)
	if err != nil {
		t.Fatalf("ticket push: %v (%+v)", err, e.sim.Pushes())
	}
	c, err := e.cs.FindComponent(context.Background(), e.comp.ID)
	if err != nil || c.Ticket.Value != ticket || c.Ticket.ReceiveTime.IsZero() {
		t.Fatalf("after the ticket push: %+v, %v", c.Ticket, err)
	}

	auth := fmt.Sprintf(`<xml><AppId>%s</AppId><CreateTime>%d</CreateTime><InfoType>authorized</InfoType><AuthorizerAppid>%s</AuthorizerAppid><AuthorizationCode>code@@@1</AuthorizationCode><AuthorizationCodeExpiredTime>%d</AuthorizationCodeExpiredTime><PreAuthCode>pre@@@1</PreAuthCode></xml>`,
		compAppID, time.Now().Unix(), authorizer, time.Now().Add(time.Hour).Unix())
	for range 2 { // WeChat retries a push not answered in time
		if status, body := e.push(t, compToken, compKey, compAppID, auth, time.Now()); status != 200 || body != "success" {
			t.Fatalf("authorized push: %d %q", status, body)
		}
	}
	pushes, err := e.cs.ComponentPushes(context.Background(), e.comp.ID)
	if err != nil || len(pushes) != 1 || pushes[0].InfoType != "authorized" || pushes[0].AuthorizerAppID != authorizer || !strings.Contains(string(pushes[0].Body), "code@@@1") {
		t.Fatalf("inbox = %+v, %v; want the authorization once", pushes, err)
	}
}

// What does not verify is refused, and nothing of it is stored.
func TestEventsURLRefusals(t *testing.T) {
	e := newEnv(t)
	ticket := `<xml><AppId>` + compAppID + `</AppId><CreateTime>1</CreateTime><InfoType>component_verify_ticket</InfoType><ComponentVerifyTicket>ticket@@@forged</ComponentVerifyTicket></xml>`
	for name, tc := range map[string]struct {
		token, key, appid string
		at                time.Time
		want              int
	}{
		"another token":                {"BBBBB", compKey, compAppID, time.Now(), 401},
		"sealed for another component": {compToken, compKey, "wx00000000000000c9", time.Now(), 403},
		"a stale timestamp":            {compToken, compKey, compAppID, time.Now().Add(-time.Hour), 400},
	} {
		if status, _ := e.push(t, tc.token, tc.key, tc.appid, ticket, tc.at); status != tc.want {
			t.Errorf("%s: %d, want %d", name, status, tc.want)
		}
	}
	if c, _ := e.cs.FindComponent(context.Background(), e.comp.ID); c.Ticket.Value != "" {
		t.Errorf("a refused push left ticket %q", c.Ticket.Value)
	}
	for _, path := range []string{"/wxc/cp_zzzzzzzzzzzzzzzz/events", "/wxc/nonsense/events"} {
		u := strings.Replace(e.url, "/wxc/"+string(e.comp.ID)+"/events", path, 1)
		resp, err := http.Post(u+"?timestamp="+strconv.FormatInt(time.Now().Unix(), 10), "text/xml", strings.NewReader("<xml/>"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", path, resp.StatusCode)
		}
	}
	// A query without the signature WeChat always sends: refused unread.
	resp, err := http.Post(e.url+"?timestamp="+strconv.FormatInt(time.Now().Unix(), 10)+"&nonce=1&encrypt_type=aes&msg_signature=x",
		"text/xml", strings.NewReader("<xml/>"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("a push without the query signature: %d, want 401", resp.StatusCode)
	}
	// A database that cannot store: never success.
	e.db.Close()
	if status, body := e.push(t, compToken, compKey, compAppID, ticket, time.Now()); status != 500 || body == "success" {
		t.Errorf("with the database closed: %d %q, want 500", status, body)
	}
}
