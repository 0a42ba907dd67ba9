package component_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay/component"
	"github.com/wxrelay/wxrelay/relay/token"
	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/tenant"
)

// preAuthCode asks wxsim for a pre-auth code with the component's token.
func (e *env) preAuthCode(t *testing.T, tok string) string {
	t.Helper()
	resp, err := http.Post(e.wxURL+"/cgi-bin/component/api_create_preauthcode?component_access_token="+url.QueryEscape(tok),
		"application/json", strings.NewReader(`{"component_appid":"`+compAppID+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a struct {
		Code string `json:"pre_auth_code"`
	}
	json.NewDecoder(resp.Body).Decode(&a)
	if a.Code == "" {
		t.Fatal("no pre-auth code")
	}
	return a.Code
}

// waitPending waits until n pushes wait to be acted on.
func (e *env) waitPending(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		p, err := e.cs.PendingComponentPushes(context.Background(), 100)
		if err == nil && len(p) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d pushes pending, want %d (%v); wxsim pushed %+v", len(p), n, err, e.sim.Pushes())
		}
	}
}

// authorized has wxsim push a ticket, then the merchant scan the consent
// page for authorizer with funcs, and waits until the relay has stored the
// authorized event. It returns the component's keeper, its token and a
// WeChat client.
func (e *env) authorized(t *testing.T, funcs []int) (*token.KeeperOf[tenant.ComponentID], string, *wechat.Client) {
	t.Helper()
	if _, err := e.sim.PushTicket(compAppID); err != nil {
		t.Fatal(err)
	}
	keeper := e.keeper("replica-a")
	tok, err := keeper.Token(context.Background(), e.comp.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.sim.Scan(compAppID, e.preAuthCode(t, tok), authorizer, funcs); err != nil {
		t.Fatal(err)
	}
	e.waitPending(t, 1)
	return keeper, tok, &wechat.Client{BaseURL: e.wxURL}
}

// A merchant's authorization, from wxsim's consent page to the relay: the
// authorized event is stored, then its code exchanged for the refresh
// token, which is kept sealed and works; the revocation is kept too.
func TestAuthorizerKeepsAuthorizations(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	keeper, tok, wx := e.authorized(t, []int{17, 19})
	acting := component.NewAuthorizer(e.cs, keeper, wx, nil, nil)
	if err := acting.Process(ctx); err != nil {
		t.Fatal(err)
	}
	a, err := e.cs.FindAuthorization(ctx, e.comp.ID, authorizer)
	if err != nil || a.State != tenant.AuthorizationAuthorized || !slices.Equal(a.FuncInfo, []int{17, 19}) || a.RefreshToken == "" {
		t.Fatalf("authorization = %+v, %v", a, err)
	}
	// The refresh token kept is the authorization's: it fetches a token.
	if _, err := wx.AuthorizerToken(ctx, tok, compAppID, authorizer, a.RefreshToken); err != nil {
		t.Errorf("the kept refresh token does not work: %v", err)
	}
	var sealed []byte
	e.db.Bun().NewSelect().Table("authorizations").Column("sealed_refresh_token").Scan(ctx, &sealed)
	if bytes.Contains(sealed, []byte(a.RefreshToken)) {
		t.Error("the refresh token is stored in the clear")
	}
	e.waitPending(t, 0)

	if err := e.sim.Revoke(compAppID, authorizer); err != nil {
		t.Fatal(err)
	}
	e.waitPending(t, 1)
	if err := acting.Process(ctx); err != nil {
		t.Fatal(err)
	}
	if a, err := e.cs.FindAuthorization(ctx, e.comp.ID, authorizer); err != nil || a.State != tenant.AuthorizationRevoked || a.RevokeTime.IsZero() {
		t.Errorf("after unauthorized: %+v, %v", a, err)
	}
}

// An authorization revoked before its event was acted on: WeChat refuses
// the code for good (61003), which is passed, so the revocation after it
// is acted on too; a refusal that may pass (a system error) stops the run
// and is tried again.
func TestAuthorizerPassesCodesRefusedForGood(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	keeper, _, wx := e.authorized(t, []int{19})
	acting := component.NewAuthorizer(e.cs, keeper, wx, nil, nil)

	e.sim.FailNext(1, "/cgi-bin/component/api_query_auth")
	if err := acting.Process(ctx); err == nil {
		t.Fatal("a system error from WeChat did not stop the run")
	}
	e.waitPending(t, 1)

	if err := e.sim.Revoke(compAppID, authorizer); err != nil {
		t.Fatal(err)
	}
	e.waitPending(t, 2)
	if err := acting.Process(ctx); err != nil {
		t.Fatal(err)
	}
	e.waitPending(t, 0)
	if a, err := e.cs.FindAuthorization(ctx, e.comp.ID, authorizer); err != nil || a.State != tenant.AuthorizationRevoked {
		t.Errorf("after both events: %+v, %v", a, err)
	}
}

// A refresh token WeChat refuses (61023) is recovered from the
// component's authorizer list and kept, with no merchant asked again;
// one WeChat does not list either is reported as no authorization.
func TestAuthorizerTokensRecoverARefusedRefreshToken(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	keeper, _, wx := e.authorized(t, []int{19})
	if err := component.NewAuthorizer(e.cs, keeper, wx, nil, nil).Process(ctx); err != nil {
		t.Fatal(err)
	}
	kept, _ := e.cs.FindAuthorization(ctx, e.comp.ID, authorizer)
	if ok, err := e.cs.SwapRefreshToken(ctx, e.comp.ID, authorizer, kept.RefreshToken, "refreshtoken@@@lost"); !ok || err != nil {
		t.Fatalf("spoil the kept refresh token: %v, %v", ok, err)
	}

	tokens := component.NewAuthorizerTokens(e.cs, keeper, wx, nil)
	tn := &tenant.Tenant{ComponentID: e.comp.ID, AppID: authorizer}
	if at, err := tokens.Fetch(ctx, tn); err != nil || at.Token == "" {
		t.Fatalf("Fetch with a refused refresh token = %+v, %v; want it recovered", at, err)
	}
	if now, _ := e.cs.FindAuthorization(ctx, e.comp.ID, authorizer); now.RefreshToken != kept.RefreshToken {
		t.Errorf("the refresh token kept after the recovery is %q, want the authorization's", now.RefreshToken)
	}

	// Revoked at WeChat but not known here yet: not listed, so no token.
	e.sim.Revoke(compAppID, authorizer)
	if ok, err := e.cs.SwapRefreshToken(ctx, e.comp.ID, authorizer, kept.RefreshToken, "refreshtoken@@@lost"); !ok || err != nil {
		t.Fatal(err)
	}
	if _, err := tokens.Fetch(ctx, tn); err == nil {
		t.Error("Fetch after the revocation found a token")
	}
}

// Whether a tenant's mini program has authorized is asked on every send:
// the answer is kept for a moment, so sends do not read the database each
// (it is closed here, and the answer still comes), and a change made by
// this process's Authorizer is seen at once (Forget).
func TestAuthorizedIsKeptAndForgotten(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	keeper, _, wx := e.authorized(t, []int{19})
	tokens := component.NewAuthorizerTokens(e.cs, keeper, wx, nil)
	acting := component.NewAuthorizer(e.cs, keeper, wx, nil, nil)
	acting.OnChange(tokens.Forget)
	tn := &tenant.Tenant{ComponentID: e.comp.ID, AppID: authorizer}
	if err := tokens.Authorized(ctx, tn); !errors.Is(err, tenant.ErrNotAuthorized) {
		t.Fatalf("before the code is exchanged: %v, want not authorized", err)
	}
	if err := acting.Process(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tokens.Authorized(ctx, tn); err != nil {
		t.Fatalf("right after the exchange here: %v, want authorized", err)
	}
	e.db.Close()
	if err := tokens.Authorized(ctx, tn); err != nil {
		t.Errorf("asked again at once, with the database closed: %v; want the kept answer", err)
	}
	tokens.Forget(e.comp.ID, authorizer)
	if err := tokens.Authorized(ctx, tn); err == nil || errors.Is(err, tenant.ErrNotAuthorized) {
		t.Errorf("after Forget, with the database closed: %v; want the read's failure", err)
	}
}

// One run acts on every pending event, not a page of them: 250
// revocations (merchants leaving at once) are all done after one
// Process.
func TestAuthorizerRunTakesEveryPendingEvent(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for i := range 250 {
		if err := e.cs.SaveComponentPush(ctx, e.comp.ID, tenant.ComponentPush{InfoType: wechat.InfoUnauthorized,
			AuthorizerAppID: fmt.Sprintf("wx%016x", i), CreateTime: 1, Body: []byte("<xml/>"), ReceiveTime: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := component.NewAuthorizer(e.cs, e.keeper("replica-a"), &wechat.Client{BaseURL: e.wxURL}, nil, nil).Process(ctx); err != nil {
		t.Fatal(err)
	}
	e.waitPending(t, 0)
	if auths, err := e.cs.Authorizations(ctx, e.comp.ID); err != nil || len(auths) != 250 {
		t.Errorf("%d authorizations kept after one run, want 250 (%v)", len(auths), err)
	}
}
