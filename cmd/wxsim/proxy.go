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
	"net/http/httputil"
	"net/url"
	"os"
	"time"
)

// runProxy is "wxsim proxy": the send benchmark's baseline, the thing a
// mini-program's owner would otherwise run in front of WeChat. A minimal
// token-injecting reverse proxy: every request is forwarded to --upstream
// with access_token=TOKEN added to its query, over kept-alive connections.
// It holds one fixed token and does nothing else (no auth, no reply window,
// no idempotency, no refresh), so that the relay's sends compared with it
// measure what the relay's work costs, both sides making the same two HTTP
// exchanges per send on the same cores.
func runProxy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:9996", "listen `address`; port 0 picks a free one, which the start-up line reports")
	upstream := fs.String("upstream", "", "the WeChat API to forward to, e.g. http://127.0.0.1:9999 (required)")
	token := fs.String("token", "", "the access_token added to every request (required)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: wxsim proxy --upstream URL --token TOKEN [--addr 127.0.0.1:9996]

Serves a minimal token-injecting reverse proxy until SIGINT or SIGTERM: each
request is forwarded to the upstream with access_token=TOKEN in its query,
and the answer returned as it is. The baseline of the send benchmark
(BenchmarkSend in cmd/wxrelay).

Flags:
`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, bindEnv(fs), args, os.LookupEnv, stderr); err != nil {
		return err
	}
	up, err := url.Parse(*upstream)
	if err != nil || (up.Scheme != "http" && up.Scheme != "https") || up.Host == "" {
		return fmt.Errorf("--upstream %q: want an http or https URL", *upstream)
	}
	if *token == "" {
		return errors.New("--token is required")
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           tokenProxy(up, *token),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return serveUntilDone(ctx, "proxy", srv, ln, func() {
		log.Info("wxsim token proxy serving", "addr", ln.Addr().String(), "upstream", up.String())
	})
}

// tokenProxy forwards to up with token in the query.
func tokenProxy(up *url.URL, token string) http.Handler {
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(up)
			q := r.Out.URL.Query()
			q.Set("access_token", token)
			r.Out.URL.RawQuery = q.Encode()
		},
		// Keep-alive to the upstream, with room for the benchmark's
		// concurrency; the default transport keeps only 2 idle per host.
		Transport: &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second},
	}
}
