package main

import (
	"bytes"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// cli runs wxrelay with args in dir, stdin as its input, and returns its
// output, its error output and its exit code.
func cli(t *testing.T, dir, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = os.Environ()
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

// TestTenantsCLI: an operator on the relay's machine onboards, lists,
// inspects, rotates and deletes a tenant with wxrelay tenants, with no
// token or curl of their own; mistakes are answered in words.
func TestTenantsCLI(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, dir)
	const appid, secret = "wx00000000000000c1", "c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1"
	p.sim.AddApp(appid, secret)
	url := "--url=http://" + p.http
	create := []string{"tenants", "create", url, "--name", "Tea shop", "--appid", appid, "--token", "PushToken1",
		"--aes-key", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "--format", "json", "--webhook", "https://hooks.example.com/tea"}

	// A wrong AppSecret is refused by WeChat, and nothing is created.
	_, errOut, code := cli(t, dir, "", append(create, "--app-secret", "d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1")...)
	if code != 1 || !strings.Contains(errOut, "400 Bad Request: app_secret: WeChat refused the AppSecret (40125") {
		t.Errorf("create with a wrong secret: exit %d, %q; want 1 and WeChat's refusal at app_secret", code, errOut)
	}

	// The secret read from standard input, out of the shell's history.
	out, errOut, code := cli(t, dir, secret+"\n", append(create, "--app-secret", "-")...)
	if code != 0 {
		t.Fatalf("create: exit %d: %s", code, errOut)
	}
	id := regexp.MustCompile(`tn_[A-Za-z0-9_-]+`).FindString(out)
	for _, want := range []string{"credentials checked with WeChat: they hold", "push URL", "/wx/" + id, "API key", "webhook secret  whsec_", "/wxapi"} {
		if id == "" || !strings.Contains(out, want) {
			t.Errorf("create printed\n%s\nwant %q in it", out, want)
		}
	}
	if strings.Contains(out, secret) {
		t.Errorf("create printed the AppSecret")
	}

	out, _, _ = cli(t, dir, "", "tenants", "list", url)
	if !regexp.MustCompile(`(?m)^` + id + `\s+` + appid + `\s+Tea shop\s+ACTIVE\s+OK`).MatchString(out) {
		t.Errorf("list printed\n%s\nwant a row for %s, ACTIVE and OK", out, id)
	}
	out, _, _ = cli(t, dir, "", "tenants", "get", id, url)
	if !strings.Contains(out, `"encrypt_mode": "ENCRYPT_MODE_SAFE"`) || !strings.Contains(out, `"data_format": "DATA_FORMAT_JSON"`) {
		t.Errorf("get printed\n%s\nwant the tenant in safe mode, JSON (--aes-key without --mode is safe)", out)
	}

	// A push with another Token shows among the rejections, with a hint.
	resp, err := http.Post("http://"+p.http+"/wx/"+id+"?signature=0000000000000000000000000000000000000000&timestamp=1&nonce=1", "text/xml", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var rej string
	for range 50 {
		if rej, _, _ = cli(t, dir, "", "tenants", "rejections", id, url); strings.Contains(rej, "stale_timestamp") {
			break
		}
		time.Sleep(200 * time.Millisecond) // the relay adds its counts every 5 s
	}
	if !regexp.MustCompile(`stale_timestamp\s+1\s+`).MatchString(rej) || !strings.Contains(rej, "clock") {
		t.Errorf("rejections printed\n%s\nwant one stale_timestamp with what to check", rej)
	}

	out, _, code = cli(t, dir, "", "tenants", "rotate-key", id, url)
	if code != 0 || !strings.Contains(out, "new API key of "+id) {
		t.Errorf("rotate-key: exit %d\n%s", code, out)
	}
	if _, errOut, code = cli(t, dir, "", "tenants", "get", "tn_nosuchtenant", url); code != 1 || !strings.Contains(errOut, "404 Not Found") {
		t.Errorf("get of an unknown tenant: exit %d, %q; want 1 and 404", code, errOut)
	}
	if out, _, code = cli(t, dir, "", "tenants", "delete", id, url); code != 0 || !strings.Contains(out, "deleted "+id) {
		t.Errorf("delete: exit %d\n%s", code, out)
	}

	// Away from the relay's key, without a token: said, not a 401.
	_, errOut, code = cli(t, t.TempDir(), "", "tenants", "list", url)
	if code != 1 || !strings.Contains(errOut, "no --admin-token (WXRELAY_ADMIN_TOKEN)") {
		t.Errorf("list away from the relay's key: exit %d, %q", code, errOut)
	}
	if _, errOut, code = cli(t, dir, "", "tenants", "list", "--url=http://127.0.0.1:1"); code != 1 || !strings.Contains(errOut, "did not answer (is it running?") {
		t.Errorf("list of a relay not running: exit %d, %q", code, errOut)
	}
	if _, errOut, code = cli(t, dir, "", "tenants", "get"); code != 2 || !strings.Contains(errOut, "usage: wxrelay tenants get TENANT_ID") {
		t.Errorf("get without an id: exit %d, %q", code, errOut)
	}
}

// TestOperatorsCLI: the first operator is added from a shell where the
// relay runs; their key then works as an admin token, also for the CLI,
// until they are removed.
func TestOperatorsCLI(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, dir)
	url := "--url=http://" + p.http
	out, errOut, code := cli(t, dir, "", "operators", "add", "Alice Wang", url)
	key := strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])
	if code != 0 || !strings.Contains(out, "operator Alice Wang added (admin, op_") || strings.Count(key, ".") != 2 {
		t.Fatalf("operators add: exit %d\n%s%s", code, out, errOut)
	}
	out, _, _ = cli(t, t.TempDir(), "", "operators", "list", url, "--admin-token="+key)
	if !regexp.MustCompile(`(?m)^op_\S+\s+Alice Wang\s+admin\s+\S+\s+admin token$`).MatchString(out) {
		t.Errorf("operators list, with Alice's key, away from the relay's key:\n%s", out)
	}
	id := regexp.MustCompile(`op_[a-z0-9]+`).FindString(out)
	// A viewer, added by Alice: her key reads, and changes nothing.
	out, errOut, code = cli(t, t.TempDir(), "", "operators", "add", "Vera", "--role=viewer", url, "--admin-token="+key)
	viewerKey := strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])
	if code != 0 || !strings.Contains(out, "operator Vera added (viewer, op_") {
		t.Fatalf("operators add --role=viewer: exit %d\n%s%s", code, out, errOut)
	}
	if out, _, code := cli(t, t.TempDir(), "", "operators", "list", url, "--admin-token="+viewerKey); code != 0 || !regexp.MustCompile(`(?m)^op_\S+\s+Vera\s+viewer\s`).MatchString(out) {
		t.Errorf("operators list with a viewer's key: exit %d\n%s", code, out)
	}
	if _, errOut, code := cli(t, t.TempDir(), "", "operators", "add", "Mallory", url, "--admin-token="+viewerKey); code != 1 || !strings.Contains(errOut, "Vera is a viewer") {
		t.Errorf("a viewer adding an operator: exit %d, %q; want 1 and why", code, errOut)
	}
	if _, errOut, code := cli(t, dir, "", "operators", "add", "Nobody", "--role=owner", url); code == 0 || !strings.Contains(errOut, "admin or viewer") {
		t.Errorf("--role=owner: exit %d, %q", code, errOut)
	}
	if out, _, code = cli(t, dir, "", "operators", "remove", id, url); code != 0 || !strings.Contains(out, "removed "+id) {
		t.Errorf("operators remove: exit %d\n%s", code, out)
	}
	if _, errOut, code = cli(t, t.TempDir(), "", "tenants", "list", url, "--admin-token="+key); code != 1 || !strings.Contains(errOut, "refused the admin token (401") {
		t.Errorf("a removed operator's key: exit %d, %q; want 1 and a 401 said in words", code, errOut)
	}
}
