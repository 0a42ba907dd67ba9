package main

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat"
)

var bareURLLine = regexp.MustCompile(`msg="wxsim bare handler serving" url=(\S+)`)

// startBareCmd runs "wxsim bare" on a free port until the test ends and
// returns its push URL.
func startBareCmd(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stderr := new(syncBuffer)
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"bare", "--addr", "127.0.0.1:0"}, new(syncBuffer), stderr) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("bare exited with %v", err)
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if m := bareURLLine.FindStringSubmatch(stderr.String()); m != nil {
			return m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no start-up line:\n%s", stderr)
		}
	}
}

// TestBare_IsLoadsBaseline runs "wxsim load" against "wxsim bare": alone
// (--bare --bare-url) and as the baseline of --compare, whose report must
// name it as the bare target.
func TestBare_IsLoadsBaseline(t *testing.T) {
	bareURL := startBareCmd(t)
	if !strings.HasSuffix(bareURL, "/wx/bare") {
		t.Fatalf("start-up line names %q, want a /wx/bare URL", bareURL)
	}

	stdout, stderr, err := runCmd(t, nil, "load", "--bare", "--bare-url", bareURL, "--count", "40", "--concurrency", "4", "--json")
	if err != nil {
		t.Fatalf("load --bare --bare-url: %v\n%s", err, stderr)
	}
	if r := decodeReport(t, stdout); r.Run.OK != 40 || !r.Pass {
		t.Errorf("run %+v", r.Run)
	}

	relay := newFakeRelay(t, wechat.ModeSafe)
	stdout, stderr, err = runCmd(t, nil, loadArgs(relay.URL, "--compare", "--bare-url", bareURL, "--rounds", "2",
		"--round-duration", "100ms", "--concurrency", "4", "--prepare", "3000", "--json")...)
	if err != nil {
		t.Fatalf("load --compare --bare-url: %v\n%s", err, stderr)
	}
	c := decodeReport(t, stdout).Compare
	if c == nil || c.Bare.OK == 0 || c.Relay.OK == 0 {
		t.Fatalf("compare %+v", c)
	}
	if !strings.Contains(stderr, bareURL) {
		t.Errorf("load does not say it pushes to %s:\n%s", bareURL, stderr)
	}
}

func TestBare_BadInput(t *testing.T) {
	for _, tt := range []struct {
		name, want string
		args       []string
	}{
		{"bare-url without compare", "--bare-url applies to --compare and --bare only", loadArgs("http://x", "--bare-url", "http://127.0.0.1:1/wx/bare")},
		{"bare-url not a URL", `--bare-url "127.0.0.1:1": want an http:// URL`, []string{"load", "--bare", "--bare-url", "127.0.0.1:1"}},
		{"argument", `unexpected argument "x"`, []string{"bare", "x"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, err := runCmd(t, nil, tt.args...)
			if !errors.Is(err, errUsage) || !strings.Contains(stderr, tt.want) {
				t.Errorf("err %v, stderr %q; want errUsage and %q", err, stderr, tt.want)
			}
		})
	}
}
