package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// walkthroughPorts are the fixed ports the README's walk-through uses.
var walkthroughPorts = []string{"8080", "9090", "9464", "9998", "9999"}

// TestREADMEWalkthrough runs the README's "Try it locally with wxsim".
func TestREADMEWalkthrough(t *testing.T) {
	runWalkthrough(t, "## Try it locally with wxsim", 5, []string{
		`"push_url"`,                  // the tenant was created
		"HTTP/1.1 200 OK\nsuccess",    // wxsim push: the status line, then the body
		"signature: ok",               // the receiver verified the delivery
		"message.text",                // and printed the event
		"{}",                          // the send API's answer
		`{"errcode":0,"errmsg":"ok"}`, // the compatible API's
		"REASONS",                     // wxrelay tenants list's header
	})
}

// TestREADMEComponentWalkthrough runs "Try a third-party platform
// locally" the same way: a component registered, its ticket, a tenant by
// authorization through the consent page, a push through the message URL,
// a send with the authorizer token, and the release check passed.
func TestREADMEComponentWalkthrough(t *testing.T) {
	runWalkthrough(t, "### Try a third-party platform locally", 7, []string{
		`"auth_event_url"`, // the component was registered
		`{"ticket":"ticket@@@`,
		"The mini program wxba5fad812f8e6fb9 has authorized Example agency",
		"authorization.authorized", // the lifecycle event, delivered
		"signature: ok",
		`"status":200`,          // the message URL's answer to the user's push
		"message.text",          // delivered
		"{}",                    // the send
		`"passed":true`,         // the release check
		"authorization.revoked", // the revocation, delivered
		`"code":9`,              // and the send after it refused (FAILED_PRECONDITION)
	})
}

// runWalkthrough runs the sh blocks of the README section under heading
// (at least minBlocks) as a newcomer pasting them into a script would:
// in order, under sh -e (dash on Debian, as portable as a script gets),
// from the repository's root. It checks that the output holds each of
// wants, what the text says the steps print, and that the last step stops
// everything, leaving no process on the ports (a script has no job table:
// the PIDs are kept in variables).
func runWalkthrough(t *testing.T, heading string, minBlocks int, wants []string) {
	if testing.Short() {
		t.Skip("builds both binaries and runs the walk-through; not in -short")
	}
	for _, tool := range []string{"sh", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the walk-through needs %s", tool)
		}
	}
	for _, port := range walkthroughPorts {
		// Dialled, not listened on: a server on :PORT (every address)
		// does not stop a listener on 127.0.0.1:PORT, but would take the
		// walk-through's requests.
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second); err == nil {
			c.Close()
			t.Skipf("port %s is taken; the walk-through needs it free", port)
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	section := sectionOf(t, string(readme), heading)
	blocks := regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(section, -1)
	if len(blocks) < minBlocks {
		t.Fatalf("the walk-through has %d sh blocks; the test expects the whole story", len(blocks))
	}
	var script strings.Builder
	script.WriteString("set -e\n")
	for _, b := range blocks {
		script.WriteString(b[1])
	}
	// Leave the repository's checkout as it was: bin/ is the walk-through's.
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	_, hadBin := os.Stat(filepath.Join(root, "bin"))
	if hadBin != nil {
		t.Cleanup(func() { os.RemoveAll(filepath.Join(root, "bin")) })
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", script.String())
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
	// The script and what it starts are a process group of their own: a
	// walk-through whose last step fails to stop its servers leaves them
	// holding the output pipe, and the test ends them all itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	// The servers were sent SIGTERM by the last step: they drain and exit.
	leftover := true
	for deadline := time.Now().Add(10 * time.Second); leftover && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		leftover = syscall.Kill(-cmd.Process.Pid, 0) == nil // anyone left in the group?
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if leftover {
		t.Errorf("processes the walk-through started were still running after its last step")
	}
	if err != nil {
		t.Fatalf("the walk-through failed: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range wants {
		if !strings.Contains(text, want) {
			t.Errorf("the walk-through's output lacks %q:\n%s", want, text)
		}
	}
	// kill $WEBHOOK_PID $WXRELAY_PID $WXSIM_PID: all gone, ports free.
	for _, port := range walkthroughPorts {
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
			if err != nil {
				break
			}
			c.Close()
			if time.Now().After(deadline) {
				t.Errorf("after the walk-through's last step something still listens on %s", port)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// sectionOf is the text of the README section under heading, up to the
// next heading of its level.
func sectionOf(t *testing.T, doc, heading string) string {
	t.Helper()
	i := strings.Index(doc, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("README.md has no %q section", heading)
	}
	rest := doc[i+len(heading)+2:]
	if j := strings.Index(rest, "\n## "); j >= 0 {
		rest = rest[:j]
	}
	return rest
}
