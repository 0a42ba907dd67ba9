package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat/wxsim"
)

// shutdownGrace is how long in-flight calls get to finish on SIGINT/SIGTERM.
const shutdownGrace = 5 * time.Second

// serveUntilDone serves srv on ln, calls started once it is serving, and
// returns when ctx ends, after letting requests in flight finish within
// shutdownGrace, or when serving fails (the error prefixed with name).
// The commands that serve (serve, webhook, bare) end this way.
func serveUntilDone(ctx context.Context, name string, srv *http.Server, ln net.Listener, started func()) error {
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	started()
	select {
	case err := <-served:
		return fmt.Errorf("%s: %w", name, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// appFlag collects repeated --app APPID:SECRET values.
type appFlag map[string]string

func (f appFlag) String() string { return "" }

func (f appFlag) Set(v string) error {
	appid, secret, ok := strings.Cut(v, ":")
	if !ok || appid == "" || secret == "" {
		return errors.New("want APPID:SECRET")
	}
	f[appid] = secret
	return nil
}

// runServe is "wxsim serve": the fake WeChat API until ctx ends.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:9999", "listen `address`; port 0 picks a free one, which the start-up line reports")
	apps := appFlag{}
	fs.Var(apps, "app", "register a mini program as `APPID:SECRET` (repeatable; more via POST /wxsim/apps)")
	verbose := fs.Bool("verbose", false, "log every WeChat API call received")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: wxsim serve [--addr 127.0.0.1:9999] [--app APPID:SECRET ...] [--verbose]

Serves the WeChat API endpoints wxrelay calls (/cgi-bin/token, /cgi-bin/stable_token,
/cgi-bin/message/custom/send and typing, /cgi-bin/media/upload and get, and the open
platform's /cgi-bin/component/... with its consent page) with real token lifetimes and
WeChat's error codes. Stops gracefully on SIGINT or SIGTERM.

Test controls (JSON bodies; changes answer 204, bad requests 400):
  POST   /wxsim/apps {"appid","secret"}                 register a mini program
  POST   /wxsim/apps/{appid}/invalidate                 revoke its access tokens (40001)
  POST   /wxsim/faults/system-error {"count","path"}    answer errcode -1 to the next calls
  POST   /wxsim/faults/reject {"openid","errcode"}      refuse sends to a user (45015, ...)
  POST   /wxsim/faults/latency {"latency":"250ms"}      delay every answer
  POST   /wxsim/faults/ip-whitelist {"enabled":true}    answer 40164 to token fetches
  DELETE /wxsim/faults                                   clear every fault
  GET    /wxsim/calls[?path=/cgi-bin/...]               every call received, and tokens issued
  POST   /wxsim/reset                                   forget everything
  POST   /wxsim/components {"appid","secret","token","encoding_aes_key",
                            "auth_event_url","message_url"}   register a third-party platform
  POST   /wxsim/components/{appid}/ticket               push a component_verify_ticket now
  POST   /wxsim/components/{appid}/tickets {"stopped"}  stop or resume ticket pushes
  POST   /wxsim/components/{appid}/fault {"errcode"}    answer 61004, 45009, ... to token fetches
  POST   /wxsim/components/{appid}/scan {"pre_auth_code","authorizer_appid","func_info"}
                                                        a merchant authorizes (or use the consent page)
  POST   /wxsim/components/{appid}/authorizers/{authorizer}/revoke
  POST   /wxsim/components/{appid}/authorizers/{authorizer}/message {"openid","text","msg_id"}
  POST   /wxsim/components/{appid}/release-check        WeChat's full-network release check
  GET    /wxsim/pushes                                  every push made to a relay
The same controls are Go methods of package wxsim, for tests in process.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage // the flag package has explained
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "wxsim serve: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	sim := wxsim.New(wxsim.Options{Log: log})
	ids := make([]string, 0, len(apps))
	for appid, secret := range apps {
		sim.AddApp(appid, secret)
		ids = append(ids, appid)
	}

	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           sim,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	slices.Sort(ids)
	err = serveUntilDone(ctx, "serve", srv, ln, func() {
		log.Info("wxsim serving the WeChat API", "addr", ln.Addr().String(), "apps", ids)
	})
	if err != nil {
		return err
	}
	log.Info("wxsim stopped")
	return nil
}
