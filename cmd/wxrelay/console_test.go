package main

import (
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const (
	consoleAESKey = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	consoleToken  = "PushToken123"
	consoleAppID  = "wx0123456789abcd42"
)

var (
	wxsimOnce   sync.Once
	wxsimBinary string
	wxsimErr    error
)

// wxsimBin builds cmd/wxsim once, for tests that push as WeChat does.
func wxsimBin(t *testing.T) string {
	t.Helper()
	wxsimOnce.Do(func() {
		wxsimBinary = filepath.Join(filepath.Dir(binary), "wxsim")
		if out, err := exec.Command("go", "build", "-o", wxsimBinary, "../wxsim").CombinedOutput(); err != nil {
			wxsimErr = fmt.Errorf("build wxsim: %v\n%s", err, out)
		}
	})
	if wxsimErr != nil {
		t.Fatal(wxsimErr)
	}
	return wxsimBinary
}

// wxsimPush has wxsim push a text message from openid to pushURL, in safe
// mode, and checks that the relay answered success.
func wxsimPush(t *testing.T, pushURL, openid, text string) {
	t.Helper()
	out, err := exec.Command(wxsimBin(t), "push", "--url", pushURL, "--token", consoleToken, "--appid", consoleAppID,
		"--aes-key", consoleAESKey, "--format", "json", "--from", openid, "--text", text).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "success") {
		t.Fatalf("wxsim push: %v\n%s", err, out)
	}
}

// TestConsole_EndToEnd walks the console as an operator would, in a real
// Chromium: sign in, onboard a tenant through the form (first with a bad
// EncodingAESKey, whose error shows at the field), push through wxsim and
// see the event, break the webhook and watch the tenant turn FAILING with
// its reason, redeliver once it recovers, and see it turn OK.
func TestConsole_EndToEnd(t *testing.T) {
	ctx := browser(t)
	shots := newScreenshots(t)

	hook, failing := newSwitchableHook(t, http.StatusBadGateway)
	dir := t.TempDir()
	p := startServe(t, dir, "WXRELAY_ALLOW_PRIVATE_WEBHOOKS=true", "WXRELAY_RETRY_SCHEDULE=0s,1h", "WXRELAY_HEALTH_INTERVAL=1s")
	origin := "http://" + p.http
	base := origin + "/console/"
	admin := adminTokenIn(t, dir)

	// Signed out, the console sends the operator to sign in.
	do(t, ctx, "open the console", chromedp.Navigate(base), chromedp.WaitVisible(chromedp.ID("token")))
	if loc := get(t, ctx, "location", chromedp.Location()); !strings.Contains(loc, "/console/login") {
		t.Fatalf("signed out, the console is at %s, want the sign-in page", loc)
	}
	shots.take(ctx, "sign in")
	do(t, ctx, "sign in",
		chromedp.SendKeys(chromedp.ID("token"), admin),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.CSS("p.empty")))

	// Onboarding, first with an EncodingAESKey of the wrong length.
	do(t, ctx, "fill the onboarding form",
		chromedp.Click(chromedp.CSS(`a[href="/console/tenants/new"]`)),
		chromedp.WaitVisible(chromedp.ID("onboard")),
		chromedp.SendKeys(chromedp.ID("display_name"), "Tea House 茶馆"),
		chromedp.SendKeys(chromedp.ID("appid"), consoleAppID),
		chromedp.SendKeys(chromedp.ID("app_secret"), "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0"),
		chromedp.SendKeys(chromedp.ID("token"), consoleToken),
		chromedp.SendKeys(chromedp.ID("encoding_aes_key"), "too-short"),
		chromedp.SendKeys(chromedp.ID("webhook_url"), hook.URL+"/wechat"),
		chromedp.Submit(chromedp.ID("onboard")),
		chromedp.WaitVisible(chromedp.ID("encoding_aes_key-error")))
	fieldErr := text(t, ctx, "#encoding_aes_key-error")
	if invalid := attr(t, ctx, "#encoding_aes_key", "aria-invalid"); !strings.Contains(fieldErr, "43") || invalid != "true" {
		t.Errorf("the EncodingAESKey's error reads %q (aria-invalid %q), want the API's message about its 43 characters", fieldErr, invalid)
	}
	keptAppID := get(t, ctx, "appid", chromedp.Value(chromedp.ID("appid")))
	keptSecret := get(t, ctx, "app_secret", chromedp.Value(chromedp.ID("app_secret")))
	if keptAppID != consoleAppID || keptSecret != "" {
		t.Errorf("after the error the form keeps appid %q and app_secret %q; want the appid kept and the secret not written back", keptAppID, keptSecret)
	}
	shots.take(ctx, "onboarding field error")

	// The credentials are checked with WeChat before anything is stored
	// (the box is ticked by default): a secret WeChat refuses is shown at
	// its field with WeChat's errcode.
	p.sim.AddApp(consoleAppID, "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0")
	if checked := js[bool](t, ctx, `document.getElementById("check_credentials").checked`); !checked {
		t.Errorf("the credentials check is not ticked after a field error")
	}
	do(t, ctx, "onboard with a wrong AppSecret",
		chromedp.SendKeys(chromedp.ID("app_secret"), "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0"),
		chromedp.SendKeys(chromedp.ID("token"), consoleToken),
		chromedp.SendKeys(chromedp.ID("encoding_aes_key"), consoleAESKey),
		chromedp.Submit(chromedp.ID("onboard")),
		chromedp.WaitVisible(chromedp.ID("app_secret-error")))
	if msg := text(t, ctx, "#app_secret-error"); !strings.Contains(msg, "40125") {
		t.Errorf("the wrong AppSecret's error reads %q, want WeChat's 40125", msg)
	}
	shots.take(ctx, "onboarding credentials refused")

	do(t, ctx, "onboard",
		chromedp.SendKeys(chromedp.ID("app_secret"), "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0"),
		chromedp.SendKeys(chromedp.ID("token"), consoleToken),
		chromedp.SendKeys(chromedp.ID("encoding_aes_key"), consoleAESKey),
		chromedp.Submit(chromedp.ID("onboard")),
		chromedp.WaitVisible(chromedp.ID("api-key")))
	apiKey, pushURL := text(t, ctx, "#api-key"), text(t, ctx, "#push-url")
	if !strings.HasPrefix(pushURL, "http://") || !strings.Contains(pushURL, "/wx/tn_") || apiKey == "" {
		t.Fatalf("onboarded with push URL %q and API key %q", pushURL, apiKey)
	}
	shots.take(ctx, "onboarded")
	tid := pushURL[strings.LastIndex(pushURL, "/")+1:]

	// The same appid again: refused at the appid, naming the tenant.
	do(t, ctx, "onboard the appid again",
		chromedp.Navigate(base+"tenants/new"),
		chromedp.SendKeys(chromedp.ID("appid"), consoleAppID),
		chromedp.SendKeys(chromedp.ID("app_secret"), "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0"),
		chromedp.SendKeys(chromedp.ID("token"), consoleToken),
		chromedp.SendKeys(chromedp.ID("encoding_aes_key"), consoleAESKey),
		chromedp.SendKeys(chromedp.ID("webhook_url"), hook.URL+"/wechat"),
		chromedp.Submit(chromedp.ID("onboard")),
		chromedp.WaitVisible(chromedp.ID("appid-error")))
	if msg := text(t, ctx, "#appid-error"); msg != "appid "+consoleAppID+" is already registered to tenant "+tid {
		t.Errorf("the second onboarding's appid error reads %q, want it to name %s", msg, tid)
	}
	tenantURL := base + "tenants/" + tid
	// The push URL names the relay's public URL (http://localhost:8080 by
	// default); this one listens on a port of the test's.
	pushURL = origin + "/wx/" + tid
	row := `document.querySelector('tr[data-tenant="` + tid + `"]')`

	// A push through wxsim appears, delivered.
	wxsimPush(t, pushURL, "oConsoleUser00000000000001", "Is my tea shipped?")
	eventually(t, ctx, tenantURL+"/events", "the pushed event is delivered", func() bool {
		return js[int](t, ctx, `document.querySelectorAll('#events tr[data-state="DELIVERED"]').length`) == 1
	})
	shots.take(ctx, "events")

	// The webhook breaks: three failed deliveries turn the tenant FAILING.
	failing.Store(true)
	for i := range 3 {
		wxsimPush(t, pushURL, fmt.Sprintf("oConsoleUser0000000000001%d", i), "Hello?")
	}
	eventually(t, ctx, base, "the tenant turns FAILING", func() bool {
		return js[string](t, ctx, row+`?.dataset.health ?? ""`) == "FAILING" &&
			strings.Contains(js[string](t, ctx, row+`?.querySelector("td.reasons").textContent ?? ""`), "WEBHOOK_FAILING")
	})
	shots.take(ctx, "tenants failing")
	do(t, ctx, "the tenant page shows why", chromedp.Navigate(tenantURL),
		chromedp.WaitVisible(chromedp.CSS(`#reasons li[data-kind="WEBHOOK_FAILING"]`)))
	if reason := text(t, ctx, `#reasons li[data-kind="WEBHOOK_FAILING"] p`); !strings.Contains(reason, "502") {
		t.Errorf("the reason reads %q, want the webhook's last status, 502", reason)
	}
	// The chart counts the day's attempts: one delivered, three failed,
	// each drawn as a stroke.
	if d, f := text(t, ctx, "figcaption .key.delivered"), text(t, ctx, "figcaption .key.failed"); d != "delivered 1" || f != "failed 3" {
		t.Errorf("the chart's key reads %q and %q, want delivered 1 and failed 3", d, f)
	}
	if n := js[int](t, ctx, `document.querySelectorAll("svg.chart path.delivered, svg.chart path.failed").length`); n != 2 {
		t.Errorf("the chart has %d paths, want one delivered and one failed", n)
	}
	shots.take(ctx, "tenant failing")

	// It recovers; one failed event is redelivered from its page.
	failing.Store(false)
	do(t, ctx, "list the pending events", chromedp.Navigate(tenantURL+"/events?state=PENDING"), chromedp.WaitVisible(chromedp.ID("events")))
	if n := js[int](t, ctx, `document.querySelectorAll('#events tr').length`); n != 3+1 {
		t.Errorf("the PENDING filter lists %d rows, want the 3 failed events and the header", n)
	}
	eventURL := origin + attr(t, ctx, `#events tr[data-state="PENDING"] a`, "href")
	do(t, ctx, "open a failed event", chromedp.Navigate(eventURL), chromedp.WaitVisible(chromedp.CSS("#attempts li.failed")))
	// Each attempt shows the webhook's answer: its headers and the start
	// of its body, folded until asked for.
	do(t, ctx, "unfold the failed attempt's answer", chromedp.Click(chromedp.CSS("#attempts li.failed details.answer summary")),
		chromedp.WaitVisible(chromedp.CSS("#attempts li.failed details.answer pre.body")))
	if body, headers := text(t, ctx, "#attempts li.failed details.answer pre.body"), text(t, ctx, "#attempts li.failed details.answer pre.headers"); !strings.Contains(body, "the shop's server is down") ||
		!strings.Contains(headers, "Content-Type: text/plain") {
		t.Errorf("the failed attempt's answer shows headers %q and body %q, want the webhook's own", headers, body)
	}
	shots.take(ctx, "attempt answer")
	// When it is retried, and the body as delivered: MsgId a number.
	if next := js[string](t, ctx, `document.getElementById("next-attempt")?.textContent ?? ""`); !strings.Contains(next, "in ") {
		t.Errorf("the pending event's next attempt reads %q, want a time to come", next)
	}
	if body := js[string](t, ctx, `document.getElementById("payload").textContent`); !regexp.MustCompile(`"MsgId": \d+`).MatchString(body) {
		t.Errorf("the payload shown is not the body delivered (MsgId a number):\n%s", body)
	}
	if label := text(t, ctx, "#redeliver"); label != "Retry now" {
		t.Errorf("a pending event's button reads %q, want Retry now", label)
	}
	do(t, ctx, "retry now",
		chromedp.Click(chromedp.ID("redeliver")),
		chromedp.WaitVisible(chromedp.CSS("p.flash")))
	eventually(t, ctx, eventURL, "the redelivered event is delivered", func() bool {
		return js[string](t, ctx, `document.getElementById("event-state").textContent`) == "DELIVERED"
	})
	if n := js[int](t, ctx, `document.querySelectorAll("#attempts li").length`); n != 2 {
		t.Errorf("the event's timeline shows %d attempts, want 2 (failed, then delivered)", n)
	}
	shots.take(ctx, "event redelivered")
	eventually(t, ctx, base, "the tenant turns OK", func() bool {
		return js[string](t, ctx, row+`?.dataset.health ?? ""`) == "OK"
	})
	shots.take(ctx, "tenants ok")

	// A test event, sent from the tenant's page, is delivered like a push.
	do(t, ctx, "send a test event", chromedp.Navigate(tenantURL), chromedp.Click(chromedp.ID("send-test-event")),
		chromedp.WaitVisible(chromedp.CSS("p.flash")))
	testEventURL := get(t, ctx, "location", chromedp.Location())
	eventually(t, ctx, testEventURL, "the test event is delivered", func() bool {
		return js[string](t, ctx, `document.getElementById("event-state").textContent`) == "DELIVERED"
	})
	if body := js[string](t, ctx, `document.getElementById("payload").textContent`); !strings.Contains(body, `"type": "wxrelay.test"`) {
		t.Errorf("the test event's payload:\n%s", body)
	}
	shots.take(ctx, "test event delivered")

	// The tenant's calls: a send through the API is listed.
	req, _ := http.NewRequest("POST", origin+"/v1/tenants/"+tid+"/messages:send",
		strings.NewReader(`{"touser":"oConsoleUser00000000000001","msgtype":"text","text":{"content":"Shipped."}}`))
	req.Header.Set("Authorization", "Bearer "+apiKey)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("send: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	// (Call records are written in batches, a moment after the call.)
	do(t, ctx, "open the calls", chromedp.Navigate(tenantURL), chromedp.Click(chromedp.ID("calls")),
		chromedp.WaitVisible(chromedp.Search(`//h1[starts-with(normalize-space(.), "Calls of")]`)))
	eventually(t, ctx, tenantURL+"/calls", "the send is listed", func() bool {
		return strings.Contains(js[string](t, ctx, `document.querySelector('#calls tr[data-class="send"]')?.textContent ?? ""`), "messages:send")
	})
	shots.take(ctx, "calls")

	// The search in the header finds the tenant by its appid, and the
	// user's events by openid, across tenants.
	do(t, ctx, "search by appid", chromedp.SendKeys(chromedp.ID("search"), consoleAppID+"\n"),
		chromedp.WaitVisible(chromedp.ID("found-tenants")))
	if n := js[int](t, ctx, `document.querySelectorAll('#found-tenants tr[data-tenant="`+tid+`"]').length`); n != 1 {
		t.Errorf("the search by appid lists the tenant %d times, want once", n)
	}
	do(t, ctx, "search by openid", chromedp.Navigate(base+"search?q=oConsoleUser00000000000001"), chromedp.WaitVisible(chromedp.ID("found-events")))
	if n := js[int](t, ctx, `document.querySelectorAll('#found-events tr[data-event]').length`); n != 1 {
		t.Errorf("the search by openid lists %d events, want the user's one", n)
	}
	shots.take(ctx, "search")

	// Pushes signed with another Token are refused, and the tenant page
	// says so: the reason, and the refusals by cause with what to check.
	for i := range 3 {
		q := fmt.Sprintf("?signature=%040d&timestamp=%d&nonce=%d", i, time.Now().Unix(), i)
		resp, err := http.Post(pushURL+q, "application/json", strings.NewReader(`{"Encrypt":"x"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// (Each replica adds its counts every 5 s: the three may come in two.)
	eventually(t, ctx, tenantURL, "the refused pushes show", func() bool {
		return js[int](t, ctx, `document.querySelectorAll('#reasons li[data-kind="PUSH_REJECTED"]').length`) == 1 &&
			js[string](t, ctx, `document.querySelector("#rejections tbody tr.in-force td:nth-child(2)")?.textContent ?? ""`) == "3"
	})
	if row := text(t, ctx, "#rejections tbody tr.in-force"); !strings.Contains(row, "bad_signature") || !strings.Contains(row, "3") || !strings.Contains(row, "Token") {
		t.Errorf("the refused pushes' row reads %q, want bad_signature, 3, and a hint naming the Token", row)
	}
	shots.take(ctx, "tenant refused pushes")
}

// TestConsole_Settings: the settings form shows the API's errors at their
// fields and saves the rest in one PATCH, leaving the secrets that were
// not typed as they were.
func TestConsole_Settings(t *testing.T) {
	ctx := browser(t)
	dir := t.TempDir()
	p := startServe(t, dir, "WXRELAY_ALLOW_PRIVATE_WEBHOOKS=true")
	admin := adminTokenIn(t, dir)
	var created struct {
		Tenant struct{ ID string } `json:"tenant"`
	}
	body := `{"appid":"` + consoleAppID + `","app_secret":"5ec2e75ec2e75ec2e75ec2e75ec2e75e","token":"` + consoleToken + `","encoding_aes_key":"` + consoleAESKey + `",
		"encrypt_mode":"ENCRYPT_MODE_SAFE","data_format":"DATA_FORMAT_JSON","webhook_url":"https://shop.example.com/hook","display_name":"Old name"}`
	if code := p.api(t, "POST", "/v1/tenants", admin, body, &created); code != 200 {
		t.Fatalf("create tenant: %d", code)
	}
	tid := created.Tenant.ID
	origin := "http://" + p.http
	do(t, ctx, "sign in and open the settings", chromedp.Navigate(origin+"/console/login"),
		chromedp.SendKeys(chromedp.ID("token"), admin), chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.ID("tenants")),
		chromedp.Navigate(origin+"/console/tenants/"+tid),
		chromedp.Click(chromedp.ID("settings")),
		chromedp.WaitVisible(chromedp.ID("save")))
	if got := get(t, ctx, "display name", chromedp.Value(chromedp.ID("display_name"))); got != "Old name" {
		t.Fatalf("the form shows display name %q, want the tenant's", got)
	}
	if got := get(t, ctx, "mode", chromedp.Value(chromedp.ID("encrypt_mode"))); got != "SAFE" {
		t.Errorf("the form shows encrypt mode %q, want SAFE", got)
	}
	do(t, ctx, "save a bad webhook URL",
		chromedp.SetValue(chromedp.ID("webhook_url"), "not a url"),
		chromedp.Submit(chromedp.ID("onboard")),
		chromedp.WaitVisible(chromedp.ID("webhook_url-error")))
	if msg := text(t, ctx, "#webhook_url-error"); !strings.Contains(msg, "does not parse") {
		t.Errorf("the webhook URL's error reads %q", msg)
	}
	do(t, ctx, "save",
		chromedp.SetValue(chromedp.ID("webhook_url"), "https://shop.example.com/v2/hook"),
		chromedp.SetValue(chromedp.ID("display_name"), "New name"),
		chromedp.SetValue(chromedp.ID("push_silence_alert"), "2h"),
		chromedp.SetValue(chromedp.ID("state"), "DISABLED"),
		chromedp.Submit(chromedp.ID("onboard")),
		chromedp.WaitVisible(chromedp.CSS("p.flash")))
	var got struct {
		DisplayName      string `json:"display_name"`
		WebhookURL       string `json:"webhook_url"`
		State            string `json:"state"`
		PushSilenceAlert string `json:"push_silence_alert"`
		EncryptMode      string `json:"encrypt_mode"`
		PushSecrets      string `json:"push_secrets"`
	}
	p.api(t, "GET", "/v1/tenants/"+tid, admin, "", &got)
	if got.DisplayName != "New name" || got.WebhookURL != "https://shop.example.com/v2/hook" || got.State != "STATE_DISABLED" ||
		got.PushSilenceAlert != "7200s" || got.EncryptMode != "ENCRYPT_MODE_SAFE" {
		t.Errorf("after saving, the tenant is %+v", got)
	}
	if got.PushSecrets != "PUSH_SECRETS_CURRENT" {
		t.Errorf("push_secrets = %s: the Token or EncodingAESKey changed though none was typed", got.PushSecrets)
	}
	if h1 := text(t, ctx, "h1"); !strings.Contains(h1, "New name") {
		t.Errorf("the tenant page's title reads %q", h1)
	}
}

// TestConsole_Recovery: a tenant whose webhook was down has failed
// events; once it is back, the operator recovers everything that failed
// since a time from the events page, in one go, and watches its progress
// until every event is delivered.
func TestConsole_Recovery(t *testing.T) {
	ctx := browser(t)
	shots := newScreenshots(t)
	hook, failing := newSwitchableHook(t, http.StatusServiceUnavailable)
	failing.Store(true)
	dir := t.TempDir()
	// One attempt, then FAILED.
	p := startServe(t, dir, "WXRELAY_ALLOW_PRIVATE_WEBHOOKS=true", "WXRELAY_RETRY_SCHEDULE=0s")
	admin := adminTokenIn(t, dir)
	var created struct {
		Tenant struct{ ID string } `json:"tenant"`
	}
	body := `{"appid":"` + consoleAppID + `","app_secret":"5ec2e75ec2e75ec2e75ec2e75ec2e75e","token":"` + consoleToken + `","encoding_aes_key":"` + consoleAESKey + `",
		"encrypt_mode":"ENCRYPT_MODE_SAFE","data_format":"DATA_FORMAT_JSON","webhook_url":"` + hook.URL + `/wechat"}`
	if code := p.api(t, "POST", "/v1/tenants", admin, body, &created); code != 200 {
		t.Fatalf("create tenant: %d", code)
	}
	tid := created.Tenant.ID
	origin := "http://" + p.http
	for i := range 3 {
		wxsimPush(t, origin+"/wx/"+tid, fmt.Sprintf("oRecoveryUser000000000000%d", i), "Anyone there?")
	}
	eventsURL := origin + "/console/tenants/" + tid + "/events"
	do(t, ctx, "sign in", chromedp.Navigate(origin+"/console/login"),
		chromedp.SendKeys(chromedp.ID("token"), admin), chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.ID("tenants")))
	eventually(t, ctx, eventsURL+"?state=FAILED", "the three events fail", func() bool {
		return js[int](t, ctx, `document.querySelectorAll('#events tr[data-state="FAILED"]').length`) == 3
	})

	failing.Store(false)
	do(t, ctx, "recover what failed in the last day",
		chromedp.Navigate(eventsURL), chromedp.Click(chromedp.CSS("details.recover summary")),
		chromedp.WaitVisible(chromedp.ID("recover")), chromedp.Click(chromedp.ID("recover")),
		chromedp.WaitVisible(chromedp.CSS("p.flash")))
	eventually(t, ctx, eventsURL, "the recovery finishes", func() bool {
		return js[string](t, ctx, `document.querySelector('#recoveries tr[data-recovery]')?.dataset.state ?? ""`) == "DONE"
	})
	if progress := text(t, ctx, "#recoveries tr[data-recovery] .count"); progress != "3 of 3" {
		t.Errorf("the recovery's progress reads %q, want 3 of 3", progress)
	}
	shots.take(ctx, "recovery done")
	eventually(t, ctx, eventsURL+"?state=DELIVERED", "the recovered events are delivered", func() bool {
		return js[int](t, ctx, `document.querySelectorAll('#events tr[data-state="DELIVERED"]').length`) == 3
	})
}

// TestConsole_Operators: named operators, each signing in with their own
// key: added from the console (the key shown once), named in the header
// and in the audit log beside what they changed, and removed at once,
// their open session with them.
func TestConsole_Operators(t *testing.T) {
	ctx := browser(t)
	shots := newScreenshots(t)
	dir := t.TempDir()
	p := startServe(t, dir)
	admin := adminTokenIn(t, dir)
	base := "http://" + p.http + "/console/"
	signIn := func(what, token string) {
		t.Helper()
		do(t, ctx, what, chromedp.Navigate(base+"login"),
			chromedp.SendKeys(chromedp.ID("token"), token), chromedp.Submit(chromedp.ID("token")),
			// The sign-in page has a main h1 too: wait for what only a
			// signed-in page shows, or the form's answer may still be on its
			// way and abort the next navigation (net::ERR_ABORTED).
			chromedp.WaitVisible(chromedp.ID("who")))
	}
	addOperator := func(name string) string {
		t.Helper()
		do(t, ctx, "add "+name, chromedp.Navigate(base+"operators"),
			chromedp.SendKeys(chromedp.ID("name"), name), chromedp.Submit(chromedp.ID("add-operator")),
			chromedp.WaitVisible(chromedp.ID("new-key")))
		return text(t, ctx, "#new-key")
	}
	signOut := func() {
		t.Helper()
		do(t, ctx, "sign out", chromedp.Click(chromedp.CSS("form.logout button")), chromedp.WaitVisible(chromedp.ID("token")))
	}

	signIn("sign in with the admin token", admin)
	if who := text(t, ctx, "#who"); who != "admin token" {
		t.Errorf("signed in with an admin token, the header says %q", who)
	}
	aliceKey := addOperator("Alice")
	shots.take(ctx, "operator added")
	signOut()

	signIn("sign in as Alice", aliceKey)
	if who := text(t, ctx, "#who"); who != "Alice" {
		t.Errorf("signed in with Alice's key, the header says %q", who)
	}
	bobKey := addOperator("Bob")
	// A new key for Bob: the one he had stops.
	oldBobKey := bobKey
	do(t, ctx, "give Bob a new key", chromedp.Navigate(base+"operators"),
		chromedp.Submit(chromedp.CSS(`tr[data-operator="Bob"] form.rotate`)), chromedp.WaitVisible(chromedp.ID("new-key")))
	if bobKey = text(t, ctx, "#new-key"); bobKey == oldBobKey || listTenants(t, p, oldBobKey) != 401 || listTenants(t, p, bobKey) != 200 {
		t.Errorf("after Bob's new key, his old key and new key answer %d and %d, want 401 and 200", listTenants(t, p, oldBobKey), listTenants(t, p, bobKey))
	}
	do(t, ctx, "remove Bob", chromedp.Navigate(base+"operators"),
		chromedp.Submit(chromedp.CSS(`tr[data-operator="Bob"] form.remove`)), chromedp.WaitVisible(chromedp.CSS("p.flash")))
	do(t, ctx, "open the audit log", chromedp.Navigate(base+"audit"), chromedp.WaitVisible(chromedp.ID("audit")))
	var rows []string
	for i := range js[int](t, ctx, `document.querySelectorAll("#audit tbody tr").length`) {
		rows = append(rows, strings.Join(strings.Fields(js[string](t, ctx, fmt.Sprintf(`document.querySelectorAll("#audit tbody tr")[%d].textContent`, i))), " "))
	}
	want := []string{"Alice DeleteOperator op_", "Alice RotateOperatorKey op_", "Alice CreateOperator op_", "admin token CreateOperator op_"}
	if len(rows) != len(want) {
		t.Fatalf("the audit log shows\n%s\nwant %d rows", strings.Join(rows, "\n"), len(want))
	}
	for i, w := range want {
		if !strings.Contains(rows[i], w) || !strings.HasSuffix(rows[i], "OK") {
			t.Errorf("audit row %d = %q, want %q ... OK", i, rows[i], w)
		}
	}
	shots.take(ctx, "audit log")
	signOut()

	// A viewer, added from the console, reads the pages and is offered no
	// change: no settings, no test event, no rotation, no new operator.
	var created struct {
		Tenant struct{ ID string } `json:"tenant"`
	}
	if code := p.api(t, "POST", "/v1/tenants", admin, `{"appid":"wx0123456789abcd77","app_secret":"5ec2e75ec2e75ec2e75ec2e75ec2e75e","token":"PushToken1",`+
		`"encrypt_mode":"ENCRYPT_MODE_PLAINTEXT","data_format":"DATA_FORMAT_JSON","webhook_url":"https://shop.example.com/hook"}`, &created); code != 200 {
		t.Fatalf("create a tenant: %d", code)
	}
	signIn("sign in as an admin to add a viewer", admin)
	do(t, ctx, "add Vera, a viewer", chromedp.Navigate(base+"operators"),
		chromedp.SendKeys(chromedp.ID("name"), "Vera"), chromedp.SetValue(chromedp.ID("role"), "viewer"),
		chromedp.Submit(chromedp.ID("add-operator")), chromedp.WaitVisible(chromedp.ID("new-key")))
	veraKey := text(t, ctx, "#new-key")
	if role := js[string](t, ctx, `document.querySelector('tr[data-operator="Vera"]')?.dataset.role ?? ""`); role != "viewer" {
		t.Errorf("Vera's row says role %q, want viewer", role)
	}
	signOut()
	signIn("sign in as Vera", veraKey)
	if badge := js[string](t, ctx, `document.getElementById("viewer")?.textContent ?? ""`); badge != "viewer" {
		t.Errorf("a viewer's header shows %q beside her name, want viewer", badge)
	}
	do(t, ctx, "Vera opens the tenant", chromedp.Navigate(base+"tenants/"+created.Tenant.ID), chromedp.WaitVisible(chromedp.ID("calls")))
	for _, change := range []string{"#settings", "#send-test-event", "#rotate-api-key", "#rotate-webhook-secret", `a[href="/console/tenants/new"]`} {
		if js[bool](t, ctx, `document.querySelector('`+change+`') !== null`) {
			t.Errorf("a viewer's tenant page offers %s", change)
		}
	}
	shots.take(ctx, "viewer's tenant page")
	for _, form := range []string{"tenants/new", "tenants/" + created.Tenant.ID + "/settings", "components/new"} {
		do(t, ctx, "Vera opens "+form+" by its URL", chromedp.Navigate(base+form), chromedp.WaitVisible(chromedp.CSS("p.error")))
		if msg := text(t, ctx, "p.error"); !strings.Contains(msg, "Vera is a viewer") || js[bool](t, ctx, `document.querySelector('main form') !== null`) {
			t.Errorf("a viewer at %s is shown a form, or %q", form, msg)
		}
	}
	do(t, ctx, "Vera opens the operators", chromedp.Navigate(base+"operators"), chromedp.WaitVisible(chromedp.ID("operators")))
	if js[bool](t, ctx, `document.querySelector('#add-operator, form.rotate, form.remove') !== null`) {
		t.Error("a viewer's operators page offers changes")
	}
	signOut()

	// Bob's key was removed: it signs in no more.
	do(t, ctx, "sign in as Bob", chromedp.Navigate(base+"login"),
		chromedp.SendKeys(chromedp.ID("token"), bobKey), chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.ID("login-error")))

	// Removing Alice, through the API, ends the session she has open.
	signIn("sign in as Alice again", aliceKey)
	var ops struct {
		Operators []struct{ ID, Name string } `json:"operators"`
	}
	p.api(t, "GET", "/v1/operators", admin, "", &ops)
	for _, o := range ops.Operators {
		if o.Name == "Alice" {
			if code := p.api(t, "DELETE", "/v1/operators/"+o.ID, admin, "", nil); code != 200 {
				t.Fatalf("remove Alice: %d", code)
			}
		}
	}
	do(t, ctx, "Alice's next page", chromedp.Navigate(base), chromedp.WaitVisible(chromedp.ID("token")))
	if loc := get(t, ctx, "location", chromedp.Location()); !strings.Contains(loc, "/console/login") {
		t.Errorf("after Alice was removed her session shows %s, want the sign-in page", loc)
	}
}
