package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay/delivery"
)

var webhookAddrLine = regexp.MustCompile(`msg="wxsim receiving webhooks" addr=(\S+)`)

// TestWebhookReceiver posts deliveries signed by the relay's own signer to
// "wxsim webhook": a good one is printed and answered 204, a forged or
// stale one 401, and --count 1 makes it exit after the good one.
func TestWebhookReceiver(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	stdout, stderr := new(syncBuffer), new(syncBuffer)
	done := make(chan error, 1)
	go func() {
		done <- run(context.Background(), []string{"webhook", "--addr", "127.0.0.1:0", "--secret", secret, "--count", "1"}, stdout, stderr)
	}()
	var url string
	for deadline := time.Now().Add(10 * time.Second); url == ""; {
		if m := webhookAddrLine.FindStringSubmatch(stderr.String()); m != nil {
			url = "http://" + m[1] + "/events"
		} else if time.Now().After(deadline) {
			t.Fatalf("no start-up line:\n%s", stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}

	body := `{"id":"evt_1","type":"message.text","data":{"Content":"hi"}}`
	post := func(id string, ts time.Time, sig string) int {
		t.Helper()
		req, _ := http.NewRequest("POST", url, strings.NewReader(body))
		req.Header.Set("webhook-id", id)
		req.Header.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
		req.Header.Set("webhook-signature", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	sign := func(secrets []string, id string, ts time.Time) string {
		t.Helper()
		s, err := delivery.Sign(secrets, id, ts, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	now := time.Now()
	if got := post("evt_1", now, sign([]string{"whsec_b3RoZXIgc2VjcmV0"}, "evt_1", now)); got != 401 {
		t.Errorf("signed with another secret: %d, want 401", got)
	}
	old := now.Add(-time.Hour)
	if got := post("evt_1", old, sign([]string{secret}, "evt_1", old)); got != 401 {
		t.Errorf("an hour-old timestamp: %d, want 401", got)
	}
	if got := post("evt_2", now, sign([]string{secret}, "evt_1", now)); got != 401 {
		t.Errorf("signature of another webhook-id: %d, want 401", got)
	}
	// During a rotation the relay signs with both secrets.
	if got := post("evt_1", now, sign([]string{"whsec_b3RoZXIgc2VjcmV0", secret}, "evt_1", now)); got != 204 {
		t.Errorf("good delivery: %d, want 204", got)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("webhook exited with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit after --count 1 deliveries")
	}
	out := stdout.String()
	if !strings.Contains(out, "webhook-id: evt_1  signature: ok") || !strings.Contains(out, `"Content": "hi"`) {
		t.Errorf("stdout lacks the good delivery:\n%s", out)
	}
	if strings.Count(out, "signature: BAD") != 3 {
		t.Errorf("stdout should show 3 refused deliveries:\n%s", out)
	}
}

// --status and --delay play a failing and a slow webhook.
func TestWebhookReceiverFailsOnDemand(t *testing.T) {
	stdout, stderr := new(syncBuffer), new(syncBuffer)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go run(ctx, []string{"webhook", "--addr", "127.0.0.1:0", "--status", "500", "--delay", "300ms"}, stdout, stderr)
	var url string
	for deadline := time.Now().Add(10 * time.Second); url == ""; {
		if m := webhookAddrLine.FindStringSubmatch(stderr.String()); m != nil {
			url = "http://" + m[1] + "/events"
		} else if time.Now().After(deadline) {
			t.Fatalf("no start-up line:\n%s", stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	resp, err := http.Post(url, "application/json", strings.NewReader(`{"id":"evt_1"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 500 || time.Since(start) < 300*time.Millisecond {
		t.Errorf("answered %d after %v, want 500 after 300ms", resp.StatusCode, time.Since(start))
	}
	var bad bytes.Buffer
	if err := run(context.Background(), []string{"webhook", "--status", "42"}, &bad, &bad); err == nil || !strings.Contains(bad.String(), "--status") {
		t.Errorf("--status 42: %v %q, want a usage error naming --status", err, bad.String())
	}
}
