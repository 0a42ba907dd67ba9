package delivery_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The benchmarks' webhook receiver is a process of its own, as a tenant's
// webhook is another host: with the receiver inside the benchmark's
// process, a request went from the delivering goroutine to the receiving
// one within one Go runtime, without waking another process, and both
// the relay and the bare client it is compared with were measured on that
// shortcut, which no real delivery takes.
//
// It is this test binary again, run with receiverEnv set: it answers every
// POST 204 at once, and GET /stats with how many it received, the CPU time
// it has used and, when asked, when the first delivery naming each openid
// arrived.
const receiverEnv = "WXRELAY_BENCH_RECEIVER"

// receiverStats is the answer to GET /stats.
type receiverStats struct {
	Received int64 `json:"received"`
	CPUNanos int64 `json:"cpu_ns"`
	// Arrivals maps openid → arrival (Unix nanoseconds); only with
	// ?arrivals=1.
	Arrivals map[string]int64 `json:"arrivals,omitempty"`
}

// TestBenchReceiver is not a test: it is the receiver process that
// startReceiver runs, and skips unless started so.
func TestBenchReceiver(t *testing.T) {
	if os.Getenv(receiverEnv) == "" {
		t.Skip("the delivery benchmarks' webhook receiver: runs only when they start it")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var received atomic.Int64
	var arrivals sync.Map // openid → time.Time
	openid := []byte(`"openid":"`)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		st := receiverStats{Received: received.Load(), CPUNanos: int64(processCPU())}
		if r.URL.Query().Get("arrivals") == "1" {
			st.Arrivals = map[string]int64{}
			arrivals.Range(func(k, v any) bool {
				st.Arrivals[k.(string)] = v.(time.Time).UnixNano()
				return true
			})
		}
		json.NewEncoder(w).Encode(st)
	})
	mux.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if i := bytes.Index(body, openid); i >= 0 {
			rest := body[i+len(openid):]
			if j := bytes.IndexByte(rest, '"'); j >= 0 {
				arrivals.LoadOrStore(string(rest[:j]), time.Now())
			}
		}
		received.Add(1)
		w.WriteHeader(http.StatusNoContent)
	})
	// The benchmark holds the other end of stdin: when it ends, even
	// killed, the pipe closes and so does this process.
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	fmt.Printf("receiver listening on %s\n", ln.Addr())
	t.Fatal(http.Serve(ln, mux))
}

// receiverProcess is a running receiver process.
type receiverProcess struct {
	URL    string // where to deliver: base + "/events"
	base   string // http://host:port
	client *http.Client
}

// startReceiver starts the receiver process; it is killed when b ends.
func startReceiver(b *testing.B) *receiverProcess {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBenchReceiver$", "-test.timeout=0")
	cmd.Env = append(os.Environ(), receiverEnv+"=1")
	cmd.Stderr = os.Stderr
	if _, err := cmd.StdinPipe(); err != nil { // closed when this process ends
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		if addr, ok := strings.CutPrefix(lines.Text(), "receiver listening on "); ok {
			go io.Copy(io.Discard, out)
			base := "http://" + addr
			return &receiverProcess{URL: base + "/events", base: base, client: &http.Client{Timeout: 10 * time.Second}}
		}
	}
	b.Fatalf("the receiver process did not start: %v", lines.Err())
	return nil
}

// stats asks the receiver for its counts.
func (r *receiverProcess) stats(b *testing.B, withArrivals bool) receiverStats {
	b.Helper()
	u := r.base + "/stats"
	if withArrivals {
		u += "?arrivals=1"
	}
	resp, err := r.client.Get(u)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var st receiverStats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		b.Fatal(err)
	}
	return st
}

// waitReceived polls the receiver until it has n deliveries or the
// deadline passes, and returns its stats then.
func (r *receiverProcess) waitReceived(b *testing.B, n int64, deadline time.Time) receiverStats {
	b.Helper()
	for {
		st := r.stats(b, false)
		if st.Received >= n || time.Now().After(deadline) {
			return st
		}
		time.Sleep(5 * time.Millisecond)
	}
}
