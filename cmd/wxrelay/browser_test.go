package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium finds the browser the console's tests drive: $WXRELAY_CHROMIUM,
// or Debian's chromium on PATH. Without one the test is skipped, saying
// how to get one, so that the README's test command passes on a machine
// with no browser; .ci/run installs it.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("WXRELAY_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium found: install Debian's (apt-get install chromium), or set WXRELAY_CHROMIUM to a Chrome or Chromium binary, to run the console's browser tests (.ci/run installs it)")
	return ""
}

// browser starts a headless Chromium of its own, with an empty profile,
// and returns a tab's context; everything is closed with the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		// As root (CI) Chromium refuses to start with its sandbox; the
		// pages it loads are the test's own.
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		// This machine's network is closed: Chromium's own calls home
		// only fail, slowly and many at a time.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithErrorf(t.Logf))
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

// screenshots writes full-page screenshots under the test's temp
// directory and, when WXRELAY_SCREENSHOTS names a directory, there too,
// so that a reviewer can look at what the test saw.
type screenshots struct {
	t    *testing.T
	dirs []string
	n    int
}

func newScreenshots(t *testing.T) *screenshots {
	s := &screenshots{t: t, dirs: []string{t.TempDir()}}
	if d := os.Getenv("WXRELAY_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		s.dirs = append(s.dirs, d)
	}
	return s
}

// take saves the page as NN-name.png.
func (s *screenshots) take(ctx context.Context, name string) {
	s.t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		s.t.Fatalf("screenshot %s: %v", name, err)
	}
	s.n++
	file := strings.ReplaceAll(strings.ToLower(name), " ", "-")
	for _, d := range s.dirs {
		p := filepath.Join(d, fmt.Sprintf("%02d-%s.png", s.n, file))
		if err := os.WriteFile(p, png, 0o644); err != nil {
			s.t.Fatal(err)
		}
	}
	s.t.Logf("screenshot %s (%d KiB) in %s", name, len(png)>>10, strings.Join(s.dirs, " and "))
}

// do runs browser actions, failing the test on error with what.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// stepTimeout bounds one step: a query for an element that never comes
// waits for it until then.
const stepTimeout = 20 * time.Second

// get runs a browser action that returns a value.
func get[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// text is the text of the first element that css selects.
func text(t *testing.T, ctx context.Context, css string) string {
	t.Helper()
	return get(t, ctx, "text of "+css, chromedp.Text(chromedp.CSS(css)))
}

// attr is an attribute of the first element that css selects; "" when
// it has none.
func attr(t *testing.T, ctx context.Context, css, name string) string {
	t.Helper()
	return get(t, ctx, name+" of "+css, chromedp.AttributeValue(chromedp.CSS(css), name)).Value
}

// js evaluates a JavaScript expression in the page: for what may not be
// there yet, which a query would wait for.
func js[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	return get(t, ctx, "evaluate "+expr, chromedp.Evaluate[T](expr))
}

// eventually reloads url until check holds, for up to 20 s. check may
// only look at the page (it runs once the page is loaded).
func eventually(t *testing.T, ctx context.Context, url, what string, check func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		do(t, ctx, "load "+url, chromedp.Navigate(url), chromedp.WaitReady(chromedp.CSS("main")))
		if check() {
			return
		}
		if time.Now().After(deadline) {
			body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
			t.Fatalf("%s: not after 20 s; the page shows:\n%s", what, body)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
