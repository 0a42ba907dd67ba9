package wxsim_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat/wxsim"
)

func TestClassicToken_Errors(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct {
		name   string
		method string
		query  url.Values
		want   int
	}{
		{"wrong grant_type", "GET", url.Values{"grant_type": {"authorization_code"}, "appid": {appID}, "secret": {secret}}, 40002},
		{"no grant_type", "GET", url.Values{"appid": {appID}, "secret": {secret}}, 40002},
		{"no appid", "GET", url.Values{"grant_type": {"client_credential"}, "secret": {secret}}, 41002},
		{"no secret", "GET", url.Values{"grant_type": {"client_credential"}, "appid": {appID}}, 41004},
		{"unknown appid", "GET", url.Values{"grant_type": {"client_credential"}, "appid": {"wxnobody"}, "secret": {secret}}, 40013},
		{"wrong secret", "GET", url.Values{"grant_type": {"client_credential"}, "appid": {appID}, "secret": {"nope"}}, 40125},
		{"POST", "POST", url.Values{"grant_type": {"client_credential"}, "appid": {appID}, "secret": {secret}}, 43001},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := e.do(t, tt.method, "/cgi-bin/token?"+tt.query.Encode(), "", nil)
			checkAnswer(t, a, tt.want)
			if a.AccessToken != "" {
				t.Errorf("access_token = %q, want none with an error", a.AccessToken)
			}
		})
	}
	if got := e.sim.TokenCounts(appID).Total(); got != 0 {
		t.Errorf("tokens issued after only failed calls = %d, want 0", got)
	}
}

func TestClassicToken_Shape(t *testing.T) {
	e := newEnv(t)
	resp, err := http.Get(e.url + "/cgi-bin/token?grant_type=client_credential&appid=" + appID + "&secret=" + secret)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var fields map[string]any
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatalf("answer %s: %v", raw, err)
	}
	if _, ok := fields["errcode"]; ok {
		t.Errorf("answer %s has errcode; WeChat's token success has none", raw)
	}
	if got, want := fields["expires_in"], 7200.0; got != want {
		t.Errorf("expires_in = %v, want %v", got, want)
	}
	tok, _ := fields["access_token"].(string)
	if len(tok) < 100 {
		t.Errorf("token length = %d, want at least 100 (real tokens are long)", len(tok))
	}
	if strings.Trim(tok, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != "" {
		t.Errorf("token %q has characters outside the URL-safe alphabet", tok)
	}
	if got := e.classicToken(t); got == tok {
		t.Error("second call returned the same token, want a new one per call")
	}
}

func TestClassicToken_Overlap(t *testing.T) {
	e := newEnv(t)
	first := e.classicToken(t)
	e.clock.Advance(30 * time.Minute)
	second := e.classicToken(t) // supersedes first: five more minutes for it

	for _, step := range []struct {
		advance time.Duration // since the previous step
		tok     string
		name    string
		want    int
	}{
		{0, first, "old token right after the new one", 0},
		{5*time.Minute - time.Second, first, "old token at 4m59s", 0},
		{time.Second, first, "old token at 5m", 40001},
		{time.Second, second, "new token at 5m01s", 0},
		{2*time.Hour - 5*time.Minute - 2*time.Second, second, "new token 1s before expiry", 0},
		{time.Second, second, "new token at 2h", 42001},
	} {
		e.clock.Advance(step.advance)
		if got := e.tokenErrcode(t, step.tok); got != step.want {
			t.Fatalf("%s: errcode = %d, want %d", step.name, got, step.want)
		}
	}
}

func TestClassicToken_OverlapEndsAtExpiry(t *testing.T) {
	// A token superseded in its last five minutes simply expires: 42001.
	e := newEnv(t)
	first := e.classicToken(t)
	e.clock.Advance(2*time.Hour - time.Minute)
	e.classicToken(t)
	e.clock.Advance(time.Minute)
	if got, want := e.tokenErrcode(t, first), 42001; got != want {
		t.Fatalf("errcode = %d, want %d", got, want)
	}
}

func TestAccessTokenCheck(t *testing.T) {
	e := newEnv(t)
	expired := e.classicToken(t)
	e.clock.Advance(2 * time.Hour)
	superseded := e.classicToken(t)
	e.classicToken(t)
	e.clock.Advance(5 * time.Minute)
	live := e.classicToken(t)
	mediaID := e.mustUpload(t, live)

	endpoints := []struct {
		method, path, body string
	}{
		{"POST", "/cgi-bin/message/custom/send?", `{"touser":"` + openID + `","msgtype":"text","text":{"content":"hi"}}`},
		{"POST", "/cgi-bin/message/custom/business/send?", `{"touser":"` + openID + `","msgtype":"text","text":{"content":"hi"}}`},
		{"POST", "/cgi-bin/message/custom/typing?", `{"touser":"` + openID + `","command":"Typing"}`},
		{"POST", "/cgi-bin/message/custom/business/typing?", `{"touser":"` + openID + `","command":"CancelTyping"}`},
		{"POST", "/cgi-bin/media/upload?type=image&", ""},
		{"GET", "/cgi-bin/media/get?media_id=" + mediaID + "&", ""},
	}
	for _, tt := range []struct {
		name  string
		token string
		want  int
	}{
		{"missing", "", 41001},
		{"not shaped like a token", "garbage!", 40014},
		{"shaped like a token but never issued", strings.Repeat("A", 128), 40001},
		{"expired", expired, 42001},
		{"superseded", superseded, 40001},
	} {
		for _, ep := range endpoints {
			t.Run(tt.name+" "+ep.path, func(t *testing.T) {
				a := e.do(t, ep.method, ep.path+"access_token="+url.QueryEscape(tt.token), "application/json", strings.NewReader(ep.body))
				checkAnswer(t, a, tt.want)
			})
		}
	}
	t.Run("live token is recorded with its appid", func(t *testing.T) {
		checkAnswer(t, e.send(t, live, `{"touser":"`+openID+`","msgtype":"text","text":{"content":"hi"}}`), 0)
		if got, want := e.lastCall(t).AppID, appID; got != want {
			t.Errorf("Call.AppID = %q, want %q", got, want)
		}
	})
}

func TestStableToken_NormalMode(t *testing.T) {
	e := newEnv(t)
	first := e.stableToken(t, false)
	checkAnswer(t, first, 0)
	if got, want := first.ExpiresIn, 7200; got != want {
		t.Fatalf("first expires_in = %d, want %d", got, want)
	}

	e.clock.Advance(time.Hour)
	again := e.stableToken(t, false)
	if again.AccessToken != first.AccessToken {
		t.Fatal("normal mode issued a new token an hour in, want the current one")
	}
	if got, want := again.ExpiresIn, 3600; got != want {
		t.Errorf("expires_in an hour in = %d, want the remaining %d", got, want)
	}

	e.clock.Advance(55 * time.Minute) // exactly 300 s left: still the current token
	if got := e.stableToken(t, false); got.AccessToken != first.AccessToken || got.ExpiresIn != 300 {
		t.Fatalf("with 300 s left: got same token %t, expires_in %d; want same token, 300", got.AccessToken == first.AccessToken, got.ExpiresIn)
	}

	e.clock.Advance(time.Second) // in the last five minutes: a new token
	next := e.stableToken(t, false)
	if next.AccessToken == first.AccessToken {
		t.Fatal("with 299 s left: same token, want a new one")
	}
	if got, want := next.ExpiresIn, 7200; got != want {
		t.Errorf("new token expires_in = %d, want %d", got, want)
	}
	if got := e.tokenErrcode(t, first.AccessToken); got != 0 {
		t.Errorf("old token after rollover: errcode %d, want it valid until its own expiry", got)
	}
	e.clock.Advance(299 * time.Second)
	if got, want := e.tokenErrcode(t, first.AccessToken), 42001; got != want {
		t.Errorf("old token at its expiry: errcode %d, want %d", got, want)
	}
	if got := e.tokenErrcode(t, next.AccessToken); got != 0 {
		t.Errorf("new token: errcode %d, want 0", got)
	}
	if got, want := e.sim.TokenCounts(appID).Stable, 2; got != want {
		t.Errorf("TokenCounts.Stable = %d, want %d", got, want)
	}
}

func TestStableToken_ExpiresInNeverBelow300(t *testing.T) {
	e := newEnv(t)
	// Steps of 61 s cross each rollover window of 300 s four or five times.
	const step = 61 * time.Second
	for elapsed := time.Duration(0); elapsed < 5*time.Hour; elapsed += step {
		a := e.stableToken(t, false)
		if a.ExpiresIn < 300 {
			t.Fatalf("at %v: expires_in = %d, want >= 300", elapsed, a.ExpiresIn)
		}
		if got := e.tokenErrcode(t, a.AccessToken); got != 0 {
			t.Fatalf("at %v: returned token answers errcode %d, want 0", elapsed, got)
		}
		e.clock.Advance(step)
	}
}

func TestStableToken_IsolatedFromClassic(t *testing.T) {
	e := newEnv(t)
	stable := e.stableToken(t, false).AccessToken
	classic := e.classicToken(t)
	if stable == classic {
		t.Fatal("stable and classic tokens are equal, want separate families")
	}
	e.classicToken(t) // supersedes classic only
	e.clock.Advance(5 * time.Minute)
	if got := e.tokenErrcode(t, stable); got != 0 {
		t.Errorf("stable token after classic refreshes: errcode %d, want 0", got)
	}
	if got := e.stableToken(t, false).AccessToken; got != stable {
		t.Error("stable_token changed after classic refreshes, want the same token")
	}

	latest := e.classicToken(t)
	e.stableToken(t, true) // force refresh kills the stable token only
	if got := e.tokenErrcode(t, latest); got != 0 {
		t.Errorf("classic token after force_refresh: errcode %d, want 0", got)
	}
	if got, want := e.sim.TokenCounts(appID), (wxsim.TokenCounts{Classic: 3, Stable: 1, StableForced: 1}); got != want {
		t.Errorf("TokenCounts = %+v, want %+v", got, want)
	}
}

func TestStableToken_ForceRefresh(t *testing.T) {
	e := newEnv(t)
	old := e.stableToken(t, false).AccessToken

	forced := e.stableToken(t, true)
	checkAnswer(t, forced, 0)
	if forced.AccessToken == old || forced.ExpiresIn != 7200 {
		t.Fatalf("force_refresh: same token %t, expires_in %d; want a new token, 7200", forced.AccessToken == old, forced.ExpiresIn)
	}
	if got, want := e.tokenErrcode(t, old), 40001; got != want {
		t.Errorf("old token right after force_refresh: errcode %d, want %d", got, want)
	}

	e.clock.Advance(29 * time.Second)
	if got := e.stableToken(t, true); got.AccessToken != forced.AccessToken {
		t.Error("force_refresh 29 s after the last: new token, want the current one")
	}
	if got, want := e.sim.TokenCounts(appID).StableForced, 1; got != want {
		t.Errorf("StableForced after a too-early force = %d, want %d", got, want)
	}
	e.clock.Advance(time.Second)
	if got := e.stableToken(t, true); got.AccessToken == forced.AccessToken {
		t.Error("force_refresh 30 s after the last: same token, want a new one")
	}

	// Use up the day: 2 refreshes so far, 20 allowed.
	for i := 3; i <= 20; i++ {
		e.clock.Advance(31 * time.Second)
		checkAnswer(t, e.stableToken(t, true), 0)
	}
	e.clock.Advance(31 * time.Second)
	checkAnswer(t, e.stableToken(t, true), 45009)
	if got := e.stableToken(t, false); got.Errcode != 0 || got.AccessToken == "" {
		t.Errorf("normal mode after the force quota: errcode %d, want a token", got.Errcode)
	}
	if got, want := e.sim.TokenCounts(appID).StableForced, 20; got != want {
		t.Errorf("StableForced = %d, want %d", got, want)
	}

	// The quota day starts at midnight in Beijing, 16:00 UTC.
	now := e.clock.Now()
	e.clock.Advance(time.Date(2025, 6, 1, 15, 59, 59, 0, time.UTC).Sub(now))
	checkAnswer(t, e.stableToken(t, true), 45009)
	e.clock.Advance(time.Second)
	checkAnswer(t, e.stableToken(t, true), 0)
}

func TestStableToken_Body(t *testing.T) {
	e := newEnv(t)
	body := func(fields map[string]any) string {
		b, _ := json.Marshal(fields)
		return string(b)
	}
	for _, tt := range []struct {
		name, method, query, body string
		want                      int
	}{
		{"empty body", "POST", "", "", 44002},
		{"blank body", "POST", "", " \n", 44002},
		{"parameters in the query only", "POST", "?grant_type=client_credential&appid=" + appID + "&secret=" + secret, "", 44002},
		{"form body", "POST", "", "grant_type=client_credential&appid=" + appID + "&secret=" + secret, 47001},
		{"truncated JSON", "POST", "", `{"grant_type":"client_credential"`, 47001},
		{"JSON array", "POST", "", `[]`, 47001},
		{"force_refresh as a string", "POST", "", body(map[string]any{"grant_type": "client_credential", "appid": appID, "secret": secret, "force_refresh": "true"}), 47001},
		{"no grant_type", "POST", "", body(map[string]any{"appid": appID, "secret": secret}), 40002},
		{"wrong grant_type", "POST", "", body(map[string]any{"grant_type": "password", "appid": appID, "secret": secret}), 40002},
		{"no appid", "POST", "", body(map[string]any{"grant_type": "client_credential", "secret": secret}), 41002},
		{"no secret", "POST", "", body(map[string]any{"grant_type": "client_credential", "appid": appID}), 41004},
		{"unknown appid", "POST", "", body(map[string]any{"grant_type": "client_credential", "appid": "wxnobody", "secret": secret}), 40013},
		{"wrong secret", "POST", "", body(map[string]any{"grant_type": "client_credential", "appid": appID, "secret": "nope"}), 40125},
		{"GET", "GET", "?grant_type=client_credential&appid=" + appID + "&secret=" + secret, "", 43002},
		{"ok without force_refresh", "POST", "", body(map[string]any{"grant_type": "client_credential", "appid": appID, "secret": secret}), 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := e.do(t, tt.method, "/cgi-bin/stable_token"+tt.query, "application/json", strings.NewReader(tt.body))
			checkAnswer(t, a, tt.want)
		})
	}
}
