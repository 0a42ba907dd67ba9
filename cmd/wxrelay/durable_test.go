package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat"
)

// onboardSafe creates a safe-mode tenant on p and returns its push URL and
// a pusher for it.
func onboardSafe(t *testing.T, p *process, admin string) (string, *wechat.Pusher) {
	t.Helper()
	var created struct {
		Tenant struct{ ID string } `json:"tenant"`
	}
	body := `{"appid":"wx0123456789abcdef","app_secret":"5ec2e75ec2e75ec2e75ec2e75ec2e75e","token":"PushToken1","encoding_aes_key":"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
		"encrypt_mode":"ENCRYPT_MODE_SAFE","data_format":"DATA_FORMAT_JSON","webhook_url":"https://hooks.example.com/a"}`
	if code := p.api(t, "POST", "/v1/tenants", admin, body, &created); code != 200 {
		t.Fatalf("create tenant: %d", code)
	}
	cipher, _ := wechat.NewCipher("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wx0123456789abcdef")
	return "http://" + p.http + "/wx/" + created.Tenant.ID, &wechat.Pusher{Token: "PushToken1", Mode: wechat.ModeSafe, Cipher: cipher}
}

// pushOnce pushes one distinct message and returns the status and body.
func pushOnce(t *testing.T, url string, p *wechat.Pusher, n int64) (int, string) {
	t.Helper()
	now := time.Now().Unix()
	req, err := p.Push(wechat.TextMessage(wechat.FormatJSON, wechat.Header{FromUserName: "o1", CreateTime: now}, "hi", 1000+n), now, "n"+string(rune('a'+n%26)))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url+"?"+req.RawQuery(), req.ContentType, bytes.NewReader(req.Body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func readyz(t *testing.T, p *process) int {
	t.Helper()
	resp, err := http.Get("http://" + p.http + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestWrongSecretKeyStopsStartUp: a secret key that does not open the
// database's secrets stops start-up with one clear line, rather than
// serving every push and call a 500.
func TestWrongSecretKeyStopsStartUp(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, dir)
	onboardSafe(t, p, adminTokenIn(t, dir))
	p.stop(t, syscall.SIGTERM)

	other := make([]byte, 32)
	rand.Read(other)
	cmd := exec.Command(binary, "serve")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "WXRELAY_HTTP_ADDR="+freePort(t), "WXRELAY_GRPC_ADDR="+freePort(t),
		"WXRELAY_METRICS_ADDR=", "WXRELAY_SECRET_KEY="+base64.StdEncoding.EncodeToString(other))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	done := make(chan error, 1)
	go func() { done <- cmd.Run() }()
	select {
	case err := <-done:
		if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() == 0 {
			t.Errorf("serve with another key: %v, want a non-zero exit", err)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("serve with another key kept running")
	}
	if !strings.Contains(stderr.String(), "does not open the secrets in this database") {
		t.Errorf("stderr does not say the key is wrong:\n%s", stderr.String())
	}
}

// TestNotReadyWhenTheDatabaseIsGone: with its SQLite files deleted under
// it, the relay is not ready and answers pushes 500, never success (the
// commit would go to the deleted file and be lost).
func TestNotReadyWhenTheDatabaseIsGone(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, dir)
	url, pusher := onboardSafe(t, p, adminTokenIn(t, dir))
	if code, body := pushOnce(t, url, pusher, 1); body != "success" {
		t.Fatalf("push before: %d %q", code, body)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(filepath.Join(dir, "wxrelay.db"+suffix))
	}
	if code := readyz(t, p); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz with the database deleted: %d, want 503", code)
	}
	if code, body := pushOnce(t, url, pusher, 2); body == "success" || code != http.StatusInternalServerError {
		t.Errorf("push with the database deleted: %d %q, want 500", code, body)
	}
}

// TestNotReadyWhenTheDiskIsFull: on a full file system the relay is not
// ready and answers pushes 500. It mounts a small tmpfs, so it needs root
// (CI runs as root).
func TestNotReadyWhenTheDiskIsFull(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=4m"); err != nil {
		t.Skipf("cannot mount a small tmpfs to fill (needs root): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	p := startServe(t, dir)
	url, pusher := onboardSafe(t, p, adminTokenIn(t, dir))
	if code := readyz(t, p); code != 200 {
		t.Fatalf("/readyz before: %d", code)
	}
	// Fill the file system.
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	f.Close()
	t.Cleanup(func() { os.Remove(filepath.Join(dir, "filler")) })
	var last int
	for i := range 50 { // the WAL may hold room for a few commits
		code, body := pushOnce(t, url, pusher, int64(10+i))
		if body != "success" {
			last = code
			break
		}
	}
	if last != http.StatusInternalServerError {
		t.Errorf("pushes on a full disk: still answered success, or %d; want 500", last)
	}
	if code := readyz(t, p); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz on a full disk: %d, want 503", code)
	}
}
