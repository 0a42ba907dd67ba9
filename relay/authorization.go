package relay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/wxrelay/wxrelay/tenant"
)

// Lifecycle event types: a change of a component tenant's authorization,
// delivered to its webhook like any push (contract §8).
const (
	TypeAuthorized = "authorization.authorized"
	TypeUpdated    = "authorization.updated"
	TypeRevoked    = "authorization.revoked"
)

// AuthorizationChange is what a change of an authorization means to the
// tenant bound to it: one of the lifecycle types, or "" for a change that
// means nothing to it (the same grant saved twice: the consent page's
// redirect and WeChat's event both exchange the code).
func AuthorizationChange(before *tenant.Authorization, after *tenant.Authorization) string {
	was := before != nil && before.State == tenant.AuthorizationAuthorized
	switch {
	case after.State == tenant.AuthorizationRevoked && was:
		return TypeRevoked
	case after.State != tenant.AuthorizationAuthorized:
		return ""
	case !was:
		return TypeAuthorized
	case !sameFuncs(before.FuncInfo, after.FuncInfo):
		return TypeUpdated
	}
	return ""
}

func sameFuncs(a, b []int) bool {
	seen := make(map[int]bool, len(a))
	for _, f := range a {
		seen[f] = true
	}
	for _, f := range b {
		if !seen[f] {
			return false
		}
		delete(seen, f)
	}
	return len(seen) == 0
}

// authorizationData is the data of a lifecycle event.
type authorizationData struct {
	ComponentID     tenant.ComponentID `json:"component_id"`
	AuthorizerAppID string             `json:"authorizer_appid"`
	State           string             `json:"state"`
	// FuncInfo lists the permission sets granted: the ids of WeChat's
	// funcscope_category (customer service among them).
	FuncInfo      []int  `json:"func_info"`
	AuthorizeTime string `json:"authorize_time"`
	RevokeTime    string `json:"revoke_time,omitempty"`
}

// NewAuthorizationEvent makes the lifecycle event of type typ (one of
// AuthorizationChange's) for tenant tid, bound to authorization a, as
// its webhook receives it. Its de-duplication key names the change, so
// that storing it again (a replica retrying the transaction) stores it
// once.
func NewAuthorizationEvent(tid tenant.ID, typ string, a *tenant.Authorization, now time.Time) (*Event, error) {
	now = now.UTC().Truncate(time.Microsecond)
	at := a.AuthorizeTime
	state := "AUTHORIZATION_AUTHORIZED"
	if typ == TypeRevoked {
		at, state = a.RevokeTime, "AUTHORIZATION_REVOKED"
	}
	at = at.UTC()
	e := &Event{
		ID:            NewEventID(now),
		TenantID:      tid,
		DedupKey:      typ + "@" + strconv.FormatInt(a.UpdateTime.UnixNano(), 10),
		Type:          typ,
		CreateTime:    at,
		ReceiveTime:   now,
		State:         StatePending,
		NoReplyWindow: true, // no user spoke
	}
	funcs := a.FuncInfo
	if funcs == nil {
		funcs = []int{}
	}
	data := authorizationData{ComponentID: a.ComponentID, AuthorizerAppID: a.AuthorizerAppID, State: state,
		FuncInfo: funcs, AuthorizeTime: a.AuthorizeTime.UTC().Format(time.RFC3339)}
	if typ == TypeRevoked {
		data.RevokeTime = a.RevokeTime.UTC().Format(time.RFC3339)
	}
	if err := e.setBody(a.AuthorizerAppID, "", data); err != nil {
		return nil, fmt.Errorf("relay: authorization event: %w", err)
	}
	return e, nil
}

// setBody sets e's data, encoded from data, and its webhook body, for an
// event the relay makes itself rather than receives.
func (e *Event) setBody(appid, openid string, data any) error {
	raw, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("encode data: %w", err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err = enc.Encode(webhookBody{
		ID: e.ID, Type: e.Type, TenantID: e.TenantID, AppID: appid, OpenID: openid,
		CreateTime: e.CreateTime.Format(time.RFC3339), ReceiveTime: e.ReceiveTime.Format(time.RFC3339Nano), Data: raw,
	})
	if err != nil {
		return fmt.Errorf("encode webhook body: %w", err)
	}
	e.Raw = raw
	e.Payload = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	return nil
}
