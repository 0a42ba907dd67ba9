package deploy_test

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/wxrelay/wxrelay/relay/health"
)

// TestAlertRules checks deploy/prometheus/alerts.yml with Prometheus's own
// promtool, and runs its unit tests. .ci/run installs promtool (Debian's
// prometheus package); without it the test skips.
func TestAlertRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed: apt-get install prometheus (or put promtool on PATH) to check the alert rules")
	}
	for _, args := range [][]string{
		{"check", "rules", "prometheus/alerts.yml"},
		{"test", "rules", "prometheus/alerts_test.yml"},
	} {
		if out, err := exec.Command(promtool, args...).CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}

// TestEveryReasonHasARule: a health reason added to relay/health without
// an alert rule would never page anyone who relies on Prometheus.
func TestEveryReasonHasARule(t *testing.T) {
	rules, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range append(slices.Clone(health.Kinds), health.ComponentKinds...) {
		if !strings.Contains(string(rules), `reason="`+string(k)+`"`) {
			t.Errorf("no alert rule in deploy/prometheus/alerts.yml matches the reason %s", k)
		}
	}
}
