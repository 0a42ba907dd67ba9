package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxWebhookBody caps a delivery's body; the relay's events are far smaller.
const maxWebhookBody = 4 << 20

// runWebhook is "wxsim webhook": a throwaway webhook receiver for trying the
// relay out. It prints every delivery it receives and checks its Standard
// Webhooks signature with --secret, written here independently of the
// relay's signing code so that it checks the relay rather than agrees with
// it.
func runWebhook(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("webhook", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:9998", "listen `address`; port 0 picks a free one, which the start-up line reports")
	secret := fs.String("secret", "", "the tenant's webhook `secret` (whsec_...): deliveries whose signature does not hold are answered 401; without it none is checked")
	tolerance := fs.Duration("tolerance", 5*time.Minute, "refuse a webhook-timestamp further than this from now (replays)")
	count := fs.Int("count", 0, "exit after this many accepted deliveries (0: run until SIGINT or SIGTERM)")
	status := fs.Int("status", http.StatusNoContent, "answer deliveries whose signature holds with this HTTP `status` (500 plays a failing webhook: the relay retries)")
	delay := fs.Duration("delay", 0, "wait this long before answering (longer than the relay's --delivery-timeout plays a webhook that times out)")
	env := bindEnv(fs, "secret")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: wxsim webhook [--addr 127.0.0.1:9998] [--secret whsec_...] [--count N] [--status 204] [--delay 0s]

Receives the relay's webhook deliveries (any path): prints each one's webhook-id,
whether its signature holds, and its JSON body, then answers 204 (or --status,
after --delay), or 401 when --secret is given and the signature or timestamp
does not hold.

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
	if err := env.apply(os.LookupEnv); err != nil {
		fmt.Fprintf(stderr, "wxsim webhook: %v\n", err)
		return errUsage
	}
	if *status < 200 || *status > 599 || *delay < 0 {
		fmt.Fprintf(stderr, "wxsim webhook: --status must be an HTTP status (200-599) and --delay not negative\n")
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "wxsim webhook: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	var key []byte
	if *secret != "" {
		k, err := webhookKey(*secret)
		if err != nil {
			fmt.Fprintf(stderr, "wxsim webhook: --secret %v\n", err)
			return errUsage
		}
		key = k
	}

	log := slog.New(slog.NewTextHandler(stderr, nil))
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", *addr)
	if err != nil {
		return err
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var (
		mu       sync.Mutex // one delivery printed at a time
		accepted int
	)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
		if err != nil {
			http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
			return
		}
		verdict, ok := "not checked (no --secret)", true
		if key != nil {
			if err := verifyWebhook(key, r.Header, body, time.Now(), *tolerance); err != nil {
				verdict, ok = "BAD: "+err.Error(), false
			} else {
				verdict = "ok"
			}
		}
		var pretty bytes.Buffer
		if json.Indent(&pretty, body, "", "  ") == nil {
			body = pretty.Bytes()
		}
		mu.Lock()
		// One write, as wxsim push's answer: both may share a terminal.
		fmt.Fprintf(stdout, "%s %s webhook-id: %s  signature: %s\n%s\n\n", r.Method, r.URL.Path, r.Header.Get("webhook-id"), verdict, body)
		mu.Unlock()
		if !ok {
			http.Error(w, "signature does not hold", http.StatusUnauthorized)
			return
		}
		if *delay > 0 {
			select {
			case <-time.After(*delay):
			case <-r.Context().Done():
			}
		}
		w.WriteHeader(*status)
		if *status >= 300 {
			return // not accepted: the relay retries
		}
		mu.Lock()
		defer mu.Unlock()
		if accepted++; *count > 0 && accepted >= *count {
			stop()
		}
	})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	return serveUntilDone(ctx, "webhook", srv, ln, func() {
		log.Info("wxsim receiving webhooks", "addr", ln.Addr().String(), "checking_signatures", key != nil)
	})
}

// webhookKey returns the HMAC key of a Standard Webhooks secret: the
// base64 after "whsec_".
func webhookKey(secret string) ([]byte, error) {
	enc, ok := strings.CutPrefix(secret, "whsec_")
	if !ok {
		return nil, errors.New("must start with whsec_")
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(key) == 0 {
		return nil, errors.New("must be whsec_ and standard base64")
	}
	return key, nil
}

// verifyWebhook checks a delivery as Standard Webhooks receivers do: one of
// the space-separated "v1,<base64>" signatures is the HMAC-SHA256 of
// "webhook-id.webhook-timestamp.body", and the timestamp is within
// tolerance of now.
func verifyWebhook(key []byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return errors.New("webhook-id, webhook-timestamp or webhook-signature header missing")
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook-timestamp %q is not unix seconds", ts)
	}
	if d := now.Sub(time.Unix(secs, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("webhook-timestamp is %s from now, beyond %s", d.Round(time.Second), tolerance)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, s := range strings.Fields(sigs) {
		v, b64, ok := strings.Cut(s, ",")
		if !ok || v != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no v1 signature matches the secret")
}
