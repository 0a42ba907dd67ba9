package deploy

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	wxrelayv1 "github.com/wxrelay/wxrelay/api/gen/wxrelay/v1"
)

// TestNginx and TestCaddy run deploy/nginx/wxrelay.conf and
// deploy/caddy/Caddyfile, as shipped but for ports, addresses and a
// self-signed certificate, in front of two real `wxrelay serve` replicas,
// and go through them as WeChat and a tenant would: the push URL check, an
// encrypted push, REST, gRPC, the body cap, a replica going away.

func TestNginx(t *testing.T) {
	nginx := lookTool(t, "nginx")
	dir, tlsFiles := proxyDir(t)
	p80, p443 := freePort(t), freePort(t)
	rs := startReplicas(t, "https://localhost:"+p443)

	conf := read(t, "nginx/wxrelay.conf")
	for _, r := range []struct{ old, new string }{
		{"listen [::]:80;\n", ""},
		{"listen [::]:443 ssl http2;\n", ""},
		{"listen 80;", "listen 127.0.0.1:" + p80 + ";"},
		{"listen 443 ssl http2;", "listen 127.0.0.1:" + p443 + " ssl http2;"},
		{"server_name relay.example.com;", "server_name localhost;"},
		{"/etc/letsencrypt/live/relay.example.com/fullchain.pem", tlsFiles.cert},
		{"/etc/letsencrypt/live/relay.example.com/privkey.pem", tlsFiles.key},
		{"server 10.0.0.11:8080 ", "server " + rs[0].http + " "},
		{"server 10.0.0.12:8080 ", "server " + rs[1].http + " "},
		{"server 10.0.0.11:9090 ", "server " + rs[0].grpc + " "},
		{"server 10.0.0.12:9090 ", "server " + rs[1].grpc + " "},
	} {
		if !strings.Contains(conf, r.old) {
			t.Fatalf("nginx/wxrelay.conf no longer has %q: update this test", r.old)
		}
		conf = strings.ReplaceAll(conf, r.old, r.new)
	}
	write(t, filepath.Join(dir, "site.conf"), conf)
	write(t, filepath.Join(dir, "nginx.conf"), fmt.Sprintf(`pid %[1]s/nginx.pid;
error_log stderr warn;
events {}
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[1]s/site.conf;
}
`, dir))
	if out, err := exec.Command(nginx, "-t", "-p", dir, "-c", filepath.Join(dir, "nginx.conf")).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	startProcess(t, "nginx", exec.Command(nginx, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-g", "daemon off;"), "127.0.0.1:"+p443)
	exercise(t, rs, tlsFiles, p80, p443)
}

func TestCaddy(t *testing.T) {
	caddy := lookTool(t, "caddy")
	dir, tlsFiles := proxyDir(t)
	p80, p443 := freePort(t), freePort(t)
	rs := startReplicas(t, "https://localhost:"+p443)

	// Ports and the certificate in a global block and a tls line; the
	// upstreams through the variables the Caddyfile reads.
	conf := read(t, "caddy/Caddyfile")
	site := "{$WXRELAY_DOMAIN} {\n"
	if !strings.Contains(conf, site) {
		t.Fatalf("caddy/Caddyfile no longer has %q: update this test", site)
	}
	conf = fmt.Sprintf("{\n\tadmin off\n\thttp_port %s\n\thttps_port %s\n\tskip_install_trust\n}\n\n", p80, p443) +
		strings.Replace(conf, site, site+"\ttls "+tlsFiles.cert+" "+tlsFiles.key+"\n", 1)
	path := filepath.Join(dir, "Caddyfile")
	write(t, path, conf)
	env := cleanEnv([]string{
		"HOME=" + dir, "XDG_DATA_HOME=" + dir, "XDG_CONFIG_HOME=" + dir,
		"WXRELAY_DOMAIN=localhost",
		"WXRELAY_HTTP_UPSTREAMS=" + rs[0].http + " " + rs[1].http,
		"WXRELAY_GRPC_UPSTREAMS=h2c://" + rs[0].grpc + " h2c://" + rs[1].grpc})
	validate := exec.Command(caddy, "validate", "--config", path, "--adapter", "caddyfile")
	validate.Env = env
	if out, err := validate.CombinedOutput(); err != nil {
		t.Fatalf("caddy validate: %v\n%s", err, out)
	}
	cmd := exec.Command(caddy, "run", "--config", path, "--adapter", "caddyfile")
	cmd.Env = env
	startProcess(t, "caddy", cmd, "127.0.0.1:"+p443)
	exercise(t, rs, tlsFiles, p80, p443)
}

// exercise goes through the proxy on p80/p443 to the replicas rs.
func exercise(t *testing.T, rs []*replica, tf tlsFiles, p80, p443 string) {
	base := "https://localhost:" + p443
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(read(t, tf.cert)))
	client := &http.Client{
		Timeout:       10 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	do := func(method, url, token string, body []byte) (int, string, http.Header) {
		t.Helper()
		req, err := http.NewRequest(method, url, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}

	for _, doc := range []string{"/openapi.json", "/swagger.json"} {
		if code, _, _ := do("GET", base+doc, "", nil); code != 200 {
			t.Errorf("GET %s through the proxy = %d, want 200", doc, code)
		}
	}
	if code, body, _ := do("GET", base+"/healthz", "", nil); code != 200 || body != "ok\n" {
		t.Errorf("GET /healthz through the proxy = %d %q, want 200 ok", code, body)
	}
	for _, private := range []string{"/metrics", "/readyz", "/"} {
		if code, _, _ := do("GET", base+private, "", nil); code != 404 {
			t.Errorf("GET %s through the proxy = %d, want 404: it stays private", private, code)
		}
	}
	if code, _, h := do("GET", "http://localhost:"+p80+"/wx/x", "", nil); (code != 301 && code != 308) || !strings.HasPrefix(h.Get("Location"), "https://localhost") {
		t.Errorf("GET http://…/wx/x = %d Location %q, want a redirect to https", code, h.Get("Location"))
	}

	// A tenant whose webhook is a local receiver.
	var mu sync.Mutex
	delivered := map[string]bool{}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		delivered[r.Header.Get("webhook-id")] = true
		mu.Unlock()
	}))
	t.Cleanup(hook.Close)
	admin := strings.TrimSpace(run(t, nil, rs[0].bin, "admin-token", "--db", rs[0].db, "--ttl", "10m"))
	const (
		appid  = "wx0123456789abcdef"
		token  = "PushToken123"
		aesKey = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	)
	code, body, _ := do("POST", base+"/v1/tenants", admin, fmt.Appendf(nil,
		`{"display_name":"deploy test","appid":%q,"app_secret":"0123456789abcdef0123456789abcdef","token":%q,"encoding_aes_key":%q,
		  "encrypt_mode":"ENCRYPT_MODE_SAFE","data_format":"DATA_FORMAT_JSON","webhook_url":%q}`, appid, token, aesKey, hook.URL))
	if code != 200 {
		t.Fatalf("POST /v1/tenants through the proxy = %d %s", code, body)
	}
	var created struct {
		Tenant struct {
			ID      string `json:"id"`
			PushURL string `json:"push_url"`
		} `json:"tenant"`
	}
	if err := json.Unmarshal([]byte(body), &created); err != nil {
		t.Fatal(err)
	}
	pushURL := created.Tenant.PushURL
	if want := base + "/wx/" + created.Tenant.ID; pushURL != want {
		t.Fatalf("push_url = %q, want %q: under WXRELAY_PUBLIC_URL, the proxy's https address", pushURL, want)
	}

	// WeChat's GET check of the push URL, then encrypted pushes, which the
	// proxy spreads over both replicas; each reaches the webhook.
	// wxsim trusts the test's certificate through SSL_CERT_FILE.
	trust := []string{"SSL_CERT_FILE=" + tf.cert}
	run(t, trust, rs[0].wxsim, "verify", "--url", pushURL, "--token", token)
	push := func() {
		t.Helper()
		run(t, trust, rs[0].wxsim, "push", "--url", pushURL, "--token", token, "--appid", appid, "--aes-key", aesKey,
			"--mode", "safe", "--format", "json", "--text", "hi")
	}
	for range 4 {
		push()
	}
	waitFor(t, "4 webhook deliveries", func() bool { mu.Lock(); defer mu.Unlock(); return len(delivered) == 4 })

	// The proxy stops a body far over the relay's 1 MiB cap itself.
	if code, _, _ := do("POST", pushURL, "", make([]byte, 3<<20)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("a 3 MiB push = %d, want 413", code)
	}

	// The WeChat-compatible API answers as WeChat does, in JSON.
	if code, body, _ := do("GET", base+"/wxapi/cgi-bin/token?grant_type=client_credential&appid="+appid+"&secret=wrong", "", nil); code != 200 || !strings.Contains(body, "errcode") {
		t.Errorf("the compatible API through the proxy = %d %q, want WeChat's JSON error", code, body)
	}

	// The operator console: sign in; the cookie is Secure behind TLS, and
	// the session's pages come through.
	signIn, err := http.NewRequest("POST", base+"/console/login", strings.NewReader("token="+admin))
	if err != nil {
		t.Fatal(err)
	}
	signIn.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := client.Do(signIn)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "wxrelay_console" {
			session = ck
		}
	}
	if resp.StatusCode != http.StatusSeeOther || session == nil || !session.Secure || !session.HttpOnly {
		t.Fatalf("console sign-in through the proxy: %d, cookie %+v; want 303 and a Secure, HttpOnly session", resp.StatusCode, session)
	}
	home, _ := http.NewRequest("GET", base+"/console/", nil)
	home.AddCookie(session)
	if resp, err := client.Do(home); err != nil {
		t.Fatal(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), "deploy test") {
			t.Errorf("the console's tenants page through the proxy: %d, want 200 listing the tenant", resp.StatusCode)
		}
	}

	// gRPC on the same port 443, with the admin token.
	conn, err := grpc.NewClient("localhost:"+p443, grpc.WithTransportCredentials(credentials.NewClientTLSFromCert(pool, "")))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("gRPC health through the proxy: %v, %v", h, err)
	}
	list, err := wxrelayv1.NewTenantServiceClient(conn).ListTenants(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+admin), &wxrelayv1.ListTenantsRequest{})
	if err != nil || len(list.GetTenants()) != 1 {
		t.Errorf("gRPC ListTenants through the proxy: %v, %v", list, err)
	}

	// One replica stops (SIGTERM): the proxy sends everything to the other.
	rs[1].stop(t)
	for range 4 {
		if code, _, _ := do("GET", base+"/healthz", "", nil); code != 200 {
			t.Errorf("GET /healthz with one replica down = %d, want 200", code)
		}
	}
	for range 2 {
		push()
	}
	waitFor(t, "6 webhook deliveries", func() bool { mu.Lock(); defer mu.Unlock(); return len(delivered) == 6 })
}

type tlsFiles struct{ cert, key string }

// proxyDir makes a directory nginx's workers can read (they may run as
// nobody) holding a self-signed certificate for localhost.
func proxyDir(t *testing.T) (string, tlsFiles) {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	f := tlsFiles{cert: filepath.Join(dir, "cert.pem"), key: filepath.Join(dir, "key.pem")}
	write(t, f.cert, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	write(t, f.key, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})))
	return dir, f
}

type replica struct {
	bin, wxsim, db string
	http, grpc     string
	cmd            *exec.Cmd
	done           <-chan struct{}
}

var binaries struct {
	once           sync.Once
	dir            string
	wxrelay, wxsim string
	err            error
	out            []byte
}

// build builds wxrelay and wxsim once for the package's tests.
func build(t *testing.T) (wxrelay, wxsim string) {
	t.Helper()
	b := &binaries
	b.once.Do(func() {
		b.dir, b.err = os.MkdirTemp("", "wxrelay-deploy-test")
		if b.err != nil {
			return
		}
		b.wxrelay, b.wxsim = filepath.Join(b.dir, "wxrelay"), filepath.Join(b.dir, "wxsim")
		b.out, b.err = exec.Command("go", "build", "-o", b.dir, "../cmd/wxrelay", "../cmd/wxsim").CombinedOutput()
	})
	if b.err != nil {
		t.Fatalf("build: %v\n%s", b.err, b.out)
	}
	return b.wxrelay, b.wxsim
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binaries.dir != "" {
		os.RemoveAll(binaries.dir)
	}
	os.Exit(code)
}

// startReplicas starts two `wxrelay serve` on one SQLite database (the
// same key file), as a proxy's upstreams, handing out push URLs under
// publicURL.
func startReplicas(t *testing.T, publicURL string) []*replica {
	t.Helper()
	bin, wxsim := build(t)
	db := filepath.Join(t.TempDir(), "wxrelay.db")
	run(t, nil, bin, "migrate", "--db", db)
	var rs []*replica
	for range 2 {
		r := &replica{bin: bin, wxsim: wxsim, db: db, http: "127.0.0.1:" + freePort(t), grpc: "127.0.0.1:" + freePort(t)}
		r.cmd = exec.Command(bin, "serve", "--db", db, "--http-addr", r.http, "--grpc-addr", r.grpc, "--metrics-addr", "127.0.0.1:0",
			"--public-url", publicURL, "--wechat-api", "http://127.0.0.1:9", "--allow-private-webhooks", "--log-level", "warn")
		r.done = startProcess(t, "wxrelay", r.cmd, r.http)
		rs = append(rs, r)
	}
	return rs
}

// stop sends SIGTERM and waits for the replica to drain and exit.
func (r *replica) stop(t *testing.T) {
	t.Helper()
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		t.Fatal("a replica did not stop within 30 s of SIGTERM")
	}
}

// startProcess starts cmd, logs its output when the test fails, waits
// until addr accepts connections and stops it (SIGTERM) at the end of the
// test. The channel is closed when the process has exited.
func startProcess(t *testing.T, name string, cmd *exec.Cmd, addr string) <-chan struct{} {
	t.Helper()
	if cmd.Env == nil {
		cmd.Env = cleanEnv(nil)
	}
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %s after 30 s:\n%s", name, addr, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if name == "wxrelay" {
		// It listens before it migrates and serves: wait for /healthz.
		waitFor(t, name+" /healthz", func() bool {
			resp, err := http.Get("http://" + addr + "/healthz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == 200
		})
	}
	return done
}

// run runs a binary to completion, with env added to the environment, and
// returns its stdout.
func run(t *testing.T, env []string, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = cleanEnv(env)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", filepath.Base(bin), strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// cleanEnv is the environment without WXRELAY_*, WXSIM_* and SSL_CERT_*
// settings, plus extra.
func cleanEnv(extra []string) []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "WXRELAY_") && !strings.HasPrefix(e, "WXSIM_") && !strings.HasPrefix(e, "SSL_CERT_") {
			env = append(env, e)
		}
	}
	return append(env, extra...)
}

func lookTool(t *testing.T, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts processes; skipped with -short")
	}
	path, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed", name)
	}
	return path
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 20 s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
