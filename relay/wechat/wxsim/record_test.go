package wxsim_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat/wxsim"
)

func TestCalls(t *testing.T) {
	e := newEnv(t)
	tok := e.classicToken(t)
	e.clock.Advance(time.Minute)
	checkAnswer(t, e.send(t, tok, `{"touser":"`+openID+`","msgtype":"text","text":{"content":"a"}}`), 0)
	checkAnswer(t, e.send(t, tok, `{"touser":""}`), 40003)

	calls := e.sim.Calls()
	if got, want := len(calls), 3; got != want {
		t.Fatalf("len(Calls()) = %d, want %d", got, want)
	}
	for i, want := range []struct {
		time    time.Time
		method  string
		path    string
		errcode int
	}{
		{start, "GET", "/cgi-bin/token", 0},
		{start.Add(time.Minute), "POST", "/cgi-bin/message/custom/send", 0},
		{start.Add(time.Minute), "POST", "/cgi-bin/message/custom/send", 40003},
	} {
		c := calls[i]
		if !c.Time.Equal(want.time) || c.Method != want.method || c.Path != want.path || c.Errcode != want.errcode || c.AppID != appID || c.Status != http.StatusOK {
			t.Errorf("call %d = {%v %s %s appid %q errcode %d status %d}, want {%v %s %s appid %q errcode %d status 200}",
				i, c.Time, c.Method, c.Path, c.AppID, c.Errcode, c.Status, want.time, want.method, want.path, appID, want.errcode)
		}
	}
	if got := calls[1].Query.Get("access_token"); got != tok {
		t.Errorf("recorded access_token = %q, want the token used", got)
	}

	// Calls returns a copy.
	calls[1].Body[0] = 'X'
	calls[1].Query.Set("access_token", "changed")
	again := e.sim.Calls()
	if again[1].Body[0] != '{' || again[1].Query.Get("access_token") != tok {
		t.Error("changing the result of Calls changed the record")
	}
}

func TestTokenCounts_ExactlyOneRefresh(t *testing.T) {
	// The shape of a relay test: many calls share one token, and an
	// invalidation leads to exactly one refresh.
	e := newEnv(t)
	tok := e.stableToken(t, false).AccessToken
	for range 5 {
		checkAnswer(t, e.send(t, tok, textBody), 0)
		e.stableToken(t, false)
	}
	e.sim.InvalidateTokens(appID)
	checkAnswer(t, e.send(t, tok, textBody), 40001)
	tok = e.stableToken(t, false).AccessToken
	checkAnswer(t, e.send(t, tok, textBody), 0)

	if got, want := e.sim.TokenCounts(appID), (wxsim.TokenCounts{Stable: 2}); got != want {
		t.Errorf("TokenCounts = %+v, want %+v", got, want)
	}
	if got := e.sim.TokenCounts("wxnobody"); got.Total() != 0 {
		t.Errorf("TokenCounts(unknown) = %+v, want zero", got)
	}
}

func TestControl_CallsAndReset(t *testing.T) {
	e := newEnv(t)
	tok := e.classicToken(t)
	checkAnswer(t, e.send(t, tok, textBody), 0)
	e.sim.FailNext(1, "")
	e.sim.SetIPWhitelist(true)

	fetch := func(query string) (got struct {
		Calls  []wxsim.Call                 `json:"calls"`
		Tokens map[string]wxsim.TokenCounts `json:"tokens"`
	}) {
		t.Helper()
		resp, err := http.Get(e.url + "/wxsim/calls" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /wxsim/calls: status %d", resp.StatusCode)
		}
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
			t.Fatal(err)
		}
		return got
	}

	all := fetch("")
	if got, want := len(all.Calls), 2; got != want {
		t.Fatalf("calls = %d, want %d", got, want)
	}
	if got, want := string(all.Calls[1].Body), textBody; got != want {
		t.Errorf("calls[1].body = %s, want %s", got, want)
	}
	if got, want := all.Tokens[appID].Classic, 1; got != want {
		t.Errorf("tokens[%s].classic = %d, want %d", appID, got, want)
	}
	if got := fetch("?path=/cgi-bin/message/custom/send"); len(got.Calls) != 1 || got.Calls[0].Path != "/cgi-bin/message/custom/send" {
		t.Errorf("filtered calls = %+v, want the one send", got.Calls)
	}

	e.control(t, "POST", "/wxsim/reset", "", http.StatusNoContent)
	if got := fetch(""); len(got.Calls) != 0 || len(got.Tokens) != 0 {
		t.Errorf("after reset: %d calls, tokens %v; want none", len(got.Calls), got.Tokens)
	}
	// Reset cleared the faults but kept the token.
	checkAnswer(t, e.send(t, tok, textBody), 0)
	e.classicToken(t)
}

func TestUnknownPath(t *testing.T) {
	e := newEnv(t)
	resp, err := http.Get(e.url + "/cgi-bin/getcallbackip")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := resp.StatusCode, http.StatusNotFound; got != want {
		t.Errorf("status = %d, want %d", got, want)
	}
	if c := e.lastCall(t); c.Path != "/cgi-bin/getcallbackip" || c.Status != http.StatusNotFound {
		t.Errorf("recorded %s status %d, want the unknown path with 404", c.Path, c.Status)
	}
}
