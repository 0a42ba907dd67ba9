package wxsim_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestConcurrentUse hammers every endpoint and control from many
// goroutines; run it with -race.
func TestConcurrentUse(t *testing.T) {
	e := newEnv(t)
	tok := e.stableToken(t, false).AccessToken
	media := e.mustUpload(t, tok)
	upload, formType := multipartBody(t, "media", "a.png", "image/png", pngBytes(t))

	// call makes one request from a worker goroutine, where t.Fatal is not
	// allowed, and reports the errcode answered.
	call := func(method, path, contentType, body string) int {
		req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
		if err != nil {
			t.Error(err)
			return 0
		}
		req.Header.Set("Content-Type", contentType)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return 0
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			return 0 // image bytes, or a control endpoint's 204
		}
		var a answer
		if err := json.Unmarshal(data, &a); err != nil {
			t.Errorf("%s %s: answer %q: %v", method, path, data, err)
		}
		return a.Errcode
	}
	tokenQuery := "grant_type=client_credential&appid=" + appID + "&secret=" + secret
	stableBody := `{"grant_type":"client_credential","appid":"` + appID + `","secret":"` + secret + `","force_refresh":true}`

	const workers, rounds = 16, 10
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range rounds {
				switch w % 4 {
				case 0:
					if got := call("GET", "/cgi-bin/token?"+tokenQuery, "", ""); got != 0 {
						t.Errorf("classic token: errcode %d", got)
					}
					call("POST", "/cgi-bin/stable_token", "application/json", stableBody)
				case 1:
					call("POST", "/cgi-bin/message/custom/send?access_token="+tok, "application/json",
						`{"touser":"`+openID+`","msgtype":"image","image":{"media_id":"`+media+`"}}`)
					call("POST", "/cgi-bin/message/custom/typing?access_token="+tok, "application/json",
						`{"touser":"`+openID+`","command":"Typing"}`)
				case 2:
					call("POST", "/cgi-bin/media/upload?type=image&access_token="+tok, formType, upload.String())
					call("GET", "/cgi-bin/media/get?access_token="+tok+"&media_id="+media, "", "")
				case 3:
					e.sim.FailNext(1, "/cgi-bin/message/custom/typing")
					e.sim.RejectSends("oNobody", 45047)
					e.sim.SetLatency(time.Millisecond)
					e.sim.SetLatency(0)
					e.sim.Calls()
					e.sim.TokenCounts(appID)
					e.clock.Advance(time.Second)
					call("POST", "/wxsim/faults/reject", "application/json", `{"openid":"oNobody","errcode":0}`)
				}
			}
		})
	}
	wg.Wait()

	// Before the workers: one stable token and one upload. Then each round
	// of three of the four kinds of worker makes two API calls.
	if got, want := len(e.sim.Calls()), 2+rounds*(workers/4)*3*2; got != want {
		t.Errorf("recorded %d calls, want %d", got, want)
	}
	if got, want := e.sim.TokenCounts(appID).Classic, rounds*(workers/4); got != want {
		t.Errorf("classic tokens issued = %d, want %d", got, want)
	}
}
