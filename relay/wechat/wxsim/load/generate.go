package load

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat"
)

// ContentType is the label of every push this package sends: they are all
// JSON.
const ContentType = "application/json"

// Tenant is the mini program the pushes are for, configured as in the
// relay. Every field is required.
type Tenant struct {
	Token          string
	AppID          string // wx…, sealed into every ciphertext
	EncodingAESKey string // the 43-character key from the console
	ToUserName     string // the mini program's original ID, gh_…
	FromUserName   string // the sending user's openid
}

// Push is one push ready to send: POST Body, labelled [ContentType], to the
// push URL with RawQuery appended.
type Push struct {
	MsgID    int64
	RawQuery string
	Body     []byte
	// Path, if set, is appended to the target's URL (which must have no
	// query then): a component's message URL names the authorizer,
	// /wxc/{id}/{appid}, so one run can push for many.
	Path        string
	ContentType string // "" means ContentType
}

// A Source hands out the pushes of a run. Next is called from many
// goroutines at once.
type Source interface {
	Next() (Push, error)
}

// Generator builds distinct safe-mode JSON text pushes for one tenant, as
// WeChat sends them: push i carries MsgId Base()+i, so no two pushes of a
// Generator collide in the relay's de-duplication. It is safe for
// concurrent use.
type Generator struct {
	tenant Tenant
	pusher wechat.Pusher
	base   int64
	next   atomic.Int64 // the next unused index
}

// msgIDFloor keeps MsgIds in the range WeChat uses (about 2^62, well above
// 2^53, so they break float64 parsers as real ones do), and msgIDRoom
// leaves every base 2^40 ids of headroom below 2^63.
const (
	msgIDFloor = 1 << 62
	msgIDRoom  = 1<<62 - 1<<40
)

// NewGenerator returns a Generator for t whose MsgIds start at a random
// base, so separate runs do not collide either. It returns an error naming
// the first missing field, or wrapping wechat.ErrInvalidConfig for an
// unusable key.
func NewGenerator(t Tenant) (*Generator, error) {
	for _, f := range []struct{ name, v string }{
		{"Token", t.Token}, {"AppID", t.AppID}, {"EncodingAESKey", t.EncodingAESKey},
		{"ToUserName", t.ToUserName}, {"FromUserName", t.FromUserName},
	} {
		if f.v == "" {
			return nil, fmt.Errorf("load: Tenant.%s is empty", f.name)
		}
	}
	c, err := wechat.NewCipher(t.EncodingAESKey, t.AppID)
	if err != nil {
		return nil, err
	}
	return &Generator{
		tenant: t,
		pusher: wechat.Pusher{Token: t.Token, Mode: wechat.ModeSafe, Cipher: c},
		base:   msgIDFloor + rand.Int64N(msgIDRoom),
	}, nil
}

// Base returns the MsgId of the Generator's first push.
func (g *Generator) Base() int64 { return g.base }

// Next builds the next push: a new MsgId, a fresh nonce and the current
// time.
func (g *Generator) Next() (Push, error) {
	return g.push(g.next.Add(1) - 1)
}

// reserve claims n consecutive indices and returns the first.
func (g *Generator) reserve(n int) int64 { return g.next.Add(int64(n)) - int64(n) }

func (g *Generator) push(i int64) (Push, error) {
	ts := time.Now().Unix()
	id := g.base + i
	msg := wechat.TextMessage(wechat.FormatJSON, wechat.Header{
		ToUserName:   g.tenant.ToUserName,
		FromUserName: g.tenant.FromUserName,
		CreateTime:   ts,
	}, "wxsim load "+strconv.FormatInt(i, 10), id)
	// WeChat's nonces are decimal numbers of up to ten digits.
	nonce := strconv.FormatUint(uint64(rand.Uint32()), 10)
	req, err := g.pusher.Push(msg, ts, nonce)
	if err != nil {
		return Push{}, fmt.Errorf("load: build push %d: %w", id, err)
	}
	return Push{MsgID: id, RawQuery: req.RawQuery(), Body: req.Body}, nil
}

// Pool is a Source of pushes encrypted in advance by [Prepare]. Each push
// is handed out once; when the prepared ones run out, Next builds more on
// the spot and counts them in Unprepared, since the crypto then competes
// with the run it measures.
type Pool struct {
	gen        *Generator
	pushes     []Push
	next       atomic.Int64
	unprepared atomic.Int64
}

// Prepare builds n distinct pushes from g in parallel on every CPU, before
// a run starts. It stops early with ctx's error.
func Prepare(ctx context.Context, g *Generator, n int) (*Pool, error) {
	if n < 0 {
		return nil, errors.New("load: Prepare: negative count")
	}
	p := &Pool{gen: g, pushes: make([]Push, n)}
	first := g.reserve(n)
	workers := min(runtime.GOMAXPROCS(0), max(n, 1))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for k, j := 0, w; j < n; k, j = k+1, j+workers {
				if k%1024 == 0 && ctx.Err() != nil {
					errs[w] = ctx.Err()
					return
				}
				push, err := g.push(first + int64(j))
				if err != nil {
					errs[w] = err
					return
				}
				p.pushes[j] = push
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

// Next returns the next prepared push, or a freshly built one once they
// have all been handed out.
func (p *Pool) Next() (Push, error) {
	if i := p.next.Add(1) - 1; i < int64(len(p.pushes)) {
		return p.pushes[i], nil
	}
	p.unprepared.Add(1)
	return p.gen.Next()
}

// Len returns how many pushes were prepared.
func (p *Pool) Len() int { return len(p.pushes) }

// Unprepared returns how many pushes Next had to build on the spot.
func (p *Pool) Unprepared() int64 { return p.unprepared.Load() }

// Repeat returns a Source that cycles through the prepared pushes without
// using them up: for a target that does not de-duplicate, such as a
// [BareServer], where distinct pushes buy nothing. The Pool must hold at
// least one push.
func (p *Pool) Repeat() Source {
	return &repeat{pushes: p.pushes}
}

type repeat struct {
	pushes []Push
	next   atomic.Uint64
}

func (r *repeat) Next() (Push, error) {
	if len(r.pushes) == 0 {
		return Push{}, errors.New("load: repeating an empty pool")
	}
	return r.pushes[(r.next.Add(1)-1)%uint64(len(r.pushes))], nil
}
