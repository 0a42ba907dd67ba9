package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// nodeModulesEnv names a node_modules directory holding the Node.js
// WeChat SDK the compatible API is tried with (.ci/run installs it in
// .ci/node).
const nodeModulesEnv = "WXRELAY_TEST_NODE_MODULES"

// nodeSDK returns the node binary and the node_modules holding
// co-wechat-api, or skips the test saying how to have them.
func nodeSDK(t *testing.T) (node, modules string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("no node on $PATH: install Node.js (apt-get install nodejs npm), then npm install --prefix .ci/node co-wechat-api@3.11.0")
	}
	modules = os.Getenv(nodeModulesEnv)
	if modules == "" {
		modules, _ = filepath.Abs("../../.ci/node/node_modules")
	}
	if _, err := os.Stat(filepath.Join(modules, "co-wechat-api", "package.json")); err != nil {
		t.Skipf("co-wechat-api not found in %s: npm install --prefix .ci/node co-wechat-api@3.11.0 (or set %s)", modules, nodeModulesEnv)
	}
	return node, modules
}

// coWechatScript uses co-wechat-api as an application does, its base URL
// pointed at the relay and the tenant's API key for its AppSecret: it
// sends a text, uploads an image and sends it, then sends to a user whose
// reply window is closed (when one is named), and prints the answers (or
// the SDK's error) as JSON.
const coWechatScript = `
const API = require('co-wechat-api');
const [base, appid, secret, user, image, closed] = process.argv.slice(2);
const api = new API(appid, secret);
api.prefix = base + '/cgi-bin/';
(async () => {
  const out = {};
  out.token = (await api.getAccessToken()).accessToken;
  if (closed) {
    try {
      await api.sendText(closed, 'Too late');
      out.refused = 'not refused';
    } catch (e) {
      out.refused = {name: e.name, code: e.code, message: e.message};
    }
  } else {
    out.text = await api.sendText(user, 'Your order ships today');
    out.upload = await api.uploadMedia(image, 'image');
    out.image = await api.sendImage(user, out.upload.media_id);
  }
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e.name + ': ' + e.message); process.exit(1); });
`

// TestSDK_NodeCoWechatAPI: co-wechat-api, a widely used Node.js WeChat
// SDK, works through /wxapi unmodified: its JSON parsing (json-bigint, after
// escaping control characters) takes the answers as WeChat's, and a send
// WeChat refuses reaches it as WeChat's errcode, not as an answer it
// cannot parse (which an application would retry, sending twice).
func TestSDK_NodeCoWechatAPI(t *testing.T) {
	node, modules := nodeSDK(t)
	r := startSDKRelay(t)
	dir := t.TempDir()
	script, image := filepath.Join(dir, "sdk.js"), filepath.Join(dir, "receipt.png")
	if err := os.WriteFile(script, []byte(coWechatScript), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(image, testImage(t), 0o600); err != nil {
		t.Fatal(err)
	}
	type answers struct {
		Token   string         `json:"token"`
		Text    map[string]any `json:"text"`
		Upload  map[string]any `json:"upload"`
		Image   map[string]any `json:"image"`
		Refused struct {
			Name    string `json:"name"`
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"refused"`
	}
	sdk := func(args ...string) answers {
		t.Helper()
		cmd := exec.Command(node, append([]string{script, "http://" + r.p.http + "/wxapi", sdkAppID, r.apiKey, sdkUser, image}, args...)...)
		cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("the SDK failed: %v\n%s\n%s", err, out, stderr.String())
		}
		var got answers
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("the script printed %s: %v", out, err)
		}
		return got
	}
	got := sdk()
	if got.Text["errmsg"] != "ok" || got.Image["errmsg"] != "ok" || got.Upload["media_id"] == nil || got.Upload["type"] != "image" {
		t.Errorf("the SDK's answers: text %v, upload %v, image %v; want WeChat's, parsed", got.Text, got.Upload, got.Image)
	}
	r.checkWeChatSaw(t, got.Token, "/cgi-bin/message/custom/send", "/cgi-bin/media/upload")

	// A send WeChat refuses for the user's reply window.
	const closedUser = "oSDKClosedWindow000000001"
	r.p.sim.RejectSends(closedUser, 45015)
	refused := sdk(closedUser).Refused
	if refused.Name != "WeChatAPIError" || refused.Code != 45015 || strings.Contains(refused.Message, "JSON.parse") {
		t.Errorf("the refused send reached the SDK as %+v, want WeChatAPIError 45015", refused)
	}
}
