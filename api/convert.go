package api

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	wxrelayv1 "github.com/wxrelay/wxrelay/api/gen/wxrelay/v1"
	"github.com/wxrelay/wxrelay/relay/token"
	"github.com/wxrelay/wxrelay/tenant"
)

// The proto enums and the domain enums share their numbering; these
// conversions still go through explicit tables so that a renumbering on
// either side is a compile-visible change here, not a silent mix-up.

var encryptModes = map[wxrelayv1.Tenant_EncryptMode]tenant.EncryptMode{
	wxrelayv1.Tenant_ENCRYPT_MODE_UNSPECIFIED: tenant.EncryptUnspecified,
	wxrelayv1.Tenant_ENCRYPT_MODE_PLAINTEXT:   tenant.EncryptPlaintext,
	wxrelayv1.Tenant_ENCRYPT_MODE_COMPATIBLE:  tenant.EncryptCompatible,
	wxrelayv1.Tenant_ENCRYPT_MODE_SAFE:        tenant.EncryptSafe,
}

var dataFormats = map[wxrelayv1.Tenant_DataFormat]tenant.DataFormat{
	wxrelayv1.Tenant_DATA_FORMAT_UNSPECIFIED: tenant.FormatUnspecified,
	wxrelayv1.Tenant_DATA_FORMAT_JSON:        tenant.FormatJSON,
	wxrelayv1.Tenant_DATA_FORMAT_XML:         tenant.FormatXML,
}

var replyModes = map[wxrelayv1.Tenant_ReplyMode]tenant.ReplyMode{
	wxrelayv1.Tenant_REPLY_MODE_UNSPECIFIED:               tenant.ReplyUnspecified,
	wxrelayv1.Tenant_REPLY_MODE_SUCCESS:                   tenant.ReplySuccess,
	wxrelayv1.Tenant_REPLY_MODE_TRANSFER_CUSTOMER_SERVICE: tenant.ReplyTransferCustomerService,
}

var states = map[wxrelayv1.Tenant_State]tenant.State{
	wxrelayv1.Tenant_STATE_UNSPECIFIED: tenant.StateUnspecified,
	wxrelayv1.Tenant_STATE_ACTIVE:      tenant.StateActive,
	wxrelayv1.Tenant_STATE_DISABLED:    tenant.StateDisabled,
}

var tokenEndpoints = map[wxrelayv1.Tenant_TokenEndpoint]tenant.TokenEndpoint{
	wxrelayv1.Tenant_TOKEN_ENDPOINT_UNSPECIFIED: tenant.TokenEndpointUnspecified,
	wxrelayv1.Tenant_TOKEN_ENDPOINT_STABLE:      tenant.TokenStable,
	wxrelayv1.Tenant_TOKEN_ENDPOINT_CLASSIC:     tenant.TokenClassic,
}

// fromProto maps a proto enum to its domain value; a number the proto does
// not define (possible over gRPC) maps to -1, which validation rejects.
func fromProto[P comparable, D ~int](table map[P]D, p P) D {
	if d, ok := table[p]; ok {
		return d
	}
	return -1
}

func toProto[P comparable, D comparable](table map[P]D, d D) P {
	for p, v := range table {
		if v == d {
			return p
		}
	}
	var zero P
	return zero
}

// toDomainTenant takes the input fields of a proto Tenant; output-only
// fields (id, push_url, state, times) are ignored.
func toDomainTenant(p *wxrelayv1.Tenant) *tenant.Tenant {
	return &tenant.Tenant{
		DisplayName:       p.GetDisplayName(),
		AppID:             p.GetAppid(),
		OriginalID:        p.GetOriginalId(),
		EncryptMode:       fromProto(encryptModes, p.GetEncryptMode()),
		DataFormat:        fromProto(dataFormats, p.GetDataFormat()),
		WebhookURL:        p.GetWebhookUrl(),
		ReplyMode:         fromProto(replyModes, p.GetReplyMode()),
		OrderedDelivery:   p.GetOrderedDelivery(),
		IgnoreReplyWindow: p.GetIgnoreReplyWindow(),
		PushSilenceAlert:  p.GetPushSilenceAlert().AsDuration(),
		TokenEndpoint:     fromProto(tokenEndpoints, p.GetTokenEndpoint()),
		ComponentID:       tenant.ComponentID(p.GetComponentId()),
		Secrets: tenant.Secrets{
			AppSecret:      p.GetAppSecret(),
			Token:          p.GetToken(),
			EncodingAESKey: p.GetEncodingAesKey(),
		},
	}
}

// toProtoTenant never copies secrets: they are input only.
func (s *tenantServer) toProtoTenant(t *tenant.Tenant) *wxrelayv1.Tenant {
	p := &wxrelayv1.Tenant{
		Id:                string(t.ID),
		DisplayName:       t.DisplayName,
		Appid:             t.AppID,
		OriginalId:        t.OriginalID,
		EncryptMode:       toProto(encryptModes, t.EncryptMode),
		DataFormat:        toProto(dataFormats, t.DataFormat),
		WebhookUrl:        t.WebhookURL,
		ReplyMode:         toProto(replyModes, t.ReplyMode),
		PushUrl:           s.pushURL(t),
		ComponentId:       string(t.ComponentID),
		WechatApiBaseUrl:  s.publicURL + "/wxapi",
		State:             toProto(states, t.State),
		OrderedDelivery:   t.OrderedDelivery,
		IgnoreReplyWindow: t.IgnoreReplyWindow,
		TokenEndpoint:     toProto(tokenEndpoints, endpointOrDefault(t.TokenEndpoint)),
		CreateTime:        timestamppb.New(t.CreateTime),
		UpdateTime:        timestamppb.New(t.UpdateTime),
		PushSecrets:       wxrelayv1.Tenant_PUSH_SECRETS_CURRENT,
	}
	if t.PushSilenceAlert > 0 {
		p.PushSilenceAlert = durationpb.New(t.PushSilenceAlert)
	}
	if t.Secrets.PreviousInForce(time.Now()) {
		p.PushSecrets = wxrelayv1.Tenant_PUSH_SECRETS_CURRENT_AND_PREVIOUS
		p.PreviousPushSecretsUntil = timestamppb.New(t.Secrets.PreviousUntil)
	}
	return p
}

// endpointOrDefault names the endpoint a tenant's tokens come from: the zero
// value means stable_token.
func endpointOrDefault(ep tenant.TokenEndpoint) tenant.TokenEndpoint {
	if ep == tenant.TokenEndpointUnspecified {
		return tenant.TokenStable
	}
	return ep
}

// toProtoTokenStatus converts a token status; it holds no token to leak.
// Times that never happened stay unset.
func toProtoTokenStatus(st token.Status) *wxrelayv1.Tenant_TokenStatus {
	ts := func(t time.Time) *timestamppb.Timestamp {
		if t.IsZero() {
			return nil
		}
		return timestamppb.New(t)
	}
	return &wxrelayv1.Tenant_TokenStatus{
		ExpireTime:      ts(st.ExpiresAt),
		LastRefreshTime: ts(st.LastRefresh),
		LastErrcode:     int32(st.LastErrcode),
		LastError:       st.LastError,
		LastErrorTime:   ts(st.LastErrorAt),
		NextRefreshTime: ts(st.NextRefresh),
	}
}
