package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the server's logger and the test
// to use at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var addrLine = regexp.MustCompile(`msg="wxsim serving the WeChat API" addr=(\S+)`)

// startServe runs "wxsim serve" with args until the test ends, and returns
// its base URL, read from the start-up log line.
func startServe(t *testing.T, args ...string) (baseURL string, stderr *syncBuffer, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stderr = new(syncBuffer)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...), io.Discard, stderr)
	}()
	stop = func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("serve did not stop within 10 s of cancellation")
			return nil
		}
	}
	t.Cleanup(func() { cancel() })

	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := addrLine.FindStringSubmatch(stderr.String()); m != nil {
			return "http://" + m[1], stderr, stop
		}
		select {
		case err := <-done:
			t.Fatalf("serve exited early: %v; log:\n%s", err, stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no start-up line within 10 s; log:\n%s", stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestServe(t *testing.T) {
	base, stderr, stop := startServe(t, "--app", "wxA:s1", "--app", "wxB:s2")

	if got := strings.Count(stderr.String(), "\n"); got != 1 {
		t.Errorf("start-up logged %d lines, want 1:\n%s", got, stderr)
	}
	for _, tt := range []struct {
		appid, secret string
		wantErrcode   int
	}{
		{"wxA", "s1", 0},
		{"wxB", "s2", 0},
		{"wxA", "s2", 40125},
		{"wxC", "s1", 40013},
	} {
		resp, err := http.Get(base + "/cgi-bin/token?grant_type=client_credential&appid=" + tt.appid + "&secret=" + tt.secret)
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Errcode     int    `json:"errcode"`
			AccessToken string `json:"access_token"`
		}
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got.Errcode != tt.wantErrcode || (tt.wantErrcode == 0) != (got.AccessToken != "") {
			t.Errorf("token for %s:%s: errcode %d, token %t; want errcode %d", tt.appid, tt.secret, got.Errcode, got.AccessToken != "", tt.wantErrcode)
		}
	}

	if err := stop(); err != nil {
		t.Fatalf("serve returned %v after cancellation, want nil", err)
	}
	if !strings.Contains(stderr.String(), "wxsim stopped") {
		t.Errorf("log lacks the shutdown line:\n%s", stderr)
	}
	if _, err := http.Get(base + "/cgi-bin/token"); err == nil {
		t.Error("server still answers after shutdown")
	}
}

func TestServe_Verbose(t *testing.T) {
	base, stderr, stop := startServe(t, "--verbose")
	resp, err := http.Get(base + "/cgi-bin/token")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if want := `msg="wechat api call" method=GET path=/cgi-bin/token`; !strings.Contains(stderr.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, stderr)
	}
}

func TestServe_ListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = run(context.Background(), []string{"serve", "--addr", ln.Addr().String()}, io.Discard, io.Discard)
	if err == nil {
		t.Fatal("serve on a busy address returned nil, want an error")
	}
	if got := exitCode(err); got != 1 {
		t.Errorf("exit code = %d, want 1", got)
	}
}
