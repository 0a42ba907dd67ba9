package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat/wxsim/load"
)

const loadUsage = `Usage: wxsim load --url PUSH_URL --token T --appid A --aes-key K [--to gh_...] [--from OPENID]
                  [--concurrency 64] [--rate PUSHES_PER_S] [--duration 10s | --count N]
                  [--max-p99 D] [--prepare N] [--timeout 5s] [--json]
       wxsim load --compare --url PUSH_URL --token T --appid A --aes-key K ...
                  [--rounds 5] [--round-duration 3s] [--min-ratio R]
       wxsim load --bare ...
       (--compare and --bare take --bare-url URL: a bare handler of another
        process, such as "wxsim bare", instead of one in this process)

Pushes distinct safe-mode JSON text messages (each its own MsgId, all from one
user) at the relay's push URL and reports how many were answered 2xx, the
failures by kind, the rate (2xx answers per second) and the answer latency
(p50, p90, p99, max). The pushes are encrypted before the clock starts.

  closed loop (default): --concurrency workers each send, wait for the answer,
      and send again; latency runs from sending to the answer.
  open loop (--rate N): N pushes per second on a fixed schedule, whatever the
      answers do, with at most --concurrency in flight; latency runs from each
      push's scheduled time, so queueing in the relay shows up in it instead of
      quietly lowering the rate (coordinated omission). Pushes still waiting
      for a worker --timeout after the schedule ends are counted as not sent.
  --compare: alternates --rounds rounds of --round-duration between the relay
      and a bare net/http handler wxsim starts on loopback (it reads the body
      and answers success), and prints both rates, the relay/bare ratio and
      both latency distributions. Run it closed loop for the ratio, and with
      --rate for the latencies at a given load.
  --bare: runs against that bare handler only, to see what the client and the
      machine can do (--url, --token, --appid and --aes-key are then optional).
  --bare-url URL: the bare handler to use, served by another process ("wxsim
      bare"), instead of one started in this process. A relay is another
      process than wxsim, and so should its baseline be: in wxsim's own
      process the bare handler skips the cost of waking another process for
      every request, and ran about 1.5 times as fast here.

Exits 1 if any push failed or was not sent, or a --max-p99 or --min-ratio check
failed; 0 otherwise. MsgIds run upwards from msg_id_base (in --json), so the
relay's events can be checked against the pushes answered.

Flags (a $WXSIM_... variable stands in for a flag that is not given):
`

// Placeholders that let --bare run with no tenant: the bare handler checks
// nothing. The key is the official sample's (docs/protocol.md §4, V1).
const (
	bareToken  = "wxsim"
	bareAppID  = "wx0123456789abcdef"
	bareAESKey = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
)

// Pool sizes when --prepare is not given.
const (
	prepareClosedLoop = 100_000   // closed loop for a duration: the rate is unknown
	prepareMax        = 1_000_000 // about 600 MB of pushes
	prepareBare       = 10_000    // the bare handler does not de-duplicate: repeat these
)

// runLoad is "wxsim load".
func runLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return loadCmd(ctx, args, os.LookupEnv, stdout, stderr)
}

// loadFlags is the command line of load.
type loadFlags struct {
	tenantFlags
	concurrency, count, prepare, rounds int
	rate, minRatio                      float64
	duration, roundDuration             time.Duration
	maxP99, timeout                     time.Duration
	compare, bare, json                 bool
	bareURL                             string
}

func loadCmd(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) error {
	var l loadFlags
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	l.tenantFlags.register(fs)
	fs.IntVar(&l.concurrency, "concurrency", load.DefaultConcurrency, "workers: pushes in flight (closed loop) or the most in flight (open loop)")
	fs.Float64Var(&l.rate, "rate", 0, "run an open loop at this many `pushes/s` (default: closed loop)")
	fs.DurationVar(&l.duration, "duration", 0, "run this long (default 10s unless --count is given)")
	fs.IntVar(&l.count, "count", 0, "stop after this many pushes")
	fs.BoolVar(&l.compare, "compare", false, "alternate rounds between the relay and a bare handler")
	fs.IntVar(&l.rounds, "rounds", 5, "--compare: rounds per target")
	fs.DurationVar(&l.roundDuration, "round-duration", 3*time.Second, "--compare: length of each round")
	fs.Float64Var(&l.minRatio, "min-ratio", 0, "--compare: fail unless the relay/bare rate ratio is at least this")
	fs.DurationVar(&l.maxP99, "max-p99", 0, "fail unless the relay's p99 latency is at most this")
	fs.BoolVar(&l.bare, "bare", false, "push to a bare handler on loopback instead of --url")
	fs.StringVar(&l.bareURL, "bare-url", "", "--compare, --bare: the `URL` of a bare handler served by another process (wxsim bare) instead of one in this process")
	fs.IntVar(&l.prepare, "prepare", 0, "encrypt this many pushes before the clock starts (default: enough for --count or --rate × duration; 100000 for a closed loop)")
	fs.DurationVar(&l.timeout, "timeout", load.DefaultTimeout, "give up on an answer after this long, as WeChat does")
	fs.BoolVar(&l.json, "json", false, "print the results as JSON")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), loadUsage)
		fs.PrintDefaults()
	}
	env := bindEnv(fs, append(tenantEnv, "concurrency", "timeout")...)
	if err := parseFlags(fs, env, args, lookupEnv, stderr); err != nil {
		return err
	}
	if err := l.check(isSet(fs)); err != nil {
		return badUsage(stderr, "load", err)
	}

	gen, err := load.NewGenerator(load.Tenant{
		Token: l.token, AppID: l.appid, EncodingAESKey: l.aesKey,
		ToUserName: l.to, FromUserName: l.from,
	})
	if err != nil {
		return badUsage(stderr, "load", err)
	}
	n := l.poolSize()
	started := time.Now()
	pool, err := load.Prepare(ctx, gen, n)
	if err != nil {
		return fmt.Errorf("load: prepare pushes: %w", err)
	}
	fmt.Fprintf(stderr, "wxsim load: prepared %d safe-mode JSON text pushes in %.2fs\n", n, time.Since(started).Seconds())

	opts := load.Options{
		Concurrency: l.concurrency,
		Rate:        l.rate,
		Duration:    l.duration,
		Count:       l.count,
		Client:      load.NewClient(l.concurrency, l.timeout),
		Drain:       l.timeout,
	}
	// Connections dialed for the run and never used for a push would
	// otherwise stay open after it, and hold a server's graceful shutdown
	// (net/http waits up to 5 s for a connection that has sent nothing).
	defer opts.Client.CloseIdleConnections()
	report := loadReport{MsgIDBase: strconv.FormatInt(gen.Base(), 10), Prepared: n}
	if l.compare || l.bare {
		bareURL := l.bareURL
		if bareURL == "" {
			bare, err := load.StartBare()
			if err != nil {
				return err
			}
			defer bare.Close()
			bareURL = bare.URL
		}
		bareTarget := load.Target{URL: bareURL, Source: pool.Repeat()}
		if l.bare {
			fmt.Fprintf(stderr, "wxsim load: %s against the bare handler at %s\n", l.describe(), bareURL)
			if report.Run, err = load.Run(ctx, bareTarget, opts); err != nil {
				return fmt.Errorf("load: %w", err)
			}
		} else {
			opts.Duration = l.roundDuration
			fmt.Fprintf(stderr, "wxsim load: %d rounds of %v each, %s, against %s and the bare handler at %s\n",
				l.rounds, l.roundDuration, l.describe(), l.url, bareURL)
			if report.Compare, err = load.Compare(ctx, load.Target{URL: l.url, Source: pool}, bareTarget, opts, l.rounds); err != nil {
				return fmt.Errorf("load: %w", err)
			}
		}
	} else {
		fmt.Fprintf(stderr, "wxsim load: %s against %s\n", l.describe(), l.url)
		if report.Run, err = load.Run(ctx, load.Target{URL: l.url, Source: pool}, opts); err != nil {
			return fmt.Errorf("load: %w", err)
		}
	}
	report.check(l)

	if l.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(report); err != nil {
			return err
		}
	} else {
		report.writeText(stdout)
	}
	if !report.Pass {
		return errors.New("load: a check failed")
	}
	return nil
}

// check validates l, given the flags that were set, and fills in defaults.
func (l *loadFlags) check(set map[string]bool) error {
	if l.bare {
		if set["url"] {
			return errors.New("--bare pushes to its own handler: drop --url")
		}
		if l.compare {
			return errors.New("--compare already includes the bare handler: drop --bare")
		}
		for _, f := range []struct {
			v   *string
			def string
		}{{&l.token, bareToken}, {&l.appid, bareAppID}, {&l.aesKey, bareAESKey}} {
			if *f.v == "" {
				*f.v = f.def
			}
		}
	}
	if set["bare-url"] && !l.compare && !l.bare {
		return errors.New("--bare-url applies to --compare and --bare only")
	}
	if set["bare-url"] {
		if u, err := url.Parse(l.bareURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--bare-url %q: want an http:// URL such as http://127.0.0.1:9997/wx/bare", l.bareURL)
		}
	}
	if err := l.tenantFlags.check(!l.bare, true); err != nil {
		return err
	}
	if l.compare {
		for _, name := range []string{"duration", "count"} {
			if set[name] {
				return fmt.Errorf("--%s does not apply to --compare: use --rounds and --round-duration", name)
			}
		}
	} else {
		for _, name := range []string{"rounds", "round-duration", "min-ratio"} {
			if set[name] {
				return fmt.Errorf("--%s applies to --compare only", name)
			}
		}
	}
	switch {
	case l.concurrency < 1:
		return fmt.Errorf("--concurrency %d: want at least 1", l.concurrency)
	case l.rate < 0 || math.IsNaN(l.rate) || math.IsInf(l.rate, 0):
		return fmt.Errorf("--rate %g: want a positive number of pushes per second", l.rate)
	case l.duration < 0:
		return fmt.Errorf("--duration %v: want a positive duration", l.duration)
	case l.count < 0:
		return fmt.Errorf("--count %d: want a positive number", l.count)
	case l.rounds < 1:
		return fmt.Errorf("--rounds %d: want at least 1", l.rounds)
	case l.roundDuration <= 0:
		return fmt.Errorf("--round-duration %v: want a positive duration", l.roundDuration)
	case l.minRatio < 0:
		return fmt.Errorf("--min-ratio %g: want a positive ratio", l.minRatio)
	case l.maxP99 < 0:
		return fmt.Errorf("--max-p99 %v: want a positive duration", l.maxP99)
	case l.prepare < 0:
		return fmt.Errorf("--prepare %d: want a positive number", l.prepare)
	case l.timeout <= 0:
		return fmt.Errorf("--timeout %v: want a positive duration", l.timeout)
	}
	if !l.compare && l.duration == 0 && l.count == 0 {
		l.duration = 10 * time.Second
	}
	return nil
}

// poolSize is how many pushes to prepare.
func (l *loadFlags) poolSize() int {
	if l.prepare > 0 {
		return l.prepare
	}
	span := l.duration
	if l.compare {
		span = time.Duration(l.rounds) * l.roundDuration
	}
	n := prepareClosedLoop
	switch {
	case l.count > 0:
		n = l.count
	case l.rate > 0:
		n = int(math.Ceil(l.rate*span.Seconds())) + l.concurrency
	}
	n = min(n, prepareMax)
	if l.bare {
		n = min(n, prepareBare)
	}
	return max(n, 1)
}

func (l *loadFlags) describe() string {
	s := fmt.Sprintf("closed loop, concurrency %d", l.concurrency)
	if l.rate > 0 {
		s = fmt.Sprintf("open loop at %g pushes/s, at most %d in flight", l.rate, l.concurrency)
	}
	switch {
	case l.compare:
	case l.count > 0 && l.duration > 0:
		s += fmt.Sprintf(", %d pushes or %v", l.count, l.duration)
	case l.count > 0:
		s += fmt.Sprintf(", %d pushes", l.count)
	default:
		s += fmt.Sprintf(", %v", l.duration)
	}
	return s
}

// loadReport is what load prints, as text or JSON.
type loadReport struct {
	// MsgIDBase is the MsgId of the first push; the others follow it.
	MsgIDBase string           `json:"msg_id_base"`
	Prepared  int              `json:"prepared"`
	Run       *load.Result     `json:"run,omitempty"`
	Compare   *load.Comparison `json:"compare,omitempty"`
	Checks    []loadCheck      `json:"checks"`
	Pass      bool             `json:"pass"`
}

type loadCheck struct {
	Name string `json:"name"`
	Pass bool   `json:"pass"`
}

// check runs the checks l asks for on the results.
func (r *loadReport) check(l loadFlags) {
	add := func(pass bool, format string, args ...any) {
		r.Checks = append(r.Checks, loadCheck{fmt.Sprintf(format, args...), pass})
	}
	noFailures := func(who string, res *load.Result) {
		add(res.Failed == 0 && res.NotSent == 0, "%severy push answered 2xx (%d failed, %d not sent)", who, res.Failed, res.NotSent)
	}
	main := r.Run
	if r.Compare != nil {
		main = r.Compare.Relay
		noFailures("relay: ", r.Compare.Relay)
		noFailures("bare: ", r.Compare.Bare)
		if l.minRatio > 0 {
			add(r.Compare.Ratio >= l.minRatio, "relay/bare %.3f >= %g", r.Compare.Ratio, l.minRatio)
		}
	} else {
		noFailures("", r.Run)
	}
	if l.maxP99 > 0 {
		add(main.Latency.P99 <= l.maxP99, "p99 %v <= %v", main.Latency.P99.Round(10*time.Microsecond), l.maxP99)
	}
	r.Pass = true
	for _, c := range r.Checks {
		r.Pass = r.Pass && c.Pass
	}
}

func (r *loadReport) writeText(w io.Writer) {
	if r.Compare != nil {
		r.Compare.WriteText(w)
	} else {
		r.Run.WriteText(w)
	}
	fmt.Fprintln(w)
	for _, c := range r.Checks {
		verdict := "ok"
		if !c.Pass {
			verdict = "FAIL"
		}
		fmt.Fprintf(w, "check    %s: %s\n", c.Name, verdict)
	}
}
