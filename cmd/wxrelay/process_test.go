package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat/wxsim"
)

// binary is wxrelay built once for the process tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wxrelay-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "wxrelay")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build wxrelay: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// process is a running wxrelay serve.
type process struct {
	cmd  *exec.Cmd
	http string
	grpc string
	// metrics is where its /metrics is served (WXRELAY_METRICS_ADDR).
	metrics string
	stderr  *logFile
	// sim is the fake WeChat the process calls (WXRELAY_WECHAT_API), so
	// that no test reaches the real one.
	sim    *wxsim.Server
	simURL string
}

func startServe(t testing.TB, dir string, extraEnv ...string) *process {
	t.Helper()
	p := &process{http: freePort(t), grpc: freePort(t), metrics: freePort(t), sim: wxsim.New(wxsim.Options{})}
	wx := httptest.NewServer(p.sim)
	t.Cleanup(wx.Close)
	p.simURL = wx.URL
	p.cmd = exec.Command(binary, "serve")
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(),
		"WXRELAY_HTTP_ADDR="+p.http, "WXRELAY_GRPC_ADDR="+p.grpc,
		"WXRELAY_WECHAT_API="+wx.URL, "WXRELAY_METRICS_ADDR="+p.metrics,
	)
	p.cmd.Env = append(p.cmd.Env, extraEnv...)
	p.stderr = newLogFile(t)
	p.cmd.Stderr = p.stderr.f
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
	// Generous: on a loaded two-core CI machine, with other packages' tests
	// running beside, start-up has taken over 30 s.
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get("http://" + p.http + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("wxrelay did not become ready: %v\n%s", err, p.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logFile is where a started process writes its log: a file, not a pipe,
// so that this process is not woken to copy every line the other writes
// (at the default level, a line for every API call), which the benchmarks
// would count as the client's work.
type logFile struct{ f *os.File }

func newLogFile(t testing.TB) *logFile {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "stderr-*.log")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &logFile{f}
}

// Bytes returns what the process has written so far.
func (l *logFile) Bytes() []byte {
	b, _ := os.ReadFile(l.f.Name())
	return b
}

func (l *logFile) String() string { return string(l.Bytes()) }

// TestServeWithNoConfiguration starts the binary the way the README does,
// with nothing set but the ports, onboards a tenant with a token from
// admin-token, and stops it with SIGTERM.
func TestServeWithNoConfiguration(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, dir)

	if st, err := os.Stat(filepath.Join(dir, "wxrelay.db.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file beside the default database: %v %v", st, err)
	}
	tok := exec.Command(binary, "admin-token")
	tok.Dir = dir
	out, err := tok.Output()
	if err != nil {
		t.Fatal(err)
	}
	// The mini program exists at WeChat before it is onboarded: its first
	// token is fetched at once, and a refusal then would hold the tenant's
	// token in backoff when the message below is sent.
	p.sim.AddApp("wx00000000000000aa", "53c2e753c2e753c2e753c2e753c2e753")
	body := `{"appid":"wx00000000000000aa","app_secret":"53c2e753c2e753c2e753c2e753c2e753","token":"PushToken1","webhook_url":"https://hooks.example.com/a"}`
	req, _ := http.NewRequest("POST", "http://"+p.http+"/v1/tenants", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(out)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("create tenant: %d %s", resp.StatusCode, raw)
	}
	var created struct {
		Tenant struct {
			PushURL string `json:"push_url"`
		} `json:"tenant"`
	}
	json.Unmarshal(raw, &created)
	if !strings.HasPrefix(created.Tenant.PushURL, "http://localhost:8080/wx/tn_") {
		t.Errorf("push_url = %q, want the default public URL", created.Tenant.PushURL)
	}

	// A message goes out through WeChat with the access token the relay
	// fetched for the tenant.
	tid := created.Tenant.PushURL[strings.LastIndex(created.Tenant.PushURL, "/")+1:]
	req, _ = http.NewRequest("POST", "http://"+p.http+"/v1/tenants/"+tid+"/messages:send",
		strings.NewReader(`{"touser":"o1","msgtype":"text","text":{"content":"hi"}}`))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(out)))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("send: %d %s", resp.StatusCode, raw)
	}
	if calls := p.sim.Calls(); len(calls) == 0 || calls[len(calls)-1].Path != "/cgi-bin/message/custom/send" || calls[len(calls)-1].Errcode != 0 {
		t.Errorf("wxsim calls = %+v", calls)
	}

	p.stop(t, syscall.SIGTERM)
	// Logs are JSON lines and never carry the secrets.
	sc := bufio.NewScanner(bytes.NewReader(p.stderr.Bytes()))
	for sc.Scan() {
		if !json.Valid(sc.Bytes()) {
			t.Errorf("log line is not JSON: %s", sc.Text())
		}
		if strings.Contains(sc.Text(), "53c2e753c2e753c2e753c2e753c2e753") || strings.Contains(sc.Text(), "PushToken1") {
			t.Errorf("log line reveals a secret: %s", sc.Text())
		}
	}
	if !strings.Contains(p.stderr.String(), `"msg":"stopped"`) {
		t.Errorf("no graceful stop in the log:\n%s", p.stderr)
	}
}

func TestBadSettingExitsNonZeroWithOneLine(t *testing.T) {
	cmd := exec.Command(binary, "serve", "--db", "mysql://nope")
	cmd.Dir = t.TempDir()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() == 0 {
		t.Fatalf("err = %v, want a non-zero exit", err)
	}
	if lines := strings.Count(strings.TrimSpace(stderr.String()), "\n") + 1; lines != 1 {
		t.Errorf("stderr has %d lines, want 1:\n%s", lines, stderr.String())
	}
}

// TestCtrlCStopsServe: Ctrl-C (SIGINT), as the README's Quick start says,
// stops serve cleanly and frees its ports, as SIGTERM does.
func TestCtrlCStopsServe(t *testing.T) {
	p := startServe(t, t.TempDir())
	p.stop(t, os.Interrupt)
	for _, addr := range []string{p.http, p.grpc} {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after Ctrl-C", addr)
		}
	}
}

// stop sends sig and waits for a clean exit, for up to 30 s.
func (p *process) stop(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after %v: %v\n%s", sig, err, p.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit within 30 s of %v", sig)
	}
}

// metricsText is p's /metrics, whole.
func (p *process) metricsText(t testing.TB) string {
	t.Helper()
	resp, err := http.Get("http://" + p.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
