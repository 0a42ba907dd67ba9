package main

import (
	"strings"
	"testing"
	"time"
)

// TestOnboardingShowsTheTokenAtOnce: a tenant's first access token is
// fetched when it is created, so its token_status says within a second
// whether its credentials hold, not at the keeper's next scan; with
// check_credentials, WeChat unreachable is a 503 that creates nothing.
func TestOnboardingShowsTheTokenAtOnce(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, dir)
	admin := adminTokenIn(t, dir)
	const appid, secret = "wx00000000000000d1", "d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1"
	p.sim.AddApp(appid, secret)
	body := func(appid, secret string) string {
		return `{"appid":"` + appid + `","app_secret":"` + secret + `","token":"PushToken1","webhook_url":"https://hooks.example.com/a"}`
	}
	var created struct {
		Tenant struct{ ID string } `json:"tenant"`
	}
	if code := p.api(t, "POST", "/v1/tenants", admin, body(appid, secret), &created); code != 200 {
		t.Fatalf("create: %d", code)
	}
	wrong := created
	if code := p.api(t, "POST", "/v1/tenants", admin, body("wx00000000000000d2", secret), &wrong); code != 200 {
		t.Fatalf("create with an unknown appid, unchecked: %d", code)
	}
	var got struct {
		TokenStatus struct {
			ExpireTime  string `json:"expire_time"`
			LastErrcode int    `json:"last_errcode"`
		} `json:"token_status"`
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		p.api(t, "GET", "/v1/tenants/"+created.Tenant.ID, admin, "", &got)
		if got.TokenStatus.ExpireTime != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no token 5 s after onboarding: %+v", got)
		}
	}
	got.TokenStatus.LastErrcode = 0
	for deadline := time.Now().Add(5 * time.Second); got.TokenStatus.LastErrcode != 40013; time.Sleep(50 * time.Millisecond) {
		p.api(t, "GET", "/v1/tenants/"+wrong.Tenant.ID, admin, "", &got)
		if time.Now().After(deadline) {
			t.Fatalf("the unknown appid's token status 5 s after onboarding: %+v, want 40013", got)
		}
	}

	// WeChat out of reach: the check cannot be made, and says so.
	qdir := t.TempDir()
	q := startServe(t, qdir, "WXRELAY_WECHAT_API=http://127.0.0.1:1")
	var refused struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	qadmin := adminTokenIn(t, qdir)
	if code := q.api(t, "POST", "/v1/tenants?check_credentials=true", qadmin, body(appid, secret), &refused); code != 503 ||
		!strings.Contains(refused.Message, "WeChat was not reached") || !strings.Contains(refused.Message, "nothing was created") {
		t.Errorf("check with WeChat out of reach: %d %+v, want 503 saying WeChat was not reached and nothing was created", code, refused)
	}
}
