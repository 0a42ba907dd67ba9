package component

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/tenant"
)

// AuthorizationStore is what acting on authorization events needs of the
// store; *store.ComponentStore is one.
type AuthorizationStore interface {
	Components
	PendingComponentPushes(ctx context.Context, limit int) ([]tenant.PendingComponentPush, error)
	PendingComponentPushesOf(ctx context.Context, infoType string, limit int) ([]tenant.PendingComponentPush, error)
	MarkComponentPushDone(ctx context.Context, seq int64, at time.Time) error
	SaveAuthorization(ctx context.Context, a *tenant.Authorization) error
	RevokeAuthorization(ctx context.Context, cid tenant.ComponentID, appid string, at time.Time) error
}

// ComponentTokens hands out components' tokens; the components'
// token.KeeperOf is one.
type ComponentTokens interface {
	Token(ctx context.Context, id tenant.ComponentID) (string, error)
	Refresh(ctx context.Context, id tenant.ComponentID, failed string) (string, error)
}

// AuthorizerWeChat is what the Authorizer calls; *wechat.Client is one.
type AuthorizerWeChat interface {
	// QueryAuth exchanges an authorization code.
	QueryAuth(ctx context.Context, componentToken, componentAppID, code string) (wechat.Authorization, error)
	// SendCustomMessage answers the release check.
	SendCustomMessage(ctx context.Context, accessToken string, body []byte) error
}

// Authorizer acts on the authorization events the authorization-event URL
// stored: it exchanges an authorized (or updateauthorized) event's code
// for the authorization and keeps its refresh token, durably, and marks a
// revoked one revoked. Run Process on a schedule, on one replica at a
// time.
//
// A run can also be asked for at once (Kick), for a push that cannot wait
// for the schedule: the release check wants its reply within seconds.
// Runs of one process take turns; runs of two replicas may overlap (a
// kick takes no job lock), which every act allows: an exchange saved
// twice is one authorization (store.ComponentStore.SaveAuthorization), a
// revocation twice one revocation, and a release check answered twice
// passes all the same.
type Authorizer struct {
	store  AuthorizationStore
	tokens ComponentTokens
	wx     AuthorizerWeChat
	log    *slog.Logger
	now    func() time.Time

	turn  sync.Mutex    // one run at a time in this process
	kicks chan struct{} // runs asked for (Kick), one waiting at most
	// exclusive takes the scheduled job's lock for a run asked for, so
	// that runs of two replicas never overlap (LockWith); nil: none.
	exclusive func(ctx context.Context) (release func(), err error)

	onChange []func(cid tenant.ComponentID, appid string)
}

// OnChange registers f to be called after an authorization is saved or
// revoked here (to drop what is kept of it).
func (a *Authorizer) OnChange(f func(cid tenant.ComponentID, appid string)) {
	a.onChange = append(a.onChange, f)
}

func (a *Authorizer) changed(cid tenant.ComponentID, appid string) {
	for _, f := range a.onChange {
		f(cid, appid)
	}
}

// NewAuthorizer returns an Authorizer; log and now may be nil.
func NewAuthorizer(s AuthorizationStore, tokens ComponentTokens, wx AuthorizerWeChat, log *slog.Logger, now func() time.Time) *Authorizer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &Authorizer{store: s, tokens: tokens, wx: wx, log: log, now: now, kicks: make(chan struct{}, 1)}
}

// LockWith makes the runs Kick asks for take lock first (the scheduled
// job's lock) and skip when another replica holds it: a run there reads
// pages until none is left, so it acts on the event too, or the next
// scheduled run does. Two runs at once would each act on the same events,
// and could act on an authorizer's revocation before its authorization.
func (a *Authorizer) LockWith(lock func(ctx context.Context) (release func(), err error)) {
	a.exclusive = lock
}

// Kick asks Run for a run now, without waiting for it.
func (a *Authorizer) Kick() {
	select {
	case a.kicks <- struct{}{}:
	default: // one is asked for already, and will see this push too
	}
}

// Run makes the runs Kick asks for until ctx ends.
func (a *Authorizer) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.kicks:
			a.kicked(ctx)
		}
	}
}

// AnswerReleaseChecks acts on the pending release checks now, in the
// background, whichever replica runs the job: the check wants its reply
// within 5 s, and another replica's run may be 10 s away. Order does not
// matter to them (the test mini program's other events change nothing
// its check needs), so they need no lock; should the job's run act on
// one at the same moment, the test user gets the reply twice, which the
// check allows.
func (a *Authorizer) AnswerReleaseChecks() {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		pushes, err := a.store.PendingComponentPushesOf(ctx, wechat.InfoQueryAuthCode, processPage)
		if err != nil {
			a.log.WarnContext(ctx, "release checks: read pending", "err", err)
			return
		}
		for _, p := range pushes {
			log := a.log.With("component", p.ComponentID, "info_type", p.InfoType)
			if err := a.answerReleaseCheck(ctx, log, p); err != nil {
				continue // the job tries again
			}
			if err := a.store.MarkComponentPushDone(ctx, p.Seq, a.now()); err != nil {
				log.WarnContext(ctx, "release check: mark done", "err", err)
			}
		}
	}()
}

// kicked makes one run asked for, under the job's lock if there is one.
func (a *Authorizer) kicked(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if a.exclusive != nil {
		release, err := a.exclusive(ctx)
		if err != nil {
			a.log.DebugContext(ctx, "component authorizations: a run asked for is left to the replica running the job", "err", err)
			return
		}
		defer release()
	}
	if err := a.Process(ctx); err != nil && ctx.Err() == nil {
		a.log.WarnContext(ctx, "component authorizations: a run asked for failed; the schedule tries again", "err", err)
	}
}

// errRetry: an event could not be acted on now (WeChat or the database
// failed); it is tried again at the next run.
var errRetry = errors.New("component: authorization event left for the next run")

// Process acts on the stored events in the order they came. An event that
// fails for a reason that may pass stops the run, so that a later event
// of the same authorizer (an unauthorized after an authorized) is never
// acted on before it; one that cannot succeed (an expired code, a
// component gone) is logged and passed.
//
// A run takes every pending event, a page at a time: merchants moving an
// agency onto the relay authorize by the thousand, and a page a run (every
// 10 s) kept the last of 10,000 waiting 17 minutes.
func (a *Authorizer) Process(ctx context.Context) error {
	a.turn.Lock()
	defer a.turn.Unlock()
	for {
		pushes, err := a.store.PendingComponentPushes(ctx, processPage)
		if err != nil {
			return err
		}
		for _, p := range pushes {
			if err := a.act(ctx, p); err != nil {
				return fmt.Errorf("%w: %w", errRetry, err)
			}
			if err := a.store.MarkComponentPushDone(ctx, p.Seq, a.now()); err != nil {
				return err
			}
		}
		if len(pushes) < processPage {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// processPage is how many pending events Process reads at a time.
const processPage = 100

// act acts on one event; nil when it is done with, acted on or passed.
func (a *Authorizer) act(ctx context.Context, p tenant.PendingComponentPush) error {
	log := a.log.With("component", p.ComponentID, "info_type", p.InfoType, "authorizer", p.AuthorizerAppID)
	switch p.InfoType {
	case wechat.InfoUnauthorized:
		if err := a.store.RevokeAuthorization(ctx, p.ComponentID, p.AuthorizerAppID, time.Unix(p.CreateTime, 0)); err != nil {
			if errors.Is(err, tenant.ErrComponentNotFound) {
				return nil
			}
			return err
		}
		a.changed(p.ComponentID, p.AuthorizerAppID)
		log.InfoContext(ctx, "authorization revoked")
		return nil
	case wechat.InfoQueryAuthCode:
		return a.answerReleaseCheck(ctx, log, p)
	case wechat.InfoAuthorized, wechat.InfoUpdateAuthorized:
	default:
		return nil // not one the relay acts on
	}
	var e wechat.ComponentEvent
	if err := xml.Unmarshal(p.Body, &e); err != nil || e.AuthorizationCode == "" {
		log.WarnContext(ctx, "authorization event without a code: passed")
		return nil
	}
	c, err := a.store.FindComponent(ctx, p.ComponentID)
	if errors.Is(err, tenant.ErrComponentNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if e.AuthorizationCodeExpiredTime > 0 && a.now().After(time.Unix(e.AuthorizationCodeExpiredTime, 0)) {
		log.WarnContext(ctx, "authorization code expired before it could be exchanged: the merchant must authorize again")
		return nil
	}
	_, err = a.Authorize(ctx, c, e.AuthorizationCode, time.Unix(e.CreateTime, 0))
	return passRefusedForGood(ctx, log, "authorization code exchange", err)
}

// passRefusedForGood returns err, a failure of what, but nil for a
// refusal WeChat will repeat (an expired code 61010, an authorization
// since revoked 61003, ...): waiting will not change that, and the
// events after it must not wait.
func passRefusedForGood(ctx context.Context, log *slog.Logger, what string, err error) error {
	var apiErr *wechat.APIError
	if errors.As(err, &apiErr) && apiErr.Code != wechat.CodeSystemError && !wechat.IsTokenInvalid(err) {
		log.WarnContext(ctx, what+" refused; passed", "errcode", apiErr.Code, "err", err)
		return nil
	} else if err != nil {
		log.WarnContext(ctx, what+" failed; retrying at the next run", "err", err)
		return err
	}
	return nil
}

// releaseCheck is the body of an InfoQueryAuthCode push, as
// ReleaseCheckHandler keeps it.
type releaseCheck struct {
	OpenID string `json:"openid"`
	Code   string `json:"code"`
}

// answerReleaseCheck answers WeChat's full-network release check: it
// exchanges the check's code, keeping the test mini program's
// authorization like any other, and sends <code>_from_api to the test
// user with the authorizer token the exchange gave.
func (a *Authorizer) answerReleaseCheck(ctx context.Context, log *slog.Logger, p tenant.PendingComponentPush) error {
	var rc releaseCheck
	if err := json.Unmarshal(p.Body, &rc); err != nil || rc.Code == "" || rc.OpenID == "" {
		log.WarnContext(ctx, "release check without a code or user: passed")
		return nil
	}
	c, err := a.store.FindComponent(ctx, p.ComponentID)
	if errors.Is(err, tenant.ErrComponentNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	auth, err := a.Authorize(ctx, c, rc.Code, a.now())
	if err != nil {
		return passRefusedForGood(ctx, log, "release check: code exchange", err)
	}
	body, err := json.Marshal(map[string]any{"touser": rc.OpenID, "msgtype": "text",
		"text": map[string]string{"content": rc.Code + wechat.ReleaseCheckReplyEnd}})
	if err != nil {
		return err
	}
	if err := a.wx.SendCustomMessage(ctx, auth.AccessToken.Token, body); err != nil {
		return passRefusedForGood(ctx, log, "release check: reply", err)
	}
	log.InfoContext(ctx, "release check answered")
	return nil
}

// Authorize exchanges code, an authorization code of component c's
// (from an authorized event, or the consent page's redirect: the same
// outcome whichever comes first, and twice), and keeps the authorization
// durably. It returns the authorization WeChat answered.
func (a *Authorizer) Authorize(ctx context.Context, c *tenant.Component, code string, at time.Time) (wechat.Authorization, error) {
	auth, err := a.exchange(ctx, c, code)
	if err != nil {
		return wechat.Authorization{}, err
	}
	err = a.store.SaveAuthorization(ctx, &tenant.Authorization{
		ComponentID: c.ID, AuthorizerAppID: auth.AuthorizerAppID, State: tenant.AuthorizationAuthorized,
		FuncInfo: auth.FuncInfo, RefreshToken: auth.RefreshToken,
		AuthorizeTime: at.UTC(), UpdateTime: a.now().UTC(),
	})
	if err != nil {
		return wechat.Authorization{}, err
	}
	a.changed(c.ID, auth.AuthorizerAppID)
	a.log.InfoContext(ctx, "authorization kept", "component", c.ID, "authorizer", auth.AuthorizerAppID, "func_info", auth.FuncInfo)
	return auth, nil
}

// exchange exchanges code with c's token.
func (a *Authorizer) exchange(ctx context.Context, c *tenant.Component, code string) (wechat.Authorization, error) {
	auth, _, err := withToken(ctx, a.tokens, c.ID, func(tok string) (wechat.Authorization, error) {
		return a.wx.QueryAuth(ctx, tok, c.AppID, code)
	})
	return auth, err
}
