// Command testsummary reads `go test -json` events on standard input and
// prints what a person wants from a CI run: each package's result, the
// output of every failed test, and every skipped test with the reason it
// gave (a test that needs something absent, PostgreSQL, Chromium,
// promtool, a proxy, skips rather than fails, and says how to enable
// it). It exits 1 if any test or package failed.
//
//	GOFLAGS=-json go test -race ./... | go run .ci/testsummary.go
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

// logLine is a t.Log or t.Skip line: "    file_test.go:12: message".
var logLine = regexp.MustCompile(`^\s+\S+\.go:\d+: `)

func main() {
	outputs := map[string][]string{} // package + test → its output lines
	var failedTests, packages []string
	skipped := map[string][]string{} // reason → tests
	failed := false
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			fmt.Println(sc.Text()) // not an event: the build's own output
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "output":
			outputs[key] = append(outputs[key], e.Output)
		case "skip":
			if e.Test == "" {
				continue // a package without tests
			}
			reason := "(no reason given)"
			for _, l := range outputs[key] {
				if logLine.MatchString(l) {
					reason = strings.TrimSpace(logLine.ReplaceAllString(l, ""))
				}
			}
			skipped[reason] = append(skipped[reason], e.Package+" "+e.Test)
		case "fail":
			failed = true
			if e.Test != "" {
				failedTests = append(failedTests, key)
			} else {
				packages = append(packages, fmt.Sprintf("FAIL\t%s\t%.1fs", e.Package, e.Elapsed))
			}
		case "pass":
			if e.Test == "" {
				packages = append(packages, fmt.Sprintf("ok  \t%s\t%.1fs", e.Package, e.Elapsed))
			}
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(1)
	}
	for _, p := range packages {
		fmt.Println(p)
	}
	for _, k := range failedTests {
		fmt.Printf("\n--- FAIL: %s\n%s", k, strings.Join(outputs[k], ""))
	}
	reasons := make([]string, 0, len(skipped))
	for r := range skipped {
		reasons = append(reasons, r)
	}
	sort.Slice(reasons, func(i, j int) bool { return len(skipped[reasons[i]]) > len(skipped[reasons[j]]) })
	if len(reasons) == 0 {
		fmt.Println("\nNothing skipped.")
	} else {
		fmt.Println("\nSkipped (tests, why):")
		for _, r := range reasons {
			fmt.Printf("%5d  %s\n       e.g. %s\n", len(skipped[r]), r, skipped[r][0])
		}
	}
	if failed {
		os.Exit(1)
	}
}
