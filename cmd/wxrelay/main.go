// Command wxrelay runs the relay between WeChat and mini-program tenants.
//
//	wxrelay serve        run the relay
//	wxrelay migrate      apply database migrations and exit
//	wxrelay admin-token  print an admin bearer token
//	wxrelay backup       write a consistent copy of a SQLite database
//	wxrelay tenants      manage tenants over the REST API
//	wxrelay operators    manage operators over the REST API
//	wxrelay version      print the version
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "wxrelay:", err)
		}
		os.Exit(exitCode(err))
	}
}

var (
	// errUsage marks a usage text already printed: exit 2, print nothing more.
	errUsage = errors.New("usage")
	// errBadFlags marks command lines that do not parse: exit 2.
	errBadFlags = errors.New("bad arguments")
)

func exitCode(err error) int {
	if errors.Is(err, errUsage) || errors.Is(err, errBadFlags) {
		return 2
	}
	return 1
}

const usage = `usage: wxrelay <command> [flags]

commands:
  serve        run the relay: WeChat push endpoints, REST and gRPC API, health and metrics
  migrate      apply database migrations and exit
  admin-token  print one admin bearer token (--ttl 24h)
  backup       write a consistent copy of the SQLite database, while serve runs (--to FILE)
  tenants      onboard, list, inspect and rotate tenants over the API (wxrelay tenants -h)
  operators    add, list and remove the people who run the relay (wxrelay operators -h)
  version      print the version

Run 'wxrelay <command> -h' for the flags of a command. Every flag has a
WXRELAY_* environment variable; flags win.
`

// run is main without the process: tests call it with their own arguments,
// environment and output.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(ctx, args, getenv, stderr)
	case "migrate":
		return migrate(ctx, args, getenv, stderr)
	case "admin-token":
		return adminToken(ctx, args, getenv, stdout, stderr)
	case "backup":
		return backup(ctx, args, getenv, stdout, stderr)
	case "tenants":
		return tenants(ctx, args, getenv, stdout, stderr)
	case "operators":
		return operators(ctx, args, getenv, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "wxrelay", versionString())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "wxrelay: unknown command %q\n\n%s", cmd, usage)
		return errUsage
	}
}
