// Command wxsim simulates WeChat for testing wxrelay: "wxsim serve" runs the
// fake WeChat API of package wxsim.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if code := exitCode(err); code != 0 {
		if code == 1 {
			fmt.Fprintln(os.Stderr, "wxsim:", err)
		}
		os.Exit(code)
	}
}

// command is one subcommand. Each lives in its own file; to add one, write
// its run function there and list it in commands.
type command struct {
	name    string
	summary string // one line for the usage text
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands are wxsim's subcommands, in the order the usage text lists them.
var commands = []command{
	{"up", "start a local stack to try wxrelay: the fake WeChat, a webhook receiver and wxrelay serve, with one tenant", runUp},
	{"serve", "serve the fake WeChat API (tokens, customer-service messages, media)", runServe},
	{"push", "send one push to a push URL as WeChat would and print the answer", runPush},
	{"verify", "check a push URL with WeChat's signed GET (echostr)", runVerify},
	{"load", "push load at a push URL; compare it with a bare handler", runLoad},
	{"bare", "serve the bare handler that load compares a relay with, as its own process", runBare},
	{"proxy", "serve a minimal token-injecting reverse proxy to WeChat: the send benchmark's baseline", runProxy},
	{"webhook", "receive webhook deliveries: print them and check their signatures", runWebhook},
}

// errUsage marks a command-line mistake whose explanation has already been
// printed; main exits 2 for it, as the flag package does.
var errUsage = errors.New("usage error")

// run dispatches args to a subcommand.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		usage(stderr)
		return errUsage
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return nil
	}
	for _, c := range commands {
		if c.name == name {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "wxsim: unknown command %q\n\n", name)
	usage(stderr)
	return errUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, `wxsim simulates WeChat for testing wxrelay.

Usage:
  wxsim <command> [flags]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run "wxsim <command> -h" for a command's flags.
`)
}

// exitCode maps run's result to the process exit status: 0 for success or
// a help request, 2 for a usage mistake, 1 for any other failure.
func exitCode(err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		return 1
	}
}
