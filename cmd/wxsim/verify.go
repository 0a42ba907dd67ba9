package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat"
)

const verifyUsage = `Usage: wxsim verify --url PUSH_URL --token T [--echostr N] [--timestamp S] [--nonce N]

Checks a push URL the way WeChat does when the URL is saved in the console: a GET
with signature, timestamp, nonce and echostr, the same in every encryption mode.
Prints the status line and body of the answer, then "-- echostr matches" when the
answer is 200 with exactly the echostr as its body.

Exits 0 when it is, 1 when it is not or the URL could not be reached, 2 for a
mistake on the command line.

Flags (a $WXSIM_... variable stands in for a flag that is not given):
`

// runVerify is "wxsim verify".
func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return verify(ctx, args, os.LookupEnv, stdout, stderr)
}

func verify(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) error {
	var (
		pushURL, token, echostr, nonce string
		timestamp                      int64
		timeout                        time.Duration
	)
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&pushURL, "url", "", "the relay's push `URL`")
	fs.StringVar(&token, "token", "", "the push `Token` configured for the mini program")
	fs.StringVar(&echostr, "echostr", "", "the echostr to have echoed (default random digits, as WeChat's)")
	fs.Int64Var(&timestamp, "timestamp", 0, "the timestamp, Unix `seconds` (default now)")
	fs.StringVar(&nonce, "nonce", "", "the nonce (default random digits)")
	fs.DurationVar(&timeout, "timeout", 5*time.Second, "give up on the answer after this long")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), verifyUsage)
		fs.PrintDefaults()
	}
	env := bindEnv(fs, "url", "token", "timeout")
	if err := parseFlags(fs, env, args, lookupEnv, stderr); err != nil {
		return err
	}
	set := isSet(fs)
	if err := checkURL(pushURL); err != nil {
		return badUsage(stderr, "verify", err)
	}
	switch {
	case token == "":
		return badUsage(stderr, "verify", errors.New("--token is required"))
	case set["echostr"] && echostr == "":
		return badUsage(stderr, "verify", errors.New("--echostr is empty"))
	case set["nonce"] && nonce == "":
		return badUsage(stderr, "verify", errors.New("--nonce is empty"))
	case set["timestamp"] && timestamp <= 0:
		return badUsage(stderr, "verify", fmt.Errorf("--timestamp %d: want Unix seconds", timestamp))
	case timeout <= 0:
		return badUsage(stderr, "verify", fmt.Errorf("--timeout %v: want a positive duration", timeout))
	}
	if echostr == "" {
		// Like the official example's 4375120948345356249: 19 digits.
		echostr = strconv.FormatUint(1e18+rand.Uint64N(9e18), 10)
	}
	if nonce == "" {
		nonce = randomNonce()
	}
	if timestamp == 0 {
		timestamp = time.Now().Unix()
	}

	q := wechat.URLVerificationQuery(token, timestamp, nonce, echostr)
	// WeChat's order, which url.Values.Encode (sorted by key) does not keep.
	var raw string
	for i, k := range []string{"signature", "timestamp", "nonce", "echostr"} {
		if i > 0 {
			raw += "&"
		}
		raw += k + "=" + url.QueryEscape(q.Get(k))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, appendQuery(pushURL, raw), nil)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	resp, body, err := do(newHTTPClient(timeout), req)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	writeAnswer(stdout, resp, body)
	switch {
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("verify: the relay answered %s, not 200 OK", resp.Status)
	case string(body) != echostr:
		return fmt.Errorf("verify: the answer is not exactly the echostr %s", echostr)
	}
	fmt.Fprintln(stdout, "-- echostr matches")
	return nil
}
