package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"

	"github.com/wxrelay/wxrelay/relay/wechat/wxsim/load"
)

// runBare is "wxsim bare": the load benchmark's baseline as a process of
// its own. A relay under test is another process than the load generator,
// with every request crossing between the two; a baseline inside the load
// generator's process skips that crossing (the Go runtime hands the request
// from client goroutine to server goroutine without waking another
// process), which made it about 1.5 times as fast as the very same handler
// served by a process of its own (docs/benchmarks.md, "Push ingest").
// Compared with this one, the relay and the baseline pay for the same
// crossings.
func runBare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:9997", "listen `address`; port 0 picks a free one, which the start-up line reports")
	durable := fs.String("durable", "", "append every push to this `file` and fsync it, one fsync for all the pushes that arrived meanwhile, before answering: the durability floor a relay is measured against")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: wxsim bare [--addr 127.0.0.1:9997] [--durable FILE]

Serves the baseline of "wxsim load --compare" in this process until SIGINT or
SIGTERM: a net/http handler that reads each request's body and answers
"success", doing none of a relay's work; with --durable, it also appends the
body to FILE and has it on disk (group commit, one fsync a batch) before
answering, the physical floor of a relay's work. Point "wxsim load
--bare-url" at http://ADDR/wx/bare to compare a relay with it.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, bindEnv(fs), args, os.LookupEnv, stderr); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", *addr)
	if err != nil {
		return err
	}
	srv := load.NewBareHTTPServer(slog.NewLogLogger(log.Handler(), slog.LevelWarn))
	if *durable != "" {
		d, err := load.NewDurableBare(*durable)
		if err != nil {
			return err
		}
		defer d.Close()
		srv = load.NewDurableBareHTTPServer(d, slog.NewLogLogger(log.Handler(), slog.LevelWarn))
	}
	return serveUntilDone(ctx, "bare", srv, ln, func() {
		log.Info("wxsim bare handler serving", "url", "http://"+ln.Addr().String()+"/wx/bare")
	})
}
