package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The probes of an attacker, against the real binary: each of these once
// passed where it must not.

// adminTokenFor runs admin-token in dir, with env added to this process's
// environment and args, and returns the token.
func adminTokenFor(t testing.TB, dir string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"admin-token"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("admin-token %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}

func listTenants(t *testing.T, p *process, token string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+p.http+"/v1/tenants", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// The contract says an expired token is 401; a 1 s token once lived 31 s.
func TestShortAdminTokenExpires(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := startServe(t, dir)
	tok := adminTokenFor(t, dir, nil, "--ttl", "1s")
	if st := listTenants(t, p, tok); st != 200 {
		t.Fatalf("fresh 1s token: %d, want 200", st)
	}
	time.Sleep(3 * time.Second)
	if st := listTenants(t, p, tok); st != 401 {
		t.Errorf("1s token 3s later: %d, want 401", st)
	}
}

func TestAdminTokenTTLCapped(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(binary, "admin-token", "--ttl", "169h")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || len(out) != 0 {
		t.Fatalf("admin-token --ttl 169h: err %v, stdout %q; want a failure and no token", err, out)
	}
	if !strings.Contains(stderr.String(), "maximum of 168h") {
		t.Errorf("stderr %q does not name the maximum", stderr.String())
	}
	if tok := adminTokenFor(t, dir, nil, "--ttl", "168h"); tok == "" {
		t.Error("no token at the maximum ttl")
	}
}

// --debug-addr :PORT serves pprof on loopback only, and says so.
func TestDebugAddrWithoutHostIsLoopback(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	port := freePort(t)
	_, portOnly, _ := net.SplitHostPort(port)
	p := startServe(t, dir, "WXRELAY_DEBUG_ADDR=:"+portOnly)
	resp, err := http.Get("http://127.0.0.1:" + portOnly + "/debug/pprof/")
	if err != nil {
		t.Fatalf("pprof on loopback: %v", err)
	}
	resp.Body.Close()
	if !strings.Contains(p.stderr.String(), `"debug_addr":"127.0.0.1:`+portOnly+`"`) {
		t.Errorf("start-up log does not say the profiles are on loopback:\n%s", p.stderr)
	}
	ip := nonLoopbackIPv4(t)
	if ip == "" {
		t.Log("no non-loopback IPv4 address here: only the log was checked")
		return
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, portOnly), time.Second)
	if err == nil {
		c.Close()
		t.Errorf("pprof reachable on %s", ip)
	}
}

func TestDebugAddrOnEveryInterfaceWarns(t *testing.T) {
	t.Parallel()
	_, portOnly, _ := net.SplitHostPort(freePort(t))
	p := startServe(t, t.TempDir(), "WXRELAY_DEBUG_ADDR=0.0.0.0:"+portOnly)
	if log := p.stderr.String(); !strings.Contains(log, `"level":"WARN","msg":"pprof profiles are served on every interface`) {
		t.Errorf("no warning for pprof on every interface:\n%s", log)
	}
}

func nonLoopbackIPv4(t *testing.T) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			return n.IP.String()
		}
	}
	return ""
}

// A connection to the gRPC port that never says hello is closed within
// the handshake timeout (10 s, as the HTTP port's header timeout), not
// kept for grpc-go's default 120 s.
func TestGRPCClosesSilentConnections(t *testing.T) {
	t.Parallel()
	p := startServe(t, t.TempDir())
	for name, addr := range map[string]string{"grpc": p.grpc, "http": p.http} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			c.SetReadDeadline(start.Add(30 * time.Second))
			_, err = io.Copy(io.Discard, c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("a silent connection still open after 30 s")
			}
			if took := time.Since(start); took > 15*time.Second {
				t.Errorf("a silent connection was closed after %s, want about 10 s", took.Round(time.Second))
			}
		})
	}
}
