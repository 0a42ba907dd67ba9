package main

import (
	"context"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// freeAddr is a loopback address no one listens on, as host:port.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestUp: wxsim up starts the whole stack with one command and prints
// what to paste; what it prints works: a push through the printed URL is
// delivered to the receiver (and printed, its signature good), a send
// with the printed API key reaches the fake WeChat, and SIGINT stops the
// relay. A second up on the same --dir finds the tenant there and shows
// new credentials for it.
func TestUp(t *testing.T) {
	if testing.Short() {
		t.Skip("builds wxrelay and runs it; not in -short")
	}
	bin := filepath.Join(t.TempDir(), "wxrelay")
	if out, err := exec.Command("go", "build", "-o", bin, "../wxrelay").CombinedOutput(); err != nil {
		t.Fatalf("build wxrelay: %v\n%s", err, out)
	}
	dir := t.TempDir()
	httpAddr := freeAddr(t)
	args := []string{"up", "--wxrelay", bin, "--dir", dir, "--http-addr", httpAddr, "--grpc-addr", freeAddr(t),
		"--metrics-addr", freeAddr(t), "--wechat-addr", freeAddr(t), "--webhook-addr", freeAddr(t)}
	up := func() (string, *syncBuffer, func() error) {
		ctx, cancel := context.WithCancel(context.Background())
		stdout, stderr := new(syncBuffer), new(syncBuffer)
		done := make(chan error, 1)
		go func() { done <- run(ctx, args, stdout, stderr) }()
		for deadline := time.Now().Add(60 * time.Second); !strings.Contains(stdout.String(), "Ctrl-C stops everything"); time.Sleep(50 * time.Millisecond) {
			select {
			case err := <-done:
				t.Fatalf("up ended: %v\n%s\n%s", err, stdout, stderr)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("up printed no summary in 60 s:\n%s\n%s", stdout, stderr)
			}
		}
		return stdout.String(), stdout, func() error { cancel(); return <-done }
	}

	summary, stdout, stop := up()
	field := func(name string) string {
		m := regexp.MustCompile(`(?m)^  ` + name + `\s+(\S+)`).FindStringSubmatch(summary)
		if m == nil {
			t.Fatalf("no %s in the summary:\n%s", name, summary)
		}
		return m[1]
	}
	pushURL, apiKey, id := field("push URL"), field("API key"), field("tenant")
	if !strings.HasPrefix(pushURL, "http://"+httpAddr+"/wx/tn_") {
		t.Errorf("push URL %s, want one of the relay at %s", pushURL, httpAddr)
	}
	// The printed push command, as a user pastes it.
	cmdLine := regexp.MustCompile(`wxsim push (.*)`).FindStringSubmatch(summary)
	if cmdLine == nil {
		t.Fatalf("no push command in the summary:\n%s", summary)
	}
	pushArgs := strings.Fields(strings.ReplaceAll(cmdLine[1], `"Where is my order?"`, "Where-is-my-order?"))
	var pushOut syncBuffer
	if err := run(context.Background(), append([]string{"push"}, pushArgs...), &pushOut, &pushOut); err != nil || !strings.Contains(pushOut.String(), "success") {
		t.Fatalf("the printed push command: %v\n%s", err, pushOut.String())
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stdout.String(), "signature: ok"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the push was not delivered to the receiver:\n%s", stdout)
		}
	}
	if !strings.Contains(stdout.String(), "Where-is-my-order?") {
		t.Errorf("the receiver printed no event with the text:\n%s", stdout)
	}
	req, _ := http.NewRequest("POST", "http://"+httpAddr+"/v1/tenants/"+id+"/messages:send",
		strings.NewReader(`{"touser":"`+defaultOpenID+`","msgtype":"text","text":{"content":"It ships today."}}`))
	req.Header.Set("Authorization", "Bearer "+apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("send with the printed API key: %v %v", resp, err)
	}
	resp.Body.Close()
	if err := stop(); err != nil {
		t.Fatalf("up after SIGINT: %v", err)
	}
	if c, err := net.DialTimeout("tcp", httpAddr, time.Second); err == nil {
		c.Close()
		t.Fatalf("the relay still listens at %s after up stopped", httpAddr)
	}

	again, _, stop := up()
	if !strings.Contains(again, "  tenant          "+id) || strings.Contains(again, apiKey) {
		t.Errorf("the second up on the same --dir printed\n%s\nwant the same tenant %s with a new API key", again, id)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
