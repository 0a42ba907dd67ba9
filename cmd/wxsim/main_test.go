package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"
)

func TestRun_Usage(t *testing.T) {
	for _, tt := range []struct {
		name       string
		args       []string
		wantErr    error
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"no command", nil, errUsage, 2, "", "serve "},
		{"unknown command", []string{"push2"}, errUsage, 2, "", `unknown command "push2"`},
		{"help", []string{"help"}, nil, 0, "serve ", ""},
		{"-h", []string{"-h"}, nil, 0, "Usage:", ""},
		{"serve -h", []string{"serve", "-h"}, flag.ErrHelp, 0, "", "-addr"},
		{"serve with a bad --app", []string{"serve", "--app", "wxnosecret"}, errUsage, 2, "", "APPID:SECRET"},
		{"serve with an unknown flag", []string{"serve", "--port", "1"}, errUsage, 2, "", "flag provided but not defined"},
		{"serve with an argument", []string{"serve", "now"}, errUsage, 2, "", `unexpected argument "now"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tt.args, &stdout, &stderr)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("run(%q) = %v, want %v", tt.args, err, tt.wantErr)
			}
			if got := exitCode(err); got != tt.wantCode {
				t.Errorf("exit code = %d, want %d", got, tt.wantCode)
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout = %q, want it to contain %q", stdout.String(), tt.wantStdout)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr.String(), tt.wantStderr)
			}
		})
	}
}

func TestExitCode(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{flag.ErrHelp, 0},
		{errUsage, 2},
		{errors.New("listen tcp: address in use"), 1},
	} {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

// TestServeHelpListsEveryControl: every test control wxsim serves is in
// `wxsim serve -h`, so that nobody has to read the Go package to find it.
func TestServeHelpListsEveryControl(t *testing.T) {
	var out bytes.Buffer
	run(context.Background(), []string{"serve", "-h"}, &out, &out)
	help := strings.Join(strings.Fields(out.String()), " ")
	route := regexp.MustCompile(`"(GET|POST|DELETE) (/wxsim/[^"]*)"`)
	n := 0
	for _, f := range []string{"../../relay/wechat/wxsim/control.go", "../../relay/wechat/wxsim/component.go"} {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range route.FindAllStringSubmatch(string(src), -1) {
			n++
			if !strings.Contains(help, m[1]+" "+m[2]) {
				t.Errorf("wxsim serve -h does not list %s %s", m[1], m[2])
			}
		}
	}
	if n < 15 {
		t.Errorf("found %d control routes in the sources; the test reads the wrong files", n)
	}
}
