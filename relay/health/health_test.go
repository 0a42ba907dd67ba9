package health_test

import (
	"strings"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay/health"
	"github.com/wxrelay/wxrelay/relay/rejection"
	"github.com/wxrelay/wxrelay/tenant"
)

func TestEvaluate(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	tn := &tenant.Tenant{ID: "tn_a", CreateTime: now.Add(-48 * time.Hour)}
	quiet := &tenant.Tenant{ID: "tn_a", CreateTime: now.Add(-48 * time.Hour), PushSilenceAlert: time.Hour}
	ofComponent := &tenant.Tenant{ID: "tn_c", ComponentID: "cp_aaaaaaaaaaaaaaaa", CreateTime: now.Add(-48 * time.Hour)}
	granted := health.AuthorizationFacts{State: tenant.AuthorizationAuthorized, FuncInfo: []int{17, 19}, AuthorizeTime: now.Add(-time.Hour)}
	notAuthorized := health.Facts{TokenFailures: 3, TokenError: "not authorized", TokenErrorAt: now}
	for _, c := range []struct {
		name   string
		t      *tenant.Tenant
		f      health.Facts
		state  health.State
		kinds  []health.Kind
		detail func(health.Reason) bool
	}{
		{"all well", tn, health.Facts{LastPush: now.Add(-time.Minute), Sends: 100, Refusals: 2}, health.StateOK, nil, nil},
		{"two failures are not yet failing", tn, health.Facts{ConsecutiveFailures: 2}, health.StateOK, nil, nil},
		{"webhook failing", tn, health.Facts{ConsecutiveFailures: 3, FailingSince: now.Add(-time.Minute), LastHTTPStatus: 503, LastErrorClass: "http_status"},
			health.StateFailing, []health.Kind{health.WebhookFailing},
			func(r health.Reason) bool {
				return r.LastHTTPStatus == 503 && r.ConsecutiveFailures == 3 && r.Since.Equal(now.Add(-time.Minute))
			}},
		{"backlog", tn, health.Facts{Pending: 40, OldestPending: now.Add(-10 * time.Minute)}, health.StateDegraded, []health.Kind{health.DeliveryBacklog},
			func(r health.Reason) bool { return r.Pending == 40 && r.OldestPendingAge == 10*time.Minute }},
		{"old backlog fails", tn, health.Facts{Pending: 1, OldestPending: now.Add(-2 * time.Hour)}, health.StateFailing, []health.Kind{health.DeliveryBacklog}, nil},
		{"fresh backlog is fine", tn, health.Facts{Pending: 400, OldestPending: now.Add(-time.Minute)}, health.StateOK, nil, nil},
		{"token error", tn, health.Facts{TokenFailures: 2, TokenErrcode: 40164, TokenError: "invalid ip", TokenErrorAt: now}, health.StateFailing, []health.Kind{health.TokenError},
			func(r health.Reason) bool { return r.LastErrcode == 40164 }},
		{"WeChat unreachable is not a refusal", tn, health.Facts{TokenFailures: 1, TokenError: "dial tcp: lookup api.weixin.qq.com: no such host", TokenErrorAt: now},
			health.StateFailing, []health.Kind{health.TokenError},
			func(r health.Reason) bool {
				return !strings.Contains(r.Message, "refused") && strings.Contains(r.Message, "once") && strings.Contains(r.Message, "WXRELAY_WECHAT_API")
			}},
		{"silence off by default", tn, health.Facts{LastPush: now.Add(-30 * 24 * time.Hour)}, health.StateOK, nil, nil},
		{"silence over the threshold", quiet, health.Facts{LastPush: now.Add(-2 * time.Hour)}, health.StateDegraded, []health.Kind{health.NoPushes},
			func(r health.Reason) bool { return r.Since.Equal(now.Add(-time.Hour)) }},
		{"silence within the threshold", quiet, health.Facts{LastPush: now.Add(-30 * time.Minute)}, health.StateOK, nil, nil},
		{"never a push, counted from onboarding", quiet, health.Facts{}, health.StateDegraded, []health.Kind{health.NoPushes}, nil},
		{"refusals rising", tn, health.Facts{Sends: 40, Refusals: 5}, health.StateDegraded, []health.Kind{health.ReplyWindowRefusals}, nil},
		{"a few refusals among many sends", tn, health.Facts{Sends: 1000, Refusals: 20}, health.StateOK, nil, nil},
		{"several at once: the worst wins", tn, health.Facts{Sends: 10, Refusals: 9, ConsecutiveFailures: 5}, health.StateFailing,
			[]health.Kind{health.WebhookFailing, health.ReplyWindowRefusals}, nil},
		{"pushes refused", tn, health.Facts{Rejections: []rejection.Count{
			{Cause: rejection.BadSignature, N: 7, First: now.Add(-20 * time.Minute), Last: now.Add(-time.Minute)},
			{Cause: rejection.StaleTimestamp, N: 1, First: now.Add(-2 * time.Minute), Last: now.Add(-2 * time.Minute)},
		}}, health.StateDegraded, []health.Kind{health.PushRejected},
			func(r health.Reason) bool {
				return r.Rejected == 8 && r.LastRejection == rejection.BadSignature && r.Since.Equal(now.Add(-20*time.Minute)) &&
					strings.Contains(r.Message, "8 pushes were refused") && strings.Contains(r.Message, "Token")
			}},
		{"refusals that ended", tn, health.Facts{Rejections: []rejection.Count{
			{Cause: rejection.BadSignature, N: 7, First: now.Add(-time.Hour), Last: now.Add(-rejection.Window - time.Second)},
		}}, health.StateOK, nil, nil},
		{"a component's tenant, authorized", ofComponent, health.Facts{Authorization: granted}, health.StateOK, nil, nil},
		{"a component's tenant waiting for consent", ofComponent, notAuthorized, health.StateDegraded, []health.Kind{health.AuthorizationPending},
			func(r health.Reason) bool { return r.Since.Equal(ofComponent.CreateTime) }},
		{"a component's tenant, revoked", ofComponent,
			health.Facts{Authorization: health.AuthorizationFacts{State: tenant.AuthorizationRevoked, RevokeTime: now.Add(-time.Minute)},
				TokenFailures: 1, TokenError: "revoked", TokenErrorAt: now},
			health.StateFailing, []health.Kind{health.AuthorizationRevoked},
			func(r health.Reason) bool { return r.Since.Equal(now.Add(-time.Minute)) }},
		{"a component's tenant without the customer-service set", ofComponent,
			health.Facts{Authorization: health.AuthorizationFacts{State: tenant.AuthorizationAuthorized, FuncInfo: []int{17, 18}, AuthorizeTime: now.Add(-time.Hour)}},
			health.StateFailing, []health.Kind{health.PermissionMissing}, nil},
		{"a component's tenant whose refresh token is lost", ofComponent,
			health.Facts{Authorization: granted, TokenFailures: 2, TokenErrcode: 61023, TokenError: "refresh token refused", TokenErrorAt: now},
			health.StateFailing, []health.Kind{health.RefreshTokenLost}, func(r health.Reason) bool { return r.LastErrcode == 61023 }},
		{"a component's tenant whose token fetch fails otherwise", ofComponent,
			health.Facts{Authorization: granted, TokenFailures: 2, TokenErrcode: 61003, TokenError: "component not authorized", TokenErrorAt: now},
			health.StateFailing, []health.Kind{health.TokenError}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := health.Evaluate(c.t, c.f, now)
			if h.State != c.state || len(h.Reasons) != len(c.kinds) {
				t.Fatalf("state %v with %+v, want %v with %v", h.State, h.Reasons, c.state, c.kinds)
			}
			for i, k := range c.kinds {
				r := h.Reasons[i]
				if r.Kind != k || r.Message == "" || (c.detail != nil && !c.detail(r)) {
					t.Errorf("reason %d = %+v, want %s with its details", i, r, k)
				}
			}
		})
	}
}
