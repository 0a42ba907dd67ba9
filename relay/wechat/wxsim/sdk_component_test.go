package wxsim_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/silenceper/wechat/v2/cache"
	"github.com/silenceper/wechat/v2/officialaccount/message"
	"github.com/silenceper/wechat/v2/openplatform"
	opconfig "github.com/silenceper/wechat/v2/openplatform/config"
	sputil "github.com/silenceper/wechat/v2/util"

	"github.com/wxrelay/wxrelay/relay/wechat/wxsim"
)

// toSim sends the SDK's calls for api.weixin.qq.com to wxsim: its URLs are
// constants, and its HTTP client is the setting it offers.
type toSim struct{ host string }

func (h toSim) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host != "api.weixin.qq.com" {
		return nil, fmt.Errorf("the SDK called %s, not WeChat's API host", r.URL.Host)
	}
	out := r.Clone(r.Context())
	out.URL.Scheme, out.URL.Host, out.Host = "http", h.host, h.host
	return http.DefaultTransport.RoundTrip(out)
}

// silenceper/wechat's open-platform client, written for the real WeChat,
// accepts wxsim's open platform: its server decrypts wxsim's ticket push
// with the component's keys, and its client fetches the component token
// with that ticket, a pre-auth code, exchanges an authorization code and
// refreshes the authorizer token, decoding every answer.
func TestComponent_SilenceperOpenPlatform(t *testing.T) {
	e := newEnv(t)
	t.Cleanup(e.sim.Close)
	saved := sputil.DefaultHTTPClient
	u, _ := url.Parse(e.url)
	sputil.DefaultHTTPClient = &http.Client{Transport: toSim{host: u.Host}}
	t.Cleanup(func() { sputil.DefaultHTTPClient = saved })

	op := openplatform.NewOpenPlatform(&opconfig.Config{AppID: componentAppID, AppSecret: "c5ec2e7c5ec2e7c5ec2e7c5ec2e7c5ec",
		Token: componentToken, EncodingAESKey: componentKey, Cache: cache.NewMemory()})
	var (
		mu      sync.Mutex
		tickets []string
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		srv := op.GetServer(r, w)
		srv.SetMessageHandler(func(m *message.MixMessage) *message.Reply {
			if m.InfoType == message.InfoTypeVerifyTicket {
				mu.Lock()
				tickets = append(tickets, m.ComponentVerifyTicket)
				mu.Unlock()
			}
			return nil
		})
		if err := srv.Serve(); err != nil {
			t.Errorf("the SDK's server refused wxsim's push: %v", err)
			http.Error(w, err.Error(), 400)
			return
		}
		srv.Send()
	}))
	defer hook.Close()
	if err := e.sim.AddComponent(wxsim.ComponentOptions{AppID: componentAppID, Secret: "c5ec2e7c5ec2e7c5ec2e7c5ec2e7c5ec", Token: componentToken,
		EncodingAESKey: componentKey, AuthEventURL: hook.URL, TicketEvery: -1}); err != nil {
		t.Fatal(err)
	}
	ticket, err := e.sim.PushTicket(componentAppID)
	if err != nil {
		t.Fatalf("ticket push: %v (%+v)", err, e.sim.Pushes())
	}
	if mu.Lock(); !slices.Equal(tickets, []string{ticket}) {
		t.Fatalf("the SDK's server read tickets %q, want %q", tickets, ticket)
	}
	mu.Unlock()

	ctx := context.Background()
	ct, err := op.SetComponentAccessToken(ctx, ticket)
	if err != nil || ct.AccessToken == "" || ct.ExpiresIn != 7200 {
		t.Fatalf("SetComponentAccessToken = %+v, %v", ct, err)
	}
	pre, err := op.GetPreCode()
	if err != nil || !strings.HasPrefix(pre, "preauthcode@@@") {
		t.Fatalf("GetPreCode = %q, %v", pre, err)
	}
	// The SDK's consent link (with a pre-auth code of its own) opens
	// wxsim's consent page.
	page, err := op.GetComponentLoginPage("https://relay.example/wxc/cp/authorized", 2, authorizerID)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(strings.Replace(page, "https://mp.weixin.qq.com", e.url, 1))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("wxsim's consent page refused the SDK's link %q: %d", page, resp.StatusCode)
	}
	code, err := e.sim.Scan(componentAppID, pre, authorizerID, []int{17, 19})
	if err != nil {
		t.Fatal(err)
	}
	info, err := op.QueryAuthCode(code)
	if err != nil || info.Appid != authorizerID || info.AccessToken == "" || info.RefreshToken == "" || len(info.FuncInfo) != 2 || info.FuncInfo[1].FuncscopeCategory.ID != 19 {
		t.Fatalf("QueryAuthCode = %+v, %v", info, err)
	}
	next, err := op.RefreshAuthrToken(authorizerID, info.RefreshToken)
	if err != nil || next.AccessToken == "" || next.AccessToken == info.AccessToken || next.RefreshToken != info.RefreshToken {
		t.Fatalf("RefreshAuthrToken = %+v, %v", next, err)
	}
}
