package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat"
)

// maxAnswer bounds how much of an answer push and verify read.
const maxAnswer = 4 << 20

const pushUsage = `Usage: wxsim push --url PUSH_URL --token T --appid A [--aes-key K]
                  [--mode plaintext|compatible|safe] [--format xml|json]
                  [--to gh_...] [--from OPENID] [--msg-id N] [--timestamp S] [--nonce N]
                  (--text "hi" | --image MEDIA_ID | --miniprogrampage TITLE
                   | --event user_enter_tempsession [--session-from X]
                   | --event OTHER_EVENT [--field NAME=VALUE ...])

Sends one push to the relay exactly as WeChat would (the query with signature,
timestamp, nonce and, outside plaintext mode, openid, encrypt_type=aes and
msg_signature; the body, encrypted as the mode says; the Content-Type of the
format) and prints the relay's answer: its status line and body. When the answer
is an encrypted reply, push checks its MsgSignature and prints the decrypted
reply after a line starting "--".

Exits 0 when the relay answered 2xx (and any encrypted reply verifies), 1 when it
did not or could not be reached, 2 for a mistake on the command line.

The mode defaults to safe when --aes-key is given and plaintext otherwise; the
format defaults to xml, as in the mini-program console. MsgId defaults to a
random number above 2^53, as WeChat's are; CreateTime is the timestamp.

Flags (a $WXSIM_... variable stands in for a flag that is not given):
`

// runPush is "wxsim push".
func runPush(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return push(ctx, args, os.LookupEnv, stdout, stderr)
}

// fieldFlag collects repeated --field NAME=VALUE values, in order.
type fieldFlag [][2]string

func (f *fieldFlag) String() string { return "" }

var fieldName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (f *fieldFlag) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok || !fieldName.MatchString(name) {
		return errors.New("want NAME=VALUE, NAME letters, digits and _")
	}
	switch name {
	case "ToUserName", "FromUserName", "CreateTime", "MsgType", "Event":
		return fmt.Errorf("%s is set by other flags", name)
	}
	for _, kv := range *f {
		if kv[0] == name {
			return fmt.Errorf("%s given twice", name)
		}
	}
	*f = append(*f, [2]string{name, value})
	return nil
}

// pushFlags is the command line of push.
type pushFlags struct {
	tenantFlags
	mode, format string
	msgID        int64
	timestamp    int64
	nonce        string

	// The message: kind is the flag that chose it, one of pushKinds.
	kind                     string
	text, image, page, event string
	// and its details:
	sessionFrom, picURL, pagePath, thumbMediaID string
	fields                                      fieldFlag

	contentType string
	timeout     time.Duration
	verbose     bool
}

// pushKinds are the flags that choose the message; exactly one is given.
var pushKinds = []string{"text", "image", "miniprogrampage", "event"}

// pushDetails maps the flags that shape one kind of message to that kind.
var pushDetails = map[string]string{
	"session-from":   "event",
	"field":          "event",
	"pic-url":        "image",
	"pagepath":       "miniprogrampage",
	"thumb-media-id": "miniprogrampage",
	"msg-id":         "", // any kind but an event
}

func push(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) error {
	var p pushFlags
	fs := flag.NewFlagSet("push", flag.ContinueOnError)
	fs.SetOutput(stderr)
	p.tenantFlags.register(fs)
	fs.StringVar(&p.mode, "mode", "", "encryption `mode`: plaintext, compatible or safe (default safe with --aes-key, else plaintext)")
	fs.StringVar(&p.format, "format", "xml", "data `format`: xml or json")
	fs.Int64Var(&p.msgID, "msg-id", 0, "the message's MsgId (default random, above 2^53)")
	fs.Int64Var(&p.timestamp, "timestamp", 0, "the push's timestamp and CreateTime, Unix `seconds` (default now)")
	fs.StringVar(&p.nonce, "nonce", "", "the push's nonce (default random digits)")
	fs.StringVar(&p.text, "text", "", "send a text message with this `content`")
	fs.StringVar(&p.image, "image", "", "send an image message with this `MEDIA_ID`")
	fs.StringVar(&p.page, "miniprogrampage", "", "send a mini-program card with this `TITLE`")
	fs.StringVar(&p.event, "event", "", "send this event, such as user_enter_tempsession or debug_demo")
	fs.StringVar(&p.sessionFrom, "session-from", "", "user_enter_tempsession: the SessionFrom")
	fs.Var(&p.fields, "field", "other events: add a string field `NAME=VALUE` (repeatable)")
	fs.StringVar(&p.picURL, "pic-url", "", "image: the PicUrl (default a CDN-like URL naming the media id)")
	fs.StringVar(&p.pagePath, "pagepath", "pages/index/index", "miniprogrampage: the PagePath")
	fs.StringVar(&p.thumbMediaID, "thumb-media-id", "wxsim_thumb_media_id", "miniprogrampage: the ThumbMediaId")
	fs.StringVar(&p.contentType, "content-type", "", "label the body with this Content-Type instead of the format's own (to test receivers that must not trust it)")
	fs.DurationVar(&p.timeout, "timeout", 5*time.Second, "give up on the answer after this long, as WeChat does")
	fs.BoolVar(&p.verbose, "verbose", false, "also print the request to stderr")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), pushUsage)
		fs.PrintDefaults()
	}
	env := bindEnv(fs, append(tenantEnv, "mode", "format", "timeout")...)
	if err := parseFlags(fs, env, args, lookupEnv, stderr); err != nil {
		return err
	}
	mode, format, err := p.check(isSet(fs))
	if err != nil {
		return badUsage(stderr, "push", err)
	}

	var cipher *wechat.Cipher
	if mode != wechat.ModePlaintext {
		if cipher, err = wechat.NewCipher(p.aesKey, p.appid); err != nil {
			return badUsage(stderr, "push", err)
		}
	}
	msg := p.message(format)
	pusher := wechat.Pusher{Token: p.token, Mode: mode, Cipher: cipher}
	req, err := pusher.Push(msg, p.timestamp, p.nonce)
	if err != nil {
		return fmt.Errorf("push: build the push: %w", err)
	}
	contentType := req.ContentType
	if p.contentType != "" {
		contentType = p.contentType
	}
	target := appendQuery(p.url, req.RawQuery())
	if p.verbose {
		fmt.Fprintf(stderr, "POST %s\nContent-Type: %s\n\n%s\n\n", target, contentType, req.Body)
	}

	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(req.Body))
	if err != nil {
		return fmt.Errorf("push: %w", err)
	}
	hreq.Header.Set("Content-Type", contentType)
	resp, body, err := do(newHTTPClient(p.timeout), hreq)
	if err != nil {
		return fmt.Errorf("push: %w", err)
	}
	writeAnswer(stdout, resp, body)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("push: the relay answered %s", resp.Status)
	}
	if mode == wechat.ModePlaintext {
		return nil
	}
	return checkReply(stdout, stderr, mode, cipher, p.token, body)
}

// check validates p, given the flags that were set, and fills in the
// defaults that depend on other flags.
func (p *pushFlags) check(set map[string]bool) (wechat.Mode, wechat.Format, error) {
	mode := wechat.ModePlaintext
	if p.mode == "" && p.aesKey != "" {
		mode = wechat.ModeSafe
	} else if p.mode != "" {
		m, err := wechat.ParseMode(p.mode)
		if err != nil {
			return 0, 0, fmt.Errorf("--mode %q: want plaintext, compatible or safe", p.mode)
		}
		mode = m
	}
	format, err := wechat.ParseFormat(p.format)
	if err != nil {
		return 0, 0, fmt.Errorf("--format %q: want xml or json", p.format)
	}
	if err := p.tenantFlags.check(true, mode != wechat.ModePlaintext); err != nil {
		return 0, 0, err
	}

	var kinds []string
	for _, k := range pushKinds {
		if set[k] {
			kinds = append(kinds, "--"+k)
		}
	}
	switch {
	case len(kinds) == 0:
		return 0, 0, errors.New("say what to send: --text, --image, --miniprogrampage or --event")
	case len(kinds) > 1:
		return 0, 0, fmt.Errorf("send one message at a time, not %s", strings.Join(kinds, " and "))
	case set["image"] && p.image == "":
		return 0, 0, errors.New("--image: the media id is empty")
	case set["event"] && p.event == "":
		return 0, 0, errors.New("--event: the event name is empty")
	}
	kind := kinds[0][2:]
	p.kind = kind
	for _, name := range slices.Sorted(maps.Keys(pushDetails)) {
		want := pushDetails[name]
		if !set[name] {
			continue
		}
		switch {
		case name == "msg-id" && kind == "event":
			return 0, 0, errors.New("--msg-id: events carry no MsgId")
		case name == "field" && p.event == "user_enter_tempsession":
			return 0, 0, errors.New("--field: user_enter_tempsession has fixed fields; use --session-from")
		case name == "session-from" && kind == "event" && p.event != "user_enter_tempsession":
			return 0, 0, errors.New("--session-from: only user_enter_tempsession has a SessionFrom; use --field")
		case want != "" && want != kind:
			return 0, 0, fmt.Errorf("--%s applies to --%s only", name, want)
		}
	}

	if !set["msg-id"] {
		// WeChat's MsgIds are 64-bit, well above 2^53: they break float64.
		p.msgID = 1<<62 + rand.Int64N(1<<62)
	} else if p.msgID <= 0 {
		return 0, 0, fmt.Errorf("--msg-id %d: want a positive number", p.msgID)
	}
	if !set["timestamp"] {
		p.timestamp = time.Now().Unix()
	} else if p.timestamp <= 0 {
		return 0, 0, fmt.Errorf("--timestamp %d: want Unix seconds", p.timestamp)
	}
	if !set["nonce"] {
		p.nonce = randomNonce()
	} else if p.nonce == "" {
		return 0, 0, errors.New("--nonce is empty")
	}
	if p.timeout <= 0 {
		return 0, 0, fmt.Errorf("--timeout %v: want a positive duration", p.timeout)
	}
	if p.picURL == "" {
		p.picURL = "http://mmbiz.qpic.cn/mmbiz_jpg/wxsim/" + url.PathEscape(p.image) + "/0"
	}
	return mode, format, nil
}

// message builds the inner message p describes, in format f.
func (p *pushFlags) message(f wechat.Format) []byte {
	h := wechat.Header{ToUserName: p.to, FromUserName: p.from, CreateTime: p.timestamp}
	switch {
	case p.kind == "text":
		return wechat.TextMessage(f, h, p.text, p.msgID)
	case p.kind == "image":
		return wechat.ImageMessage(f, h, p.picURL, p.image, p.msgID)
	case p.kind == "event" && p.event == "user_enter_tempsession":
		return wechat.EnterTempSessionEvent(f, h, p.sessionFrom)
	case p.kind == "event":
		return eventMessage(f, h, p.event, p.fields)
	}
	return wechat.MiniProgramPageMessage(f, h, wechat.MiniProgramPage{
		Title:        p.page,
		AppID:        p.appid,
		PagePath:     p.pagePath,
		ThumbURL:     "http://mmbiz.qpic.cn/mmbiz_jpg/wxsim/" + url.PathEscape(p.thumbMediaID) + "/0",
		ThumbMediaID: p.thumbMediaID,
	}, p.msgID)
}

// do sends req and reads at most maxAnswer bytes of the answer.
func do(c *http.Client, req *http.Request) (*http.Response, []byte, error) {
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, nil, fmt.Errorf("read the answer: %w", err)
	}
	return resp, body, nil
}

// writeAnswer prints the status line and the body, ending in a newline,
// in one write: in the README's walk-through a webhook receiver prints to
// the same terminal, and the delivery it prints can land between two
// writes (a write of up to 4 KiB to a pipe is never split).
func writeAnswer(w io.Writer, resp *http.Response, body []byte) {
	out := fmt.Appendf(nil, "%s %s\n%s", resp.Proto, resp.Status, body)
	if len(body) > 0 && body[len(body)-1] != '\n' {
		out = append(out, '\n')
	}
	w.Write(out)
}

// checkReply looks at a 2xx answer to an encrypted push. "success" and an
// empty body are plain acknowledgements; anything that parses as an
// encrypted reply must carry a valid MsgSignature and decrypt, and its
// plaintext is printed. In safe mode WeChat accepts nothing else.
func checkReply(stdout, stderr io.Writer, mode wechat.Mode, c *wechat.Cipher, token string, body []byte) error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || string(trimmed) == wechat.Success {
		return nil
	}
	reply, err := wechat.ParseEncryptedReply(trimmed)
	if err != nil {
		if mode == wechat.ModeSafe {
			fmt.Fprintln(stderr, "wxsim push: warning: in safe mode WeChat takes only success, an empty body or an encrypted reply, and this answer is none of those")
		}
		return nil
	}
	plain, err := reply.Open(c, token)
	if err != nil {
		return fmt.Errorf("push: the encrypted reply does not verify: %w", err)
	}
	fmt.Fprintf(stdout, "-- encrypted reply: MsgSignature verifies; decrypted:\n%s\n", plain)
	return nil
}
