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
			runCtx, cancel := context.WithTimeout(ctx, time.Minute)
			if err := a.Process(runCtx); err != nil && ctx.Err() == nil {
				a.log.WarnContext(ctx, "component authorizations: a run asked for failed; the schedule tries again", "err", err)
			}
			cancel()
		}
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

// exchange exchanges code with c's token, replacing the token once if
// WeChat finds it dead.
func (a *Authorizer) exchange(ctx context.Context, c *tenant.Component, code string) (wechat.Authorization, error) {
	tok, err := a.tokens.Token(ctx, c.ID)
	if err != nil {
		return wechat.Authorization{}, err
	}
	auth, err := a.wx.QueryAuth(ctx, tok, c.AppID, code)
	if wechat.IsTokenInvalid(err) {
		if tok, err = a.tokens.Refresh(ctx, c.ID, tok); err != nil {
			return wechat.Authorization{}, err
		}
		auth, err = a.wx.QueryAuth(ctx, tok, c.AppID, code)
	}
	return auth, err
}
