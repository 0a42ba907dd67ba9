package wxsim_test

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat/wxsim"
)

const textBody = `{"touser":"` + openID + `","msgtype":"text","text":{"content":"hi"}}`

// control posts a control request and checks its HTTP status.
func (e *env) control(t *testing.T, method, path, body string, want int) {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("%s %s %s: status %d, want %d", method, path, body, resp.StatusCode, want)
	}
}

// Each fault test runs twice: through the Go method and through its HTTP
// control endpoint.
type faultAPI struct {
	name           string
	failNext       func(t *testing.T, e *env, n int, path string)
	rejectSends    func(t *testing.T, e *env, openid string, code int)
	setLatency     func(t *testing.T, e *env, d time.Duration)
	setIPWhitelist func(t *testing.T, e *env, on bool)
	invalidate     func(t *testing.T, e *env, appid string)
	clear          func(t *testing.T, e *env)
}

var faultAPIs = []faultAPI{
	{
		name:     "Go",
		failNext: func(t *testing.T, e *env, n int, path string) { e.sim.FailNext(n, path) },
		rejectSends: func(t *testing.T, e *env, openid string, code int) {
			if err := e.sim.RejectSends(openid, code); err != nil {
				t.Fatal(err)
			}
		},
		setLatency:     func(t *testing.T, e *env, d time.Duration) { e.sim.SetLatency(d) },
		setIPWhitelist: func(t *testing.T, e *env, on bool) { e.sim.SetIPWhitelist(on) },
		invalidate: func(t *testing.T, e *env, appid string) {
			if err := e.sim.InvalidateTokens(appid); err != nil {
				t.Fatal(err)
			}
		},
		clear: func(t *testing.T, e *env) { e.sim.ClearFaults() },
	},
	{
		name: "HTTP",
		failNext: func(t *testing.T, e *env, n int, path string) {
			e.control(t, "POST", "/wxsim/faults/system-error", `{"count":`+strconv.Itoa(n)+`,"path":"`+path+`"}`, http.StatusNoContent)
		},
		rejectSends: func(t *testing.T, e *env, openid string, code int) {
			e.control(t, "POST", "/wxsim/faults/reject", `{"openid":"`+openid+`","errcode":`+strconv.Itoa(code)+`}`, http.StatusNoContent)
		},
		setLatency: func(t *testing.T, e *env, d time.Duration) {
			e.control(t, "POST", "/wxsim/faults/latency", `{"latency":"`+d.String()+`"}`, http.StatusNoContent)
		},
		setIPWhitelist: func(t *testing.T, e *env, on bool) {
			body := `{"enabled":false}`
			if on {
				body = `{"enabled":true}`
			}
			e.control(t, "POST", "/wxsim/faults/ip-whitelist", body, http.StatusNoContent)
		},
		invalidate: func(t *testing.T, e *env, appid string) {
			e.control(t, "POST", "/wxsim/apps/"+appid+"/invalidate", "", http.StatusNoContent)
		},
		clear: func(t *testing.T, e *env) { e.control(t, "DELETE", "/wxsim/faults", "", http.StatusNoContent) },
	},
}

func TestFailNext(t *testing.T) {
	for _, api := range faultAPIs {
		t.Run(api.name, func(t *testing.T) {
			e := newEnv(t)
			tok := e.classicToken(t)

			api.failNext(t, e, 2, "/cgi-bin/message/custom/send")
			checkAnswer(t, e.postJSON(t, "/cgi-bin/message/custom/typing?access_token="+tok, `{"touser":"`+openID+`","command":"Typing"}`), 0)
			checkAnswer(t, e.send(t, tok, textBody), -1)
			checkAnswer(t, e.send(t, tok, textBody), -1)
			checkAnswer(t, e.send(t, tok, textBody), 0)

			api.failNext(t, e, 1, "")
			a := e.get(t, "/cgi-bin/token?grant_type=client_credential&appid="+appID+"&secret="+secret)
			checkAnswer(t, a, -1)
			if got, want := e.sim.TokenCounts(appID).Classic, 1; got != want {
				t.Errorf("classic tokens issued = %d, want %d: a failed call issues none", got, want)
			}
			if got := e.tokenErrcode(t, tok); got != 0 {
				t.Errorf("after the injected failures: errcode %d, want 0", got)
			}
		})
	}
}

func TestRejectSends(t *testing.T) {
	for _, api := range faultAPIs {
		t.Run(api.name, func(t *testing.T) {
			e := newEnv(t)
			tok := e.classicToken(t)
			const other = "oOther"
			otherBody := strings.Replace(textBody, openID, other, 1)

			api.rejectSends(t, e, openID, 45015)
			api.rejectSends(t, e, other, 45047)
			checkAnswer(t, e.send(t, tok, textBody), 45015)
			checkAnswer(t, e.send(t, tok, otherBody), 45047)
			checkAnswer(t, e.send(t, tok, `{"touser":"`+openID+`","msgtype":"text","text":{"content":""}}`), 44004) // validation comes first
			if got := e.tokenErrcode(t, tok); got != 0 {
				t.Errorf("typing to a rejected openid: errcode %d, want 0", got)
			}
			checkAnswer(t, e.send(t, tok, strings.Replace(textBody, openID, "oSomeoneElse", 1)), 0)

			api.rejectSends(t, e, openID, 0)
			checkAnswer(t, e.send(t, tok, textBody), 0)
			checkAnswer(t, e.send(t, tok, otherBody), 45047)
			api.clear(t, e)
			checkAnswer(t, e.send(t, tok, otherBody), 0)
		})
	}
}

func TestRejectSends_BadArguments(t *testing.T) {
	sim := wxsim.New(wxsim.Options{})
	for _, tt := range []struct {
		openid string
		code   int
	}{{"", 45015}, {openID, 40001}, {openID, -1}} {
		if err := sim.RejectSends(tt.openid, tt.code); err == nil {
			t.Errorf("RejectSends(%q, %d) = nil, want an error", tt.openid, tt.code)
		}
	}
}

func TestSetLatency(t *testing.T) {
	for _, api := range faultAPIs {
		t.Run(api.name, func(t *testing.T) {
			e := newEnv(t)
			tok := e.classicToken(t)
			const latency = 150 * time.Millisecond
			api.setLatency(t, e, latency)

			began := time.Now()
			checkAnswer(t, e.send(t, tok, textBody), 0)
			if got := time.Since(began); got < latency {
				t.Errorf("answer took %v, want at least %v", got, latency)
			}

			impatient := &http.Client{Timeout: 20 * time.Millisecond}
			if resp, err := impatient.Post(e.url+"/cgi-bin/message/custom/send?access_token="+tok, "application/json", strings.NewReader(textBody)); err == nil {
				resp.Body.Close()
				t.Fatal("client with a 20ms timeout got an answer, want a timeout")
			}
			// The answer was late, not the send: it went through all the same.
			if c := e.lastCall(t); c.Errcode != 0 || c.Path != "/cgi-bin/message/custom/send" {
				t.Errorf("abandoned send recorded as %s errcode %d, want the send with errcode 0", c.Path, c.Errcode)
			}

			api.setLatency(t, e, 0)
			fast := &http.Client{Timeout: 5 * latency} // generous: the machine may be busy
			resp, err := fast.Get(e.url + "/cgi-bin/token")
			if err != nil {
				t.Fatalf("after removing latency: %v", err)
			}
			resp.Body.Close()
		})
	}
}

func TestSetIPWhitelist(t *testing.T) {
	for _, api := range faultAPIs {
		t.Run(api.name, func(t *testing.T) {
			e := newEnv(t)
			tok := e.classicToken(t)
			api.setIPWhitelist(t, e, true)

			const want = "invalid ip 127.0.0.1 ipv6 ::ffff:127.0.0.1, not in whitelist rid: "
			classic := e.get(t, "/cgi-bin/token?grant_type=client_credential&appid="+appID+"&secret="+secret)
			stable := e.stableToken(t, false)
			for _, a := range []answer{classic, stable} {
				checkAnswer(t, a, 40164)
				if !strings.HasPrefix(a.Errmsg, want) {
					t.Errorf("errmsg = %q, want it to start %q", a.Errmsg, want)
				}
			}
			if got := e.tokenErrcode(t, tok); got != 0 {
				t.Errorf("API call with a token issued before: errcode %d, want 0 (the switch guards token calls)", got)
			}

			api.setIPWhitelist(t, e, false)
			e.classicToken(t)
		})
	}
}

func TestInvalidateTokens(t *testing.T) {
	for _, api := range faultAPIs {
		t.Run(api.name, func(t *testing.T) {
			e := newEnv(t)
			old := e.classicToken(t)
			classic := e.classicToken(t)
			stable := e.stableToken(t, false).AccessToken

			api.invalidate(t, e, appID)
			for name, tok := range map[string]string{"superseded classic": old, "classic": classic, "stable": stable} {
				if got, want := e.tokenErrcode(t, tok), 40001; got != want {
					t.Errorf("%s token: errcode %d, want %d", name, got, want)
				}
			}
			next := e.stableToken(t, false)
			if next.AccessToken == stable || next.ExpiresIn != 7200 {
				t.Errorf("stable_token after invalidation: same token %t, expires_in %d; want a new token", next.AccessToken == stable, next.ExpiresIn)
			}
			if got := e.tokenErrcode(t, next.AccessToken); got != 0 {
				t.Errorf("new stable token: errcode %d, want 0", got)
			}
		})
	}
	t.Run("unknown app", func(t *testing.T) {
		e := newEnv(t)
		if err := e.sim.InvalidateTokens("wxnobody"); !errors.Is(err, wxsim.ErrUnknownApp) {
			t.Errorf("InvalidateTokens(unknown) = %v, want ErrUnknownApp", err)
		}
		e.control(t, "POST", "/wxsim/apps/wxnobody/invalidate", "", http.StatusNotFound)
	})
}

func TestControl_BadRequests(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct {
		name, method, path, body string
	}{
		{"app without secret", "POST", "/wxsim/apps", `{"appid":"wx1"}`},
		{"misspelt field", "POST", "/wxsim/apps", `{"appid":"wx1","secrte":"s"}`},
		{"not JSON", "POST", "/wxsim/apps", `appid=wx1`},
		{"two JSON values", "POST", "/wxsim/apps", `{"appid":"wx1","secret":"s"}{}`},
		{"zero system errors", "POST", "/wxsim/faults/system-error", `{"count":0}`},
		{"reject with another errcode", "POST", "/wxsim/faults/reject", `{"openid":"o","errcode":40001}`},
		{"reject without openid", "POST", "/wxsim/faults/reject", `{"errcode":45015}`},
		{"latency not a duration", "POST", "/wxsim/faults/latency", `{"latency":"soon"}`},
		{"negative latency", "POST", "/wxsim/faults/latency", `{"latency":"-1s"}`},
		{"whitelist without enabled", "POST", "/wxsim/faults/ip-whitelist", `{}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.control(t, tt.method, tt.path, tt.body, http.StatusBadRequest)
		})
	}
}

func TestControl_AddApp(t *testing.T) {
	e := newEnv(t)
	e.control(t, "POST", "/wxsim/apps", `{"appid":"wxnew","secret":"s1"}`, http.StatusNoContent)
	checkAnswer(t, e.get(t, "/cgi-bin/token?grant_type=client_credential&appid=wxnew&secret=s1"), 0)
	e.control(t, "POST", "/wxsim/apps", `{"appid":"wxnew","secret":"s2"}`, http.StatusNoContent)
	checkAnswer(t, e.get(t, "/cgi-bin/token?grant_type=client_credential&appid=wxnew&secret=s1"), 40125)
	checkAnswer(t, e.get(t, "/cgi-bin/token?grant_type=client_credential&appid=wxnew&secret=s2"), 0)
}
