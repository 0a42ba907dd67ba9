package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat"
)

// api calls the REST API of p with a bearer token and decodes the answer.
func (p *process) api(t testing.TB, method, path, token, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+p.http+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode
}

func adminTokenIn(t testing.TB, dir string) string {
	t.Helper()
	return adminTokenFor(t, dir, nil)
}

// TestAnsweredPushesSurviveSIGKILL pushes distinct messages from many
// goroutines, kills the relay with SIGKILL while they are in flight, starts
// it again on the same database, and checks that every push that was
// answered "success" is there.
func TestAnsweredPushesSurviveSIGKILL(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, dir)
	admin := adminTokenIn(t, dir)
	var created struct {
		Tenant struct{ ID string } `json:"tenant"`
		APIKey string              `json:"api_key"`
	}
	body := `{"appid":"wx0123456789abcdef","app_secret":"5ec2e75ec2e75ec2e75ec2e75ec2e75e","token":"PushToken1","encoding_aes_key":"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
		"encrypt_mode":"ENCRYPT_MODE_SAFE","data_format":"DATA_FORMAT_JSON","webhook_url":"https://hooks.example.com/a"}`
	if code := p.api(t, "POST", "/v1/tenants", admin, body, &created); code != 200 {
		t.Fatalf("create tenant: %d", code)
	}
	cipher, _ := wechat.NewCipher("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wx0123456789abcdef")
	pusher := &wechat.Pusher{Token: "PushToken1", Mode: wechat.ModeSafe, Cipher: cipher}
	pushURL := "http://" + p.http + "/wx/" + created.Tenant.ID

	load := startPushLoad(t, pushURL, pusher, wechat.FormatJSON, 32)
	// Kill once a good number of pushes have been answered.
	deadline := time.Now().Add(20 * time.Second)
	for load.count() < 300 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
	answered := load.halt()
	if len(answered) == 0 {
		t.Fatalf("no push was answered before the kill:\n%s", p.stderr)
	}

	p2 := startServe(t, dir)
	stored := map[string]bool{}
	token := ""
	for {
		var page struct {
			Events []struct {
				OpenID string `json:"openid"`
			} `json:"events"`
			Next string `json:"next_page_token"`
		}
		if code := p2.api(t, "GET", "/v1/tenants/"+created.Tenant.ID+"/events?page_size=500&page_token="+token, created.APIKey, "", &page); code != 200 {
			t.Fatalf("list events: %d", code)
		}
		for _, e := range page.Events {
			if stored[e.OpenID] {
				t.Errorf("push from %s stored twice", e.OpenID)
			}
			stored[e.OpenID] = true
		}
		if token = page.Next; token == "" {
			break
		}
	}
	lost := 0
	for _, openid := range answered {
		if !stored[openid] {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d pushes answered success are missing after SIGKILL", lost, len(answered))
	}
	t.Logf("answered %d pushes before SIGKILL; %d stored after restart", len(answered), len(stored))
}

// TestAuditEntrySurvivesSIGKILL: an admin's change is in the audit log
// before it is made, so a relay killed during the change leaves an entry
// that says it was attempted (STARTED), and the change itself did not
// half-happen.
func TestAuditEntrySurvivesSIGKILL(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, dir)
	admin := adminTokenIn(t, dir)
	const appid = "wx0123456789abcd55"
	p.sim.AddApp(appid, "5ec2e75ec2e75ec2e75ec2e75ec2e75e")
	// WeChat slow to answer the credentials check: the creation waits
	// on it, its audit entry already written.
	p.sim.SetLatency(time.Minute)
	go func() {
		body := `{"appid":"` + appid + `","app_secret":"5ec2e75ec2e75ec2e75ec2e75ec2e75e","token":"PushToken1",` +
			`"encrypt_mode":"ENCRYPT_MODE_PLAINTEXT","data_format":"DATA_FORMAT_JSON","webhook_url":"https://hooks.example.com/a"}`
		req, _ := http.NewRequest("POST", "http://"+p.http+"/v1/tenants?check_credentials=true", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+admin)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close() // the relay is killed first; nothing to check
		}
	}()
	type entries struct {
		Entries []struct{ Method, Code, Detail string } `json:"entries"`
	}
	started := func(p *process) bool {
		var log entries
		p.api(t, "GET", "/v1/audit", admin, "", &log)
		return len(log.Entries) == 1 && log.Entries[0].Method == "CreateTenant" && log.Entries[0].Code == "STARTED" &&
			log.Entries[0].Detail == "appid "+appid
	}
	deadline := time.Now().Add(20 * time.Second)
	for !started(p) {
		if time.Now().After(deadline) {
			t.Fatalf("no STARTED entry while the creation waits on WeChat:\n%s", p.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()

	p2 := startServe(t, dir)
	if !started(p2) {
		var log entries
		p2.api(t, "GET", "/v1/audit", admin, "", &log)
		t.Errorf("after the kill the audit log holds %+v, want the creation STARTED", log.Entries)
	}
	var list struct {
		Tenants []struct{ Appid string } `json:"tenants"`
	}
	p2.api(t, "GET", "/v1/tenants", admin, "", &list)
	if len(list.Tenants) != 0 {
		t.Errorf("the creation killed during its credentials check left tenants %+v", list.Tenants)
	}
}
