package token

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/tenant"
)

// Options configure a Keeper. The zero value is usable.
type Options struct {
	// Owner names this process in refresh leases; it must differ between
	// processes sharing a database. "" means a random id.
	Owner string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Log receives refresh failures and forced refreshes; nil discards.
	Log *slog.Logger
	// Authorizers hands out components' tenants' tokens (NewKeeper);
	// nil: such a tenant gets none (tenant.ErrNotAuthorized).
	Authorizers Authorizers

	// Margin is how long before expiry a classic token is refreshed, plus
	// up to Spread at random, so that tenants fetched together spread out
	// (defaults 10 and 5 minutes). Stable tokens are refreshed in their
	// last five minutes, the only time a new one is to be had.
	Margin, Spread time.Duration
	// Concurrency bounds RefreshDue's simultaneous fetches (default 8);
	// Batch is how many due tenants it lists at a time (default 500).
	Concurrency, Batch int
	// Rate bounds how many refreshes RefreshDue starts per second
	// (default 20), so that tenants due together, such as thousands
	// onboarded at once, are fetched over seconds rather than in one
	// burst: a batch of 500 takes 25 s. WeChat allows 10,000 stable_token
	// calls a minute (protocol §6); 10,000 tenants need about 1.4 a
	// second once their refreshes have spread out (docs/benchmarks.md).
	// It bounds how many tenants one relay keeps: about Rate × 7,000.
	Rate float64
	// Sleep waits d or until ctx ends, returning ctx's error then; nil
	// means a timer. Tests on a fake clock advance it here.
	Sleep func(ctx context.Context, d time.Duration) error
	// LeaseTTL is how long a refresh lease lasts, and bounds a fetch
	// (default 1 minute). Poll is how often a caller waiting for another
	// process's fetch looks again (default 100 ms).
	LeaseTTL, Poll time.Duration
}

// KeeperOf keeps the access tokens of owners of one kind, named by ID:
// tenants (Keeper), and with issue 24 components and their authorizers.
// It is the mechanism (memory, shared flights, leases, the Store), the
// same for every kind; what a token is for and how it is fetched is the
// Source's, and when a token is good enough and when the next is due is
// the policy's (policy.go). It is safe for concurrent use.
type KeeperOf[ID ~string] struct {
	store  StoreOf[ID]
	source Source[ID]
	opts   Options
	log    *slog.Logger

	mu      sync.Mutex
	mem     map[ID]entry
	flights map[ID]*flight
}

// Keeper keeps tenants' access tokens, fetched with their AppSecrets.
type Keeper = KeeperOf[tenant.ID]

// entry is a token in memory, served until recheckAt or near expiresAt,
// and only to a tenant whose appid and endpoint are still those it was
// fetched for: after a PATCH of the appid, a token of the previous app
// (which may now be another tenant's) must never be served.
type entry struct {
	token     string
	appID     string
	endpoint  tenant.TokenEndpoint
	expiresAt time.Time
	recheckAt time.Time
}

// flight is one fetch (or store read) of a tenant's token that concurrent
// callers share.
type flight struct {
	done  chan struct{}
	token string
	err   error
}

// request says what a flight must produce.
type request struct {
	failed string // a token a call refused: produce another
	due    bool   // scheduled: refresh if due, skip if another process is at it
}

// errSkipped: RefreshDue left a tenant to a fetch already under way.
var errSkipped = errors.New("token: refresh already under way")

// NewKeeper returns a Keeper fetching from wx, reading tenants (their appid,
// secret, endpoint and version) through tenants, ideally a *tenant.Cache.
func NewKeeper(s Store, wx WeChat, tenants tenant.Getter, opts Options) *Keeper {
	opts = opts.withDefaults()
	return NewKeeperOf(s, Source[tenant.ID](&tenantSource{wx: wx, tenants: tenants, authorizers: opts.Authorizers, log: opts.log()}), opts)
}

// NewKeeperOf returns a KeeperOf keeping the tokens src fetches in s.
func NewKeeperOf[ID ~string](s StoreOf[ID], src Source[ID], opts Options) *KeeperOf[ID] {
	opts = opts.withDefaults()
	return &KeeperOf[ID]{
		store: s, source: src, opts: opts, log: opts.log(),
		mem:     map[ID]entry{},
		flights: map[ID]*flight{},
	}
}

func (o Options) log() *slog.Logger {
	if o.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Log
}

// withDefaults fills in the zero fields of o.
func (opts Options) withDefaults() Options {
	if opts.Owner == "" {
		b := make([]byte, 8)
		rand.Read(b)
		opts.Owner = "keeper-" + hex.EncodeToString(b)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Margin <= 0 {
		opts.Margin = 10 * time.Minute
	}
	if opts.Spread <= 0 {
		opts.Spread = 5 * time.Minute
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 8
	}
	if opts.Batch <= 0 {
		opts.Batch = 500
	}
	if opts.Rate <= 0 {
		opts.Rate = 20
	}
	if opts.Sleep == nil {
		opts.Sleep = sleep
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = time.Minute
	}
	if opts.Poll <= 0 {
		opts.Poll = 100 * time.Millisecond
	}
	return opts
}

func (k *KeeperOf[ID]) now() time.Time { return k.opts.Now().UTC() }

// Token returns tid's current access token: from memory, else from the
// Store, else fetched from WeChat. Errors: tenant.ErrNotFound,
// tenant.ErrDisabled, ErrBackoff, a *wechat.APIError or
// *wechat.TransportError from the fetch.
//
// Every call that uses a tenant's token, whatever the transport (REST,
// gRPC, the console, the compatible API), comes here: this is where a
// disabled tenant is refused.
func (k *KeeperOf[ID]) Token(ctx context.Context, tid ID) (string, error) {
	sub, err := k.servable(ctx, tid)
	if err != nil {
		return "", err
	}
	if tok, ok := k.cached(tid, sub, ""); ok {
		return tok, nil
	}
	return k.do(ctx, tid, request{})
}

// servable reads what tid's token is for, and refuses one whose token may
// not be used (a disabled tenant, say).
func (k *KeeperOf[ID]) servable(ctx context.Context, tid ID) (Subject, error) {
	sub, err := k.source.Subject(ctx, tid)
	if err != nil {
		return Subject{}, err
	}
	if sub.Refused != nil {
		return Subject{}, sub.Refused
	}
	return sub, nil
}

// Forget drops tid's token from memory: on a change of the tenant, so that
// nothing fetched under its old settings is served, and on its deletion,
// so that the token leaves memory with it. Tenant changes call it
// (tenant.Service.OnChange); a change made on another replica reaches
// Token through the tenant cache, which the memory entry is checked
// against.
func (k *KeeperOf[ID]) Forget(tid ID) {
	k.mu.Lock()
	delete(k.mem, tid)
	k.mu.Unlock()
}

// Refresh returns a token other than failed, which a call has just found
// dead (wechat.IsTokenInvalid): compare-and-refresh. If the current token
// is no longer failed, because another caller or process has replaced it,
// Refresh returns it without fetching. Concurrent callers of one tenant
// share one fetch, and processes sharing the Store fetch one at a time.
//
// A stable token is fetched in normal mode first, which returns a new
// token when WeChat has retired the old one; only when WeChat hands back
// failed itself is it force-refreshed, at most 20 times a (Beijing) day and
// 30 s apart per app (else ErrForceLimited). Forced refreshes are logged.
func (k *KeeperOf[ID]) Refresh(ctx context.Context, tid ID, failed string) (string, error) {
	sub, err := k.servable(ctx, tid)
	if err != nil {
		return "", err
	}
	if tok, ok := k.cached(tid, sub, failed); ok {
		return tok, nil
	}
	// A caller that joins a flight reading the Store may get failed back;
	// a second flight then refreshes.
	for range 2 {
		tok, err := k.do(ctx, tid, request{failed: failed})
		if err != nil || tok != failed || failed == "" {
			return tok, err
		}
	}
	return "", fmt.Errorf("token: refresh of %s returned the failed token", tid)
}

// RefreshDue refreshes the tokens that are due: tenants never fetched,
// tokens near expiry, and failures whose backoff has ended. It is the
// scheduled job's body (run it every minute or so). A run lists Batch due
// tenants at a time and goes on until none is left, Concurrency at a time
// and at most Rate a second; a tenant another process is refreshing is
// skipped. A run that took a fixed Batch a minute refreshed 500 tenants a
// minute at most, fewer than 100,000 tenants' two-hour tokens need (about
// 850): their tokens expired and every send waited for a fetch. Rate is
// now the bound: 20 a second is 144,000 tenants per two hours. Since every token is
// scheduled at a random point of a window before its expiry, and fetches
// are paced, tenants onboarded together drift apart.
//
// Failures are recorded in the tenants' Status and logged; the error only
// counts them, or says the Store failed.
func (k *KeeperOf[ID]) RefreshDue(ctx context.Context) error {
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed int
		taken  int
		first  error
	)
	sem := make(chan struct{}, k.opts.Concurrency)
	gap := time.Duration(float64(time.Second) / k.opts.Rate)
	var last time.Time // when the previous fetch started
	// A tenant leaves the due set once refreshed (or, failing, once its
	// backoff moves its due time on); seen stops a run that keeps finding
	// the same ones, whatever the store says.
	seen := make(map[ID]bool)
batches:
	for {
		ids, err := k.store.DueTokens(ctx, k.now(), k.opts.Batch)
		if err != nil {
			wg.Wait()
			return fmt.Errorf("token: list due tokens: %w", err)
		}
		fresh := 0
		for _, tid := range ids {
			if seen[tid] {
				continue
			}
			seen[tid] = true
			fresh++
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				break batches
			}
			if taken > 0 {
				if d := last.Add(gap).Sub(k.now()); d > 0 {
					if k.opts.Sleep(ctx, d) != nil {
						<-sem
						break batches
					}
				}
			}
			taken++
			last = k.now()
			wg.Go(func() {
				defer func() { <-sem }()
				_, err := k.do(ctx, tid, request{due: true})
				if err == nil || errors.Is(err, errSkipped) {
					return
				}
				k.log.WarnContext(ctx, "access token refresh failed", "tenant", tid, "err", err)
				mu.Lock()
				defer mu.Unlock()
				failed++
				if first == nil {
					first = fmt.Errorf("%s: %w", tid, err)
				}
			})
		}
		if len(ids) < k.opts.Batch || fresh == 0 {
			break
		}
		// The batch's last fetches must land before the next listing,
		// or it lists them again.
		wg.Wait()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("token: %d of %d due refreshes failed, the first: %w", failed, taken, first)
	}
	return nil
}

// Status returns tid's token status: zero, but for no error, if no token
// was fetched yet. tenant.ErrNotFound.
func (k *KeeperOf[ID]) Status(ctx context.Context, tid ID) (Status, error) {
	if _, err := k.source.Subject(ctx, tid); err != nil {
		return Status{}, err
	}
	st, err := k.store.FindToken(ctx, tid)
	if errors.Is(err, ErrNotFound) {
		return Status{}, nil
	} else if err != nil {
		return Status{}, err
	}
	s := Status{
		LastRefresh: st.RefreshedAt,
		NextRefresh: st.DueAt,
		Failures:    st.Failures,
		LastError:   st.LastError,
		LastErrcode: st.LastErrcode,
		LastErrorAt: st.LastErrorAt,
	}
	if st.Token != "" {
		s.ExpiresAt = st.ExpiresAt
	}
	return s, nil
}

// cached returns t's token in memory, unless it is failed, due for a look
// at the Store, near expiry, or fetched for another appid or endpoint than
// t's.
func (k *KeeperOf[ID]) cached(tid ID, sub Subject, failed string) (string, bool) {
	now := k.now()
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.mem[tid]
	if !ok || e.token == failed || e.appID != sub.AppID || e.endpoint != sub.Endpoint ||
		!now.Before(e.recheckAt) || !now.Before(e.expiresAt.Add(-expirySkew)) {
		return "", false
	}
	return e.token, true
}

// remember keeps st's token in memory until it is due, then has callers
// look at the Store every few seconds.
func (k *KeeperOf[ID]) remember(tid ID, st *State, now time.Time) {
	recheck := st.DueAt
	if !recheck.After(now) {
		recheck = now.Add(recheckEvery)
	}
	k.mu.Lock()
	k.mem[tid] = entry{token: st.Token, appID: st.AppID, endpoint: st.Endpoint, expiresAt: st.ExpiresAt, recheckAt: recheck}
	k.mu.Unlock()
}

// do runs r for tid as a flight, or joins the one under way (a scheduled
// refresh skips instead). The flight runs detached from ctx, within
// LeaseTTL, so that a caller giving up does not fail the others.
func (k *KeeperOf[ID]) do(ctx context.Context, tid ID, r request) (string, error) {
	k.mu.Lock()
	f, ok := k.flights[tid]
	if ok && r.due {
		k.mu.Unlock()
		return "", errSkipped
	}
	if !ok {
		f = &flight{done: make(chan struct{})}
		k.flights[tid] = f
		go func() {
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), k.opts.LeaseTTL)
			defer cancel()
			f.token, f.err = k.obtain(fctx, tid, r)
			k.mu.Lock()
			delete(k.flights, tid)
			k.mu.Unlock()
			close(f.done)
		}()
	}
	k.mu.Unlock()
	select {
	case <-f.done:
		if errors.Is(f.err, errSkipped) && !r.due {
			// The flight joined was a scheduled refresh that left the
			// tenant to another process's fetch: not this caller's
			// answer. A flight of its own waits for that fetch.
			return k.do(ctx, tid, r)
		}
		return f.token, f.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// obtain produces a token answering r: from the Store if it has one, else
// by fetching under the tenant's lease.
func (k *KeeperOf[ID]) obtain(ctx context.Context, tid ID, r request) (string, error) {
	t, err := k.source.Subject(ctx, tid)
	if err != nil {
		return "", err
	}
	if r.due && t.Refused != nil {
		// Nothing may use its token (a disabled tenant); it is fetched
		// again when that changes and it is next asked for.
		return "", errSkipped
	}
	st, err := k.find(ctx, tid)
	if err != nil {
		return "", err
	}
	if satisfies(st, t, r, k.now()) {
		k.remember(tid, st, k.now())
		return st.Token, nil
	}
	if err := backingOff(st, t, k.now()); err != nil {
		return "", err
	}

	// Take the lease; while another process holds it, wait for what it
	// saves unless this is a scheduled run, which leaves the tenant to it.
	for {
		now := k.now()
		ok, err := k.store.AcquireTokenLease(ctx, tid, k.opts.Owner, now, now.Add(k.opts.LeaseTTL))
		if err != nil {
			return "", fmt.Errorf("token: lease for %s: %w", tid, err)
		}
		if ok {
			break
		}
		if r.due {
			return "", errSkipped
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("token: waiting for another process's refresh of %s: %w", tid, ctx.Err())
		case <-time.After(k.opts.Poll):
		}
		if st, err := k.find(ctx, tid); err != nil {
			return "", err
		} else if satisfies(st, t, request{failed: r.failed}, k.now()) {
			k.remember(tid, st, k.now())
			return st.Token, nil
		}
	}
	saved := false
	defer func() {
		if !saved {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if err := k.store.ReleaseTokenLease(ctx, tid, k.opts.Owner); err != nil {
				k.log.WarnContext(ctx, "release token lease", "tenant", tid, "err", err)
			}
		}
	}()

	// Another process may have finished a fetch just before we took over.
	if st, err = k.find(ctx, tid); err != nil {
		return "", err
	}
	now := k.now()
	if satisfies(st, t, r, now) {
		k.remember(tid, st, now)
		return st.Token, nil
	}
	if err := backingOff(st, t, now); err != nil {
		return "", err
	}
	if st == nil {
		st = &State{}
	}

	at, err := k.source.Fetch(ctx, tid, t, st, r.failed, now)
	if err == nil {
		st.AppID, st.Endpoint = t.AppID, t.Endpoint
		st.Token, st.ExpiresAt, st.RefreshedAt = at.Token, now.Add(at.ExpiresIn), now
		st.DueAt = nextDue(st.Endpoint, k.opts.Margin, k.opts.Spread, st.ExpiresAt, now)
		st.Failures, st.LastError, st.LastErrcode, st.LastErrorAt = 0, "", 0, time.Time{}
	} else if !errors.Is(err, ErrForceLimited) { // a limit is no failure; its count is saved
		if ctx.Err() != nil {
			return "", err // our deadline, not WeChat's failure
		}
		st.Failures++
		st.LastErrcode = wechat.Errcode(err)
		st.LastError = describe(err)
		st.LastErrorAt = now
		st.DueAt = now.Add(backoff(st.LastErrcode, st.Failures, now))
	}
	st.TenantVersion = t.Version
	if serr := k.store.SaveToken(ctx, tid, k.opts.Owner, st); serr != nil {
		if err == nil {
			// The token is good; only its record is lost.
			k.log.WarnContext(ctx, "save access token", "tenant", tid, "err", serr)
		} else {
			err = errors.Join(err, serr)
		}
	} else {
		saved = true
	}
	if err != nil {
		return "", fmt.Errorf("token: fetch for %s: %w", tid, err)
	}
	k.remember(tid, st, now)
	return st.Token, nil
}

// describe is err for Status: WeChat's message without its request id.
func describe(err error) string {
	if e, ok := errors.AsType[*wechat.APIError](err); ok {
		if m := e.Message(); m != "" {
			return m
		}
		return e.Error()
	}
	return err.Error()
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// find reads tid's state from the Store: nil if there is none.
func (k *KeeperOf[ID]) find(ctx context.Context, tid ID) (*State, error) {
	st, err := k.store.FindToken(ctx, tid)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("token: read %s: %w", tid, err)
	}
	return st, nil
}

// TokenExpiry is Token with the time the token expires: what the
// WeChat-compatible API tells an SDK as expires_in.
func (k *KeeperOf[ID]) TokenExpiry(ctx context.Context, tid ID) (string, time.Time, error) {
	tok, err := k.Token(ctx, tid)
	if err != nil {
		return "", time.Time{}, err
	}
	return tok, k.expiry(ctx, tid, tok), nil
}

// RefreshExpiry is Refresh with the time the token it returns expires.
func (k *KeeperOf[ID]) RefreshExpiry(ctx context.Context, tid ID, failed string) (string, time.Time, error) {
	tok, err := k.Refresh(ctx, tid, failed)
	if err != nil {
		return "", time.Time{}, err
	}
	return tok, k.expiry(ctx, tid, tok), nil
}

// expiry returns when tok, tid's token just obtained, expires: from memory,
// where obtaining it put it, else from the Store; if neither knows it (a
// race with a newer refresh), the shortest life WeChat gives a token from
// now, so that a caller comes back early rather than late.
func (k *KeeperOf[ID]) expiry(ctx context.Context, tid ID, tok string) time.Time {
	k.mu.Lock()
	e, ok := k.mem[tid]
	k.mu.Unlock()
	if ok && e.token == tok {
		return e.expiresAt
	}
	if st, err := k.store.FindToken(ctx, tid); err == nil && st.Token == tok {
		return st.ExpiresAt
	}
	return k.now().Add(minUnknownLife)
}

// minUnknownLife is the life given a token whose expiry is unknown: five
// minutes, the overlap WeChat grants an old token after a new one.
const minUnknownLife = 5 * time.Minute
