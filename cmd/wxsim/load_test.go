package main

import (
	"encoding/json"
	"errors"
	"flag"
	"strconv"
	"strings"
	"testing"

	"github.com/wxrelay/wxrelay/relay/wechat"
)

// loadReportJSON is the part of load --json the tests read.
type loadReportJSON struct {
	MsgIDBase string `json:"msg_id_base"`
	Prepared  int    `json:"prepared"`
	Run       *struct {
		Sent, OK, Failed, NotSent int
		Errors                    map[string]int
		Rate                      float64
		Latency                   map[string]float64
	} `json:"run"`
	Compare *struct {
		Rounds []struct {
			RelayRate float64 `json:"relay_rate"`
			BareRate  float64 `json:"bare_rate"`
		} `json:"rounds"`
		Relay, Bare struct {
			Sent, OK, Failed int
			Rate             float64
		}
		Ratio float64 `json:"ratio"`
	} `json:"compare"`
	Checks []struct {
		Name string `json:"name"`
		Pass bool   `json:"pass"`
	} `json:"checks"`
	Pass bool `json:"pass"`
}

func decodeReport(t *testing.T, stdout string) loadReportJSON {
	t.Helper()
	var r loadReportJSON
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("load --json printed %q: %v", stdout, err)
	}
	return r
}

func loadArgs(url string, more ...string) []string {
	return append([]string{"load", "--url", url, "--token", testToken, "--appid", testAppID, "--aes-key", testAESKey}, more...)
}

func TestLoad_Count(t *testing.T) {
	relay := newFakeRelay(t, wechat.ModeSafe)
	stdout, stderr, err := runCmd(t, nil, loadArgs(relay.URL+"/wx/t1", "--count", "120", "--concurrency", "6", "--json")...)
	if err != nil {
		t.Fatalf("load: %v\nstderr: %s", err, stderr)
	}
	r := decodeReport(t, stdout)
	if r.Run == nil || r.Run.Sent != 120 || r.Run.OK != 120 || r.Run.Failed != 0 || len(r.Run.Errors) != 0 || r.Run.Rate <= 0 {
		t.Fatalf("run %+v", r.Run)
	}
	for _, k := range []string{"p50_ms", "p90_ms", "p99_ms", "max_ms"} {
		if r.Run.Latency[k] <= 0 {
			t.Errorf("latency %s = %v", k, r.Run.Latency[k])
		}
	}
	if !r.Pass || len(r.Checks) != 1 || r.Prepared != 120 {
		t.Errorf("pass %v, checks %+v, prepared %d", r.Pass, r.Checks, r.Prepared)
	}
	if !strings.Contains(stderr, "prepared 120 safe-mode JSON text pushes") {
		t.Errorf("stderr = %q", stderr)
	}

	// Every push verified and decoded, as text from the default user to
	// the default original ID, with distinct MsgIds from msg_id_base up.
	base, err := strconv.ParseUint(r.MsgIDBase, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	relay.mu.Lock()
	defer relay.mu.Unlock()
	seen := map[string]bool{}
	for _, got := range relay.got {
		if got.err != nil {
			t.Fatalf("Receive: %v", got.err)
		}
		id, _ := strconv.ParseUint(got.msg.MsgID, 10, 64)
		if got.msg.MsgType != "text" || got.msg.Format != wechat.FormatJSON || seen[got.msg.MsgID] || id < base || id >= base+120 {
			t.Errorf("push %+v", got.msg)
		}
		seen[got.msg.MsgID] = true
	}
	if len(seen) != 120 {
		t.Errorf("relay saw %d distinct pushes, want 120", len(seen))
	}
}

func TestLoad_Text(t *testing.T) {
	relay := newFakeRelay(t, wechat.ModeSafe)
	stdout, _, err := runCmd(t, nil, loadArgs(relay.URL, "--count", "20", "--rate", "500", "--max-p99", "1h")...)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"(open loop at 500 pushes/s, at most 64 in flight)", "pushes   20 sent, 20 ok, 0 failed",
		"rate     ", "latency  p50 ", "check    every push answered 2xx (0 failed, 0 not sent): ok", "check    p99 ", " <= 1h0m0s: ok",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
}

func TestLoad_Failures(t *testing.T) {
	relay := newFakeRelay(t, wechat.ModeSafe)
	// The relay expects another token: every push is refused with 401.
	stdout, _, err := runCmd(t, nil, "load", "--url", relay.URL, "--token", "wrong", "--appid", testAppID, "--aes-key", testAESKey, "--count", "10", "--json")
	if err == nil || exitCode(err) != 1 {
		t.Errorf("load = %v, want exit 1", err)
	}
	r := decodeReport(t, stdout)
	if r.Pass || r.Run.Errors["http_401"] != 10 {
		t.Errorf("pass %v, errors %v; want 10 http_401", r.Pass, r.Run.Errors)
	}

	// A p99 bound no run can meet.
	ok := newFakeRelay(t, wechat.ModeSafe)
	stdout, _, err = runCmd(t, nil, loadArgs(ok.URL, "--count", "5", "--max-p99", "1ns")...)
	if err == nil || !strings.Contains(stdout, "<= 1ns: FAIL") {
		t.Errorf("load --max-p99 1ns = %v\n%s", err, stdout)
	}
}

func TestLoad_Bare(t *testing.T) {
	// No tenant flags needed.
	stdout, stderr, err := runCmd(t, nil, "load", "--bare", "--count", "50", "--concurrency", "4", "--json")
	if err != nil {
		t.Fatalf("load --bare: %v\n%s", err, stderr)
	}
	if r := decodeReport(t, stdout); r.Run.OK != 50 || !r.Pass {
		t.Errorf("run %+v", r.Run)
	}
}

func TestLoad_Compare(t *testing.T) {
	relay := newFakeRelay(t, wechat.ModeSafe)
	stdout, stderr, err := runCmd(t, nil, loadArgs(relay.URL, "--compare", "--rounds", "2", "--round-duration", "100ms",
		"--concurrency", "4", "--min-ratio", "0.000001", "--prepare", "3000", "--json")...)
	if err != nil {
		t.Fatalf("load --compare: %v\n%s", err, stderr)
	}
	r := decodeReport(t, stdout)
	c := r.Compare
	if c == nil || len(c.Rounds) != 2 || c.Relay.OK == 0 || c.Bare.OK == 0 || c.Relay.Failed+c.Bare.Failed != 0 || c.Ratio <= 0 {
		t.Fatalf("compare %+v", c)
	}
	if !r.Pass || len(r.Checks) != 3 {
		t.Errorf("pass %v, checks %+v", r.Pass, r.Checks)
	}
	relay.mu.Lock()
	defer relay.mu.Unlock()
	if len(relay.got) != c.Relay.Sent {
		t.Errorf("relay received %d pushes, the report says %d", len(relay.got), c.Relay.Sent)
	}
	for _, got := range relay.got {
		if got.err != nil {
			t.Fatalf("Receive: %v", got.err)
		}
	}
}

func TestLoad_BadInput(t *testing.T) {
	for _, tt := range []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{"no key", []string{"load", "--url", "http://x", "--token", "t", "--appid", testAppID}, "--aes-key is required"},
		{"no url", []string{"load", "--token", "t", "--appid", testAppID, "--aes-key", testAESKey}, "--url is required"},
		{"bare and url", []string{"load", "--bare", "--url", "http://x"}, "drop --url"},
		{"bare and compare", []string{"load", "--bare", "--compare"}, "drop --bare"},
		{"compare and duration", loadArgs("http://x", "--compare", "--duration", "1s"), "--duration does not apply to --compare"},
		{"rounds without compare", loadArgs("http://x", "--rounds", "3"), "--rounds applies to --compare only"},
		{"zero concurrency", loadArgs("http://x", "--concurrency", "0"), "--concurrency 0"},
		{"negative rate", loadArgs("http://x", "--rate", "-1"), "--rate -1"},
		{"bad env", loadArgs("http://x"), "$WXSIM_CONCURRENCY"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var env map[string]string
			if tt.name == "bad env" {
				env = map[string]string{"WXSIM_CONCURRENCY": "many"}
			}
			_, stderr, err := runCmd(t, env, tt.args...)
			if !errors.Is(err, errUsage) || !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("load = %v, stderr %q; want errUsage and %q", err, stderr, tt.wantStderr)
			}
		})
	}
}

func TestRun_NewCommandsListed(t *testing.T) {
	stdout, _, err := runCmd(t, nil, "help")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"push", "verify", "load"} {
		if !strings.Contains(stdout, "  "+name+" ") {
			t.Errorf("usage lacks %s:\n%s", name, stdout)
		}
	}
	for _, name := range []string{"push", "verify", "load"} {
		_, stderr, err := runCmd(t, nil, name, "-h")
		if !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr, "Usage: wxsim "+name) {
			t.Errorf("%s -h = %v\n%s", name, err, stderr)
		}
	}
}
