package wechat_test

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/wxrelay/wxrelay/relay/wechat"
)

// componentPush seals inner for appid with key and signs it with token, as
// the open platform pushes to an authorization-event URL.
func componentPush(t *testing.T, token, key, appid string, inner string) (url.Values, []byte) {
	t.Helper()
	c, err := wechat.NewCipher(key, appid)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := c.Encrypt([]byte(inner))
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{"timestamp": {"1715943329"}, "nonce": {"1590219412"}, "encrypt_type": {"aes"},
		"signature": {wechat.Sign(token, "1715943329", "1590219412")}, "msg_signature": {wechat.Sign(token, "1715943329", "1590219412", enc)}}
	return q, []byte(fmt.Sprintf("<xml><AppId><![CDATA[%s]]></AppId><Encrypt><![CDATA[%s]]></Encrypt></xml>", appid, enc))
}

func TestOpenComponentEvent(t *testing.T) {
	const token, comp = "AAAAA", "wx134c8103faa5a59e"
	key := strings.Repeat("A", 43)
	c, _ := wechat.NewCipher(key, comp)
	ticket := `<xml><AppId><![CDATA[wx134c8103faa5a59e]]></AppId><CreateTime>1715943329</CreateTime><InfoType><![CDATA[component_verify_ticket]]></InfoType><ComponentVerifyTicket><![CDATA[ticket@@@abc]]></ComponentVerifyTicket></xml>`
	q, body := componentPush(t, token, key, comp, ticket)
	e, _, err := wechat.OpenComponentEvent(token, c, q, body)
	if err != nil || e.InfoType != wechat.InfoTicket || e.ComponentVerifyTicket != "ticket@@@abc" || e.CreateTime != 1715943329 {
		t.Fatalf("ticket = %+v, %v", e, err)
	}
	auth := `<xml><AppId>wx134c8103faa5a59e</AppId><CreateTime>1</CreateTime><InfoType>authorized</InfoType><AuthorizerAppid>wxba5fad812f8e6fb9</AuthorizerAppid><AuthorizationCode>code@@@x</AuthorizationCode><AuthorizationCodeExpiredTime>3601</AuthorizationCodeExpiredTime><PreAuthCode>pre@@@y</PreAuthCode></xml>`
	q, body = componentPush(t, token, key, comp, auth)
	if e, _, err := wechat.OpenComponentEvent(token, c, q, body); err != nil || e.AuthorizerAppid != "wxba5fad812f8e6fb9" || e.AuthorizationCode != "code@@@x" || e.AuthorizationCodeExpiredTime != 3601 {
		t.Fatalf("authorized = %+v, %v", e, err)
	}

	q, body = componentPush(t, "BBBBB", key, comp, ticket)
	if _, _, err := wechat.OpenComponentEvent(token, c, q, body); !errors.Is(err, wechat.ErrBadSignature) {
		t.Errorf("signed with another token: %v, want ErrBadSignature", err)
	}
	// Sealed for another component (its trailer), or naming another in AppId.
	q, body = componentPush(t, token, key, "wx00000000000000c9", ticket)
	if _, _, err := wechat.OpenComponentEvent(token, c, q, body); !errors.Is(err, wechat.ErrAppIDMismatch) {
		t.Errorf("sealed for another component: %v", err)
	}
	q, body = componentPush(t, token, key, comp, strings.ReplaceAll(ticket, "wx134c8103faa5a59e", "wx00000000000000c9"))
	if _, _, err := wechat.OpenComponentEvent(token, c, q, body); !errors.Is(err, wechat.ErrAppIDMismatch) {
		t.Errorf("AppId of another component: %v", err)
	}
	for name, inner := range map[string]string{
		"no InfoType":            `<xml><AppId>wx134c8103faa5a59e</AppId></xml>`,
		"a ticket without it":    `<xml><AppId>wx134c8103faa5a59e</AppId><InfoType>component_verify_ticket</InfoType></xml>`,
		"unauthorized of nobody": `<xml><AppId>wx134c8103faa5a59e</AppId><InfoType>unauthorized</InfoType></xml>`,
	} {
		q, body := componentPush(t, token, key, comp, inner)
		if _, _, err := wechat.OpenComponentEvent(token, c, q, body); !errors.Is(err, wechat.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	if _, _, err := wechat.OpenComponentEvent(token, c, q, []byte(`{"Encrypt":"abc"}`)); !errors.Is(err, wechat.ErrMalformed) {
		t.Errorf("a JSON body: %v, want ErrMalformed", err)
	}
}
