package main

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"time"
)

// defaultOpenID is the user pushes come from unless --from says otherwise:
// the openid of the official push example (docs/protocol.md §4, O2).
const defaultOpenID = "o9AgO5Kd5ggOC-bXrbNODIiE3bGY"

// tenantFlags are the flags naming the push URL and the mini program's
// console settings, shared by push and load.
type tenantFlags struct {
	url, token, appid, aesKey, to, from string
}

func (t *tenantFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&t.url, "url", "", "the relay's push `URL`, such as http://localhost:8080/wx/TENANT_ID")
	fs.StringVar(&t.token, "token", "", "the push `Token` configured for the mini program")
	fs.StringVar(&t.appid, "appid", "", "the mini program's `AppID` (wx and 16 hex digits)")
	fs.StringVar(&t.aesKey, "aes-key", "", "the mini program's 43-character `EncodingAESKey`; needed outside plaintext mode")
	fs.StringVar(&t.to, "to", "", "ToUserName, the mini program's original ID (default gh_ and the first 12 hex digits of SHA-1(appid))")
	fs.StringVar(&t.from, "from", defaultOpenID, "FromUserName, the sending user's `OPENID`")
}

// tenantEnv lists the flags of tenantFlags that environment variables
// stand in for.
var tenantEnv = []string{"url", "token", "appid", "aes-key", "to", "from"}

var (
	appIDPattern  = regexp.MustCompile(`^wx[0-9a-fA-F]{16}$`)
	aesKeyPattern = regexp.MustCompile(`^[A-Za-z0-9]*$`)
)

// check validates t, requiring the URL if needURL and the key if needKey,
// and fills in the default ToUserName.
func (t *tenantFlags) check(needURL, needKey bool) error {
	if needURL {
		if err := checkURL(t.url); err != nil {
			return err
		}
	}
	switch {
	case t.token == "":
		return errors.New("--token is required")
	case t.appid == "":
		return errors.New("--appid is required")
	case !appIDPattern.MatchString(t.appid):
		return fmt.Errorf("--appid %q: want wx and 16 hex digits, such as wx0123456789abcdef", t.appid)
	case needKey && t.aesKey == "":
		return errors.New("--aes-key is required in compatible and safe mode")
	case t.from == "":
		return errors.New("--from is empty")
	}
	if t.aesKey != "" {
		if err := checkAESKey(t.aesKey); err != nil {
			return err
		}
	}
	if t.to == "" {
		t.to = defaultOriginalID(t.appid)
	}
	return nil
}

func checkURL(s string) error {
	if s == "" {
		return errors.New("--url is required")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--url %q: want an http:// or https:// URL", s)
	}
	return nil
}

// checkAESKey says what is wrong with an EncodingAESKey, without echoing
// it: it is a secret.
func checkAESKey(k string) error {
	if len(k) != 43 {
		return fmt.Errorf("--aes-key: want 43 characters, got %d", len(k))
	}
	if !aesKeyPattern.MatchString(k) {
		return errors.New("--aes-key: want only the characters A-Z, a-z and 0-9")
	}
	return nil
}

// defaultOriginalID derives a stable original ID from appid, so that a
// tenant's original_id can be set to match what wxsim sends by default.
func defaultOriginalID(appid string) string {
	sum := sha1.Sum([]byte(appid))
	return "gh_" + hex.EncodeToString(sum[:6])
}

// randomNonce returns a nonce shaped like WeChat's: up to ten decimal
// digits.
func randomNonce() string { return strconv.FormatUint(uint64(rand.Uint32()), 10) }

// badUsage explains a command-line mistake on stderr and returns errUsage,
// for which main exits 2 without printing more.
func badUsage(stderr io.Writer, cmd string, err error) error {
	fmt.Fprintf(stderr, "wxsim %s: %v\nRun \"wxsim %s -h\" for its flags.\n", cmd, err, cmd)
	return errUsage
}

// parseFlags parses args into fs, then fills unset flags from the
// environment. It returns flag.ErrHelp for -h, and errUsage once the
// mistake has been explained on stderr.
func parseFlags(fs *flag.FlagSet, env envFlags, args []string, lookupEnv func(string) (string, bool), stderr io.Writer) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage // the flag package has explained
	}
	if fs.NArg() > 0 {
		return badUsage(stderr, fs.Name(), fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	if err := env.apply(lookupEnv); err != nil {
		return badUsage(stderr, fs.Name(), err)
	}
	return nil
}

// isSet reports which flags of fs were set, on the command line or from
// the environment.
func isSet(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// newHTTPClient returns the client of push and verify: it gives up after
// timeout, as WeChat does, and shows redirects instead of following them.
func newHTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// appendQuery adds rawQuery to the query of base, a URL that may have one.
func appendQuery(base, rawQuery string) string {
	if u, err := url.Parse(base); err == nil && u.RawQuery != "" {
		return base + "&" + rawQuery
	}
	return base + "?" + rawQuery
}
