package load

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults for the zero fields of [Options].
const (
	DefaultConcurrency = 64
	// DefaultTimeout is how long WeChat waits for an answer before it
	// gives up on a push and retries.
	DefaultTimeout = 5 * time.Second
)

// Target is where a run sends its pushes.
type Target struct {
	URL    string // the push URL, such as http://127.0.0.1:8080/wx/{tenant}
	Source Source
}

// Options shape a run. Duration, Count or both must be set; the run stops
// at whichever comes first.
type Options struct {
	// Concurrency is the number of workers: pushes in flight in a closed
	// loop, the cap on pushes in flight in an open loop. Zero means
	// DefaultConcurrency.
	Concurrency int
	// Rate, if positive, runs an open loop at this many pushes per second;
	// zero runs a closed loop.
	Rate float64
	// Duration stops the run (closed loop) or the schedule (open loop)
	// after this long.
	Duration time.Duration
	// Count stops the run after this many pushes.
	Count int
	// Client sends the pushes. Nil means NewClient(Concurrency,
	// DefaultTimeout).
	Client *http.Client
	// Drain is how long past the end of an open loop's schedule pushes
	// that are still waiting for a free worker get sent; later ones are
	// counted as NotSent. Zero means DefaultTimeout.
	Drain time.Duration
}

func (o Options) withDefaults() (Options, error) {
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Drain == 0 {
		o.Drain = DefaultTimeout
	}
	switch {
	case o.Concurrency < 0:
		return o, fmt.Errorf("load: negative concurrency %d", o.Concurrency)
	case o.Rate < 0:
		return o, fmt.Errorf("load: negative rate %g", o.Rate)
	case o.Duration < 0, o.Count < 0:
		return o, errors.New("load: negative duration or count")
	case o.Duration == 0 && o.Count == 0:
		return o, errors.New("load: set a duration or a count")
	}
	if o.Client == nil {
		o.Client = NewClient(o.Concurrency, DefaultTimeout)
	}
	return o, nil
}

// NewClient returns an HTTP/1.1 client tuned for load: it keeps a
// keep-alive connection per worker, uses no proxy, follows no redirects
// and gives up on a push after timeout.
func NewClient(concurrency int, timeout time.Duration) *http.Client {
	idle := max(concurrency, DefaultConcurrency) + 16
	return &http.Client{
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        idle,
			MaxIdleConnsPerHost: idle,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       timeout,
	}
}

// Result is what one run measured.
type Result struct {
	Target      string  `json:"target"`
	Loop        string  `json:"loop"` // "closed" or "open"
	Concurrency int     `json:"concurrency"`
	TargetRate  float64 `json:"target_rate,omitempty"` // open loop: the scheduled pushes/s

	Sent    int `json:"sent"`     // pushes sent
	OK      int `json:"ok"`       // answered 2xx
	Failed  int `json:"failed"`   // sent, but not answered 2xx
	NotSent int `json:"not_sent"` // open loop: still unsent when the drain time ran out
	// Errors counts the failures by kind: "http_<status>", "timeout",
	// "refused", "reset", "eof", "no_local_port", "too_many_files",
	// "other".
	Errors map[string]int `json:"errors"`
	// ErrorSamples holds the first error message of each kind.
	ErrorSamples map[string]string `json:"error_samples,omitempty"`
	// Unprepared counts pushes built during the run because the Source
	// ran out of prepared ones.
	Unprepared int64 `json:"unprepared"`

	Elapsed time.Duration `json:"-"`
	// Rate is OK answers per second of Elapsed.
	Rate float64 `json:"rate"`
	// Latency covers every push sent, failures included: from sending in a
	// closed loop, from the scheduled time in an open loop.
	Latency Latency `json:"latency"`

	samples []time.Duration // sorted
}

// Latency summarises a latency distribution.
type Latency struct {
	Min, Mean, P50, P90, P99, Max time.Duration
}

// MarshalJSON writes milliseconds: {"min_ms":…,"mean_ms":…,"p50_ms":…,…}.
func (l Latency) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range []struct {
		name string
		d    time.Duration
	}{{"min", l.Min}, {"mean", l.Mean}, {"p50", l.P50}, {"p90", l.P90}, {"p99", l.P99}, {"max", l.Max}} {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"%s_ms":%s`, f.name, strconv.FormatFloat(ms(f.d), 'f', 3, 64))
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// MarshalJSON adds elapsed_s to the exported fields.
func (r *Result) MarshalJSON() ([]byte, error) {
	type plain Result
	return json.Marshal(struct {
		*plain
		ElapsedS float64 `json:"elapsed_s"`
	}{(*plain)(r), r.Elapsed.Seconds()})
}

// Run sends pushes from t.Source to t.URL as o says and measures the
// answers. It returns an error only for unusable options or when the
// Source fails; failed pushes are counted in the Result. When ctx ends it
// stops sending, lets the pushes in flight finish and reports what it has.
func Run(ctx context.Context, t Target, o Options) (*Result, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	if t.URL == "" || t.Source == nil {
		return nil, errors.New("load: target needs a URL and a Source")
	}
	prefix := t.URL + "?"
	if strings.Contains(t.URL, "?") {
		prefix = t.URL + "&"
	}
	var before int64
	counter, counts := t.Source.(interface{ Unprepared() int64 })
	if counts {
		before = counter.Unprepared()
	}

	r := &run{opts: o, url: t.URL, prefix: prefix, src: t.Source, reqCtx: context.WithoutCancel(ctx)}
	r.start = time.Now()
	r.end = r.start.Add(o.Duration)
	if o.Rate > 0 {
		r.interval = float64(time.Second) / o.Rate
		scheduleEnd := r.end
		if o.Count > 0 {
			if e := r.scheduled(int64(o.Count)); o.Duration == 0 || e.Before(scheduleEnd) {
				scheduleEnd = e
			}
		}
		r.drainDeadline = scheduleEnd.Add(o.Drain)
	}
	workers := make([]*tally, o.Concurrency)
	var wg sync.WaitGroup
	for i := range workers {
		workers[i] = newTally()
		wg.Go(func() {
			if o.Rate > 0 {
				r.openLoop(ctx, workers[i])
			} else {
				r.closedLoop(ctx, workers[i])
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(r.start)
	if err := r.srcErr.Load(); err != nil {
		return nil, *err
	}

	res := &Result{Target: t.URL, Loop: "closed", Concurrency: o.Concurrency, Elapsed: elapsed}
	if o.Rate > 0 {
		res.Loop, res.TargetRate = "open", o.Rate
	}
	all := newTally()
	for _, w := range workers {
		all.add(w)
	}
	all.fill(res)
	if counts {
		res.Unprepared = counter.Unprepared() - before
	}
	return res, nil
}

// run is the shared state of one Run's workers.
type run struct {
	opts          Options
	url, prefix   string
	src           Source
	reqCtx        context.Context // not cancelled with the run: pushes in flight finish
	start, end    time.Time
	interval      float64 // open loop: nanoseconds between scheduled pushes
	drainDeadline time.Time
	taken         atomic.Int64
	srcErr        atomic.Pointer[error]
}

func (r *run) scheduled(i int64) time.Time {
	return r.start.Add(time.Duration(float64(i) * r.interval))
}

func (r *run) closedLoop(ctx context.Context, t *tally) {
	for ctx.Err() == nil && r.srcErr.Load() == nil {
		if r.opts.Count > 0 && r.taken.Add(1) > int64(r.opts.Count) {
			return
		}
		if r.opts.Duration > 0 && !time.Now().Before(r.end) {
			return
		}
		p, err := r.src.Next()
		if err != nil {
			r.srcErr.CompareAndSwap(nil, &err)
			return
		}
		sent := time.Now()
		err = r.send(p)
		t.record(time.Since(sent), err)
	}
}

func (r *run) openLoop(ctx context.Context, t *tally) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for ctx.Err() == nil && r.srcErr.Load() == nil {
		i := r.taken.Add(1) - 1
		if r.opts.Count > 0 && i >= int64(r.opts.Count) {
			return
		}
		at := r.scheduled(i)
		if r.opts.Duration > 0 && !at.Before(r.end) {
			return
		}
		if wait := time.Until(at); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		} else if time.Now().After(r.drainDeadline) {
			t.notSent++
			continue
		}
		p, err := r.src.Next()
		if err != nil {
			r.srcErr.CompareAndSwap(nil, &err)
			return
		}
		err = r.send(p)
		t.record(time.Since(at), err)
	}
}

// send POSTs p and reads the whole answer, so the connection is reused.
// Any answer but 2xx is an error.
func (r *run) send(p Push) error {
	u := r.prefix + p.RawQuery
	if p.Path != "" {
		u = r.url + p.Path + "?" + p.RawQuery
	}
	req, err := http.NewRequestWithContext(r.reqCtx, http.MethodPost, u, bytes.NewReader(p.Body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", cmp.Or(p.ContentType, ContentType))
	resp, err := r.opts.Client.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return statusError(resp.StatusCode)
	}
	return err
}

type statusError int

func (e statusError) Error() string {
	return "answered " + strconv.Itoa(int(e)) + " " + http.StatusText(int(e))
}

// errorKind names the kind of a failed push for Result.Errors.
func errorKind(err error) string {
	var status statusError
	var ne net.Error
	switch {
	case errors.As(err, &status):
		return "http_" + strconv.Itoa(int(status))
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no_local_port"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too_many_files"
	}
	return "other"
}

// tally is one worker's counts; they are summed after the run, so workers
// share nothing while it lasts.
type tally struct {
	samples      []time.Duration
	ok, failed   int
	notSent      int
	errors       map[string]int
	errorSamples map[string]string
}

func newTally() *tally {
	return &tally{errors: map[string]int{}, errorSamples: map[string]string{}}
}

func (t *tally) record(latency time.Duration, err error) {
	t.samples = append(t.samples, latency)
	if err == nil {
		t.ok++
		return
	}
	t.failed++
	kind := errorKind(err)
	t.errors[kind]++
	if _, ok := t.errorSamples[kind]; !ok {
		t.errorSamples[kind] = err.Error()
	}
}

func (t *tally) add(o *tally) {
	t.samples = append(t.samples, o.samples...)
	t.ok += o.ok
	t.failed += o.failed
	t.notSent += o.notSent
	for k, n := range o.errors {
		t.errors[k] += n
	}
	for k, s := range o.errorSamples {
		if _, ok := t.errorSamples[k]; !ok {
			t.errorSamples[k] = s
		}
	}
}

// fill sets res's counts, rate and latency from t, given res.Elapsed.
func (t *tally) fill(res *Result) {
	res.samples = t.samples
	slices.Sort(res.samples)
	res.Sent, res.OK, res.Failed, res.NotSent = len(t.samples), t.ok, t.failed, t.notSent
	res.Errors, res.ErrorSamples = t.errors, t.errorSamples
	if res.Elapsed > 0 {
		res.Rate = float64(res.OK) / res.Elapsed.Seconds()
	}
	res.Latency = summarise(res.samples)
}

// summarise returns the distribution of sorted, by nearest rank.
func summarise(sorted []time.Duration) Latency {
	n := len(sorted)
	if n == 0 {
		return Latency{}
	}
	rank := func(p float64) time.Duration {
		i := int(p*float64(n)+0.999999999) - 1 // ceil(p·n) - 1
		return sorted[min(max(i, 0), n-1)]
	}
	var sum time.Duration
	for _, d := range sorted {
		sum += d
	}
	return Latency{
		Min: sorted[0], Mean: sum / time.Duration(n),
		P50: rank(0.50), P90: rank(0.90), P99: rank(0.99),
		Max: sorted[n-1],
	}
}

// Merge sums results of the same target (the rounds of a [Compare]) into
// one: counts and elapsed times add up, latencies pool.
func Merge(results ...*Result) *Result {
	if len(results) == 0 {
		return &Result{Errors: map[string]int{}}
	}
	first := results[0]
	out := &Result{Target: first.Target, Loop: first.Loop, Concurrency: first.Concurrency, TargetRate: first.TargetRate}
	all := newTally()
	for _, r := range results {
		all.add(&tally{
			samples: r.samples, ok: r.OK, failed: r.Failed, notSent: r.NotSent,
			errors: r.Errors, errorSamples: r.ErrorSamples,
		})
		out.Elapsed += r.Elapsed
		out.Unprepared += r.Unprepared
	}
	all.fill(out) // all.samples is a fresh slice: sorting it leaves the rounds' alone
	return out
}
