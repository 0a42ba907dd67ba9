package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"
)

// The mini program "wxsim up" onboards: the README walk-through's, known
// to the fake WeChat it starts.
const (
	upAppID     = "wx0123456789abcdef"
	upAppSecret = "0123456789abcdef0123456789abcdef"
	upToken     = "PushToken123"
	upAESKey    = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
)

// runUp is "wxsim up": the whole local stack in one command, for trying
// the relay. It serves the fake WeChat and a webhook receiver in this
// process, runs `wxrelay serve` beside them on a database in --dir,
// onboards one mini program, and prints what to paste to push as WeChat,
// send as the tenant and sign in to the console; deliveries are printed
// as they arrive. SIGINT or SIGTERM stops everything.
//
// The relay runs as a process of its own, the binary a user would run,
// rather than linked in: wxsim is the fake outside world, and the relay's
// binary stays free of it.
func runUp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	relayBin := fs.String("wxrelay", "", "the wxrelay `binary` (default: the one beside wxsim, else wxrelay on $PATH)")
	dir := fs.String("dir", "", "where the relay keeps its database, key and log, and wxsim its log (default: a new temporary directory)")
	httpAddr := fs.String("http-addr", "127.0.0.1:8080", "the relay's push URLs, REST API and console")
	grpcAddr := fs.String("grpc-addr", "127.0.0.1:9090", "the relay's gRPC API")
	metricsAddr := fs.String("metrics-addr", "127.0.0.1:9464", "the relay's /metrics")
	wechatAddr := fs.String("wechat-addr", "127.0.0.1:9999", "the fake WeChat API")
	webhookAddr := fs.String("webhook-addr", "127.0.0.1:9998", "the tenant's webhook receiver")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: wxsim up [--dir DIR] [--wxrelay PATH] [addresses]

Starts a local stack for trying wxrelay: the fake WeChat (as wxsim serve), a
webhook receiver (as wxsim webhook), and wxrelay serve pointed at them; onboards
the mini program `+upAppID+` as a tenant (safe mode, JSON) and prints its push URL,
API key, an admin token for the console, and commands to try. Deliveries to the
tenant's webhook are printed as they arrive. SIGINT (Ctrl-C) stops everything.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "wxsim up: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	bin, err := findRelay(*relayBin)
	if err != nil {
		return err
	}
	if *dir == "" {
		if *dir, err = os.MkdirTemp("", "wxrelay-up-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	simLog, err := os.OpenFile(filepath.Join(*dir, "wxsim.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer simLog.Close()

	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	failed := make(chan error, 3)
	background := func(name string, f func() error) {
		wg.Go(func() {
			if err := f(); err != nil && ctx.Err() == nil {
				failed <- fmt.Errorf("%s: %w", name, err)
			}
			stop()
		})
	}

	// The fake WeChat first: the relay fetches tokens from it.
	if err := waitFree(*wechatAddr, *webhookAddr, *httpAddr, *grpcAddr, *metricsAddr); err != nil {
		return err
	}
	background("wxsim serve", func() error {
		return runServe(ctx, []string{"--addr", *wechatAddr, "--app", upAppID + ":" + upAppSecret}, simLog, simLog)
	})
	if err := waitListening(ctx, *wechatAddr); err != nil {
		return err
	}
	relay, err := startRelay(ctx, bin, *dir, []string{
		"WXRELAY_HTTP_ADDR=" + *httpAddr, "WXRELAY_GRPC_ADDR=" + *grpcAddr, "WXRELAY_METRICS_ADDR=" + *metricsAddr,
		"WXRELAY_PUBLIC_URL=http://" + *httpAddr, "WXRELAY_WECHAT_API=http://" + *wechatAddr,
		"WXRELAY_ALLOW_PRIVATE_WEBHOOKS=true",
	})
	if err != nil {
		return err
	}
	background("wxrelay serve", relay.wait)
	base := "http://" + *httpAddr
	if err := waitReady(ctx, base, relay); err != nil {
		return err
	}
	admin, err := relayOutput(ctx, bin, *dir, "admin-token", "--ttl", "24h")
	if err != nil {
		return fmt.Errorf("wxrelay admin-token: %w", err)
	}
	t, err := onboard(ctx, base, admin, "http://"+*webhookAddr+"/wechat-events")
	if err != nil {
		return err
	}
	// The receiver checks signatures with the tenant's secret, so it
	// starts once the tenant is made; nothing is pushed before.
	background("wxsim webhook", func() error {
		return runWebhook(ctx, []string{"--addr", *webhookAddr, "--secret", t.WebhookSecret}, stdout, simLog)
	})
	printUp(stdout, *dir, base, admin, t)

	select {
	case err := <-failed:
		stop()
		return err
	case <-ctx.Done():
	}
	fmt.Fprintln(stdout, "stopping: the relay, the webhook receiver and the fake WeChat")
	return nil
}

// findRelay is the wxrelay binary to run: flag if given, else the one
// beside this executable, else wxrelay on $PATH.
func findRelay(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if self, err := os.Executable(); err == nil {
		beside := filepath.Join(filepath.Dir(self), "wxrelay")
		if fi, err := os.Stat(beside); err == nil && !fi.IsDir() {
			return beside, nil
		}
	}
	if p, err := exec.LookPath("wxrelay"); err == nil {
		return p, nil
	}
	return "", errors.New("no wxrelay binary beside wxsim or on $PATH: build both, go build -o bin/ ./cmd/wxrelay ./cmd/wxsim, and run bin/wxsim up (or pass --wxrelay)")
}

// waitFree checks that nothing answers at addrs, so that a port already
// in use (a relay left running) is said before anything starts.
func waitFree(addrs ...string) error {
	for _, a := range addrs {
		if c, err := net.DialTimeout("tcp", a, 200*time.Millisecond); err == nil {
			c.Close()
			return fmt.Errorf("%s is in use (another relay or wxsim still running?); stop it, or choose other addresses (wxsim up -h)", a)
		}
	}
	return nil
}

// waitListening waits until something accepts connections at addr.
func waitListening(ctx context.Context, addr string) error {
	for range 100 {
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("nothing listens at %s", addr)
}

// relayProcess is `wxrelay serve` running under up.
type relayProcess struct {
	cmd  *exec.Cmd
	log  string // its log file
	done chan struct{}
	err  error // once done
}

func startRelay(ctx context.Context, bin, dir string, env []string) (*relayProcess, error) {
	logPath := filepath.Join(dir, "wxrelay.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, "serve")
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, logFile, logFile
	cmd.Env = append(os.Environ(), env...)
	// Stopped as a user would stop it, so that it drains and closes its
	// database; killed only if that takes too long.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 15 * time.Second
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s serve: %w", bin, err)
	}
	p := &relayProcess{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// wait waits for the relay to exit; an exit before it was asked to stop
// is an error that quotes the end of its log.
func (p *relayProcess) wait() error {
	<-p.done
	if p.cmd.ProcessState != nil && p.cmd.ProcessState.Success() {
		return nil
	}
	return fmt.Errorf("exited (%v); the end of %s:\n%s", p.err, p.log, tail(p.log, 5))
}

// tail is the last n lines of the file at path.
func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// waitReady waits until the relay at base answers /readyz, or exits.
func waitReady(ctx context.Context, base string, p *relayProcess) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("wxrelay serve %w", p.wait())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("wxrelay serve is not ready after 30 s; see %s", p.log)
		}
	}
}

// relayOutput runs a wxrelay command in dir and returns its output.
func relayOutput(ctx context.Context, bin, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%w: %s", err, strings.TrimSpace(errOut.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// upTenant is what up prints of the tenant it onboarded.
type upTenant struct {
	ID, PushURL, APIKey, WebhookSecret string
}

// onboard makes the tenant, with its credentials checked against the fake
// WeChat; in a --dir used before, the tenant is there already, and its
// API key and webhook secret are rotated, the only way to see them again.
func onboard(ctx context.Context, base, admin, webhook string) (upTenant, error) {
	body := `{"display_name":"wxsim up","appid":"` + upAppID + `","app_secret":"` + upAppSecret + `","token":"` + upToken +
		`","encoding_aes_key":"` + upAESKey + `","encrypt_mode":"ENCRYPT_MODE_SAFE","data_format":"DATA_FORMAT_JSON","webhook_url":"` + webhook + `"}`
	var created struct {
		Tenant struct {
			ID      string `json:"id"`
			PushURL string `json:"push_url"`
		} `json:"tenant"`
		APIKey        string `json:"api_key"`
		WebhookSecret string `json:"webhook_secret"`
		Details       []struct {
			Metadata map[string]string `json:"metadata"`
		} `json:"details"`
	}
	status, err := call(ctx, http.MethodPost, base+"/v1/tenants?check_credentials=true", admin, body, &created)
	if err != nil {
		return upTenant{}, err
	}
	t := upTenant{ID: created.Tenant.ID, PushURL: created.Tenant.PushURL, APIKey: created.APIKey, WebhookSecret: created.WebhookSecret}
	switch {
	case status == http.StatusOK:
		return t, nil
	case status == http.StatusConflict && len(created.Details) > 0 && created.Details[0].Metadata["tenant_id"] != "":
		t.ID = created.Details[0].Metadata["tenant_id"]
	default:
		return upTenant{}, fmt.Errorf("onboard %s: the relay answered %d", upAppID, status)
	}
	var key, secret, got struct {
		APIKey        string `json:"api_key"`
		WebhookSecret string `json:"webhook_secret"`
		PushURL       string `json:"push_url"`
	}
	for _, c := range []struct {
		method, path string
		out          any
	}{
		{http.MethodPost, ":rotateApiKey", &key}, {http.MethodPost, ":rotateWebhookSecret", &secret}, {http.MethodGet, "", &got},
	} {
		body := ""
		if c.method == http.MethodPost {
			body = "{}"
		}
		if status, err := call(ctx, c.method, base+"/v1/tenants/"+t.ID+c.path, admin, body, c.out); err != nil || status != http.StatusOK {
			return upTenant{}, fmt.Errorf("tenant %s%s: %d %v", t.ID, c.path, status, err)
		}
	}
	t.APIKey, t.WebhookSecret, t.PushURL = key.APIKey, secret.WebhookSecret, got.PushURL
	return t, nil
}

// call makes one REST call with the admin token and decodes the answer,
// whatever its status, into out.
func call(ctx context.Context, method, url, token, body string, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return resp.StatusCode, json.NewDecoder(bufio.NewReader(resp.Body)).Decode(out)
}

// printUp prints where everything is and what to try.
func printUp(w io.Writer, dir, base, admin string, t upTenant) {
	fmt.Fprintf(w, "wxrelay is up on a fake WeChat, with one tenant. Logs and the database: %s\n\n", dir)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  console\t%s/console/\tsign in with the admin token\n", base)
	fmt.Fprintf(tw, "  admin token\t%s\n", admin)
	fmt.Fprintf(tw, "  tenant\t%s\t%s, safe mode, JSON; Token %s, EncodingAESKey %s\n", t.ID, upAppID, upToken, upAESKey)
	fmt.Fprintf(tw, "  push URL\t%s\n", t.PushURL)
	fmt.Fprintf(tw, "  API key\t%s\n", t.APIKey)
	fmt.Fprintf(tw, "  webhook secret\t%s\tdeliveries are checked with it and printed below\n", t.WebhookSecret)
	tw.Flush()
	fmt.Fprintf(w, `
Push a user's message as WeChat would:
  wxsim push --url %s --token %s --appid %s --aes-key %s --format json --text "Where is my order?"
Answer the user as the tenant:
  curl -s -X POST %s/v1/tenants/%s/messages:send -H "Authorization: Bearer %s" -d '{"touser":"%s","msgtype":"text","text":{"content":"It ships today."}}'
List the tenants:
  WXRELAY_URL=%s WXRELAY_ADMIN_TOKEN=%s wxrelay tenants list

Ctrl-C stops everything.

`, t.PushURL, upToken, upAppID, upAESKey, base, t.ID, t.APIKey, defaultOpenID, base, admin)
}
