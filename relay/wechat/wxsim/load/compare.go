package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat"
)

// BareHandler is the baseline a relay is compared with: it reads the body
// and answers "success", doing none of the relay's work.
func BareHandler(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	io.WriteString(w, wechat.Success)
}

// NewBareHTTPServer returns the server of [BareHandler], with errLog for
// its errors: the baseline's settings, wherever it runs (StartBare in this
// process, "wxsim bare" in one of its own).
func NewBareHTTPServer(errLog *log.Logger) *http.Server {
	return &http.Server{
		Handler:           http.HandlerFunc(BareHandler),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          errLog,
	}
}

// BareServer serves [BareHandler] on loopback.
type BareServer struct {
	// URL is a push URL on the server, http://127.0.0.1:port/wx/bare.
	URL  string
	srv  *http.Server
	done chan error
}

// StartBare starts a BareServer on a free loopback port.
func StartBare() (*BareServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("load: start bare server: %w", err)
	}
	b := &BareServer{
		URL:  "http://" + ln.Addr().String() + "/wx/bare",
		srv:  NewBareHTTPServer(log.New(io.Discard, "", 0)),
		done: make(chan error, 1),
	}
	go func() { b.done <- b.srv.Serve(ln) }()
	return b, nil
}

// Close stops the server at once.
func (b *BareServer) Close() error {
	err := b.srv.Close()
	if serveErr := <-b.done; !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return err
}

// Comparison is the result of [Compare].
type Comparison struct {
	Rounds []Round `json:"rounds"`
	Relay  *Result `json:"relay"` // all relay rounds merged
	Bare   *Result `json:"bare"`  // all bare rounds merged
	Ratio  float64 `json:"ratio"` // Relay.Rate / Bare.Rate
}

// Round holds the rates of one round of a [Compare].
type Round struct {
	RelayRate float64 `json:"relay_rate"`
	BareRate  float64 `json:"bare_rate"`
}

// Compare runs rounds of o against relay and bare in turn, alternating
// which goes first (relay, bare; bare, relay; …) so neither always gets
// the warmer machine, and merges each target's rounds. In a closed loop
// Ratio is the relay's throughput as a fraction of the bare handler's. An
// ended ctx stops it after the current run, with the rounds so far.
func Compare(ctx context.Context, relay, bare Target, o Options, rounds int) (*Comparison, error) {
	if rounds < 1 {
		return nil, fmt.Errorf("load: %d rounds: need at least one", rounds)
	}
	var relays, bares []*Result
	cmp := &Comparison{}
	for k := 0; k < rounds && ctx.Err() == nil; k++ {
		order := []Target{relay, bare}
		if k%2 == 1 {
			order = []Target{bare, relay}
		}
		var round [2]*Result
		for i, t := range order {
			res, err := Run(ctx, t, o)
			if err != nil {
				return nil, err
			}
			round[i] = res
		}
		if k%2 == 1 {
			round[0], round[1] = round[1], round[0]
		}
		relays, bares = append(relays, round[0]), append(bares, round[1])
		cmp.Rounds = append(cmp.Rounds, Round{RelayRate: round[0].Rate, BareRate: round[1].Rate})
	}
	cmp.Relay, cmp.Bare = Merge(relays...), Merge(bares...)
	if cmp.Bare.Rate > 0 {
		cmp.Ratio = cmp.Relay.Rate / cmp.Bare.Rate
	}
	return cmp, nil
}
