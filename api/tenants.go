package api

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	wxrelayv1 "github.com/wxrelay/wxrelay/api/gen/wxrelay/v1"
	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/relay/rejection"
	"github.com/wxrelay/wxrelay/relay/token"
	"github.com/wxrelay/wxrelay/tenant"
)

// tenantServer implements wxrelayv1.TenantServiceServer on tenant.Service.
type tenantServer struct {
	wxrelayv1.UnimplementedTenantServiceServer
	tenants    *tenant.Service
	tokens     TokenStatuser // nil: no token_status
	health     HealthChecker // nil: no health
	consent    ConsentLinker // nil: no consent links
	auths      AuthorizationReader
	rejections rejection.Store // nil: none listed
	// checkCredentials asks WeChat whether appid and secret hold; nil
	// refuses check_credentials.
	checkCredentials func(ctx context.Context, appid, secret string) error
	// fetchToken starts fetching a new tenant's access token; nil: the
	// keeper's scan does.
	fetchToken func(tenant.ID)
	finder     Finder // nil: Search finds tenants by id only
	publicURL  string // no trailing slash
}

// ListPushRejections lists tenant id's runs of refused pushes of the last
// rejection.Retention.
func (s *tenantServer) ListPushRejections(ctx context.Context, req *wxrelayv1.ListPushRejectionsRequest) (*wxrelayv1.ListPushRejectionsResponse, error) {
	tid := tenant.ID(req.GetId())
	if _, err := s.tenants.Get(ctx, tid); err != nil {
		return nil, err
	}
	resp := &wxrelayv1.ListPushRejectionsResponse{}
	if s.rejections == nil {
		return resp, nil
	}
	now := time.Now()
	runs, err := s.rejections.PushRejections(ctx, tid, now.Add(-rejection.Retention))
	if err != nil {
		return nil, err
	}
	for _, r := range runs {
		resp.Rejections = append(resp.Rejections, &wxrelayv1.PushRejection{
			Cause: string(r.Cause), Count: r.N, FirstTime: timestamppb.New(r.First), LastTime: timestamppb.New(r.Last),
			InForce: r.InForce(now), Hint: r.Cause.Hint(),
		})
	}
	return resp, nil
}

// ConsentLinker makes consent links for components' tenants;
// *component.Consent is one.
type ConsentLinker interface {
	AuthorizationURL(ctx context.Context, t *tenant.Tenant) (string, time.Time, error)
}

func (s *tenantServer) AuthorizationUrl(ctx context.Context, req *wxrelayv1.AuthorizationUrlRequest) (*wxrelayv1.AuthorizationUrlResponse, error) {
	t, err := s.tenants.Get(ctx, tenant.ID(req.GetId()))
	if err != nil {
		return nil, err
	}
	if s.consent == nil {
		return nil, status.Error(codes.Unimplemented, "this relay makes no consent links")
	}
	u, exp, err := s.consent.AuthorizationURL(ctx, t)
	if err != nil {
		return nil, err
	}
	return &wxrelayv1.AuthorizationUrlResponse{Url: u, ExpireTime: timestamppb.New(exp)}, nil
}

// TokenStatuser reports a tenant's access token status; *token.Keeper is one.
type TokenStatuser interface {
	Status(ctx context.Context, tid tenant.ID) (token.Status, error)
}

// pushURL is where WeChat pushes t's messages: its own push URL, or, for
// a tenant of a component, the component's message URL for its appid.
func (s *tenantServer) pushURL(t *tenant.Tenant) string {
	if t.ComponentID != "" {
		return s.publicURL + "/wxc/" + string(t.ComponentID) + "/" + t.AppID
	}
	return s.publicURL + "/wx/" + string(t.ID)
}

func (s *tenantServer) CreateTenant(ctx context.Context, req *wxrelayv1.CreateTenantRequest) (*wxrelayv1.CreateTenantResponse, error) {
	if req.GetTenant() == nil {
		return nil, &tenant.FieldError{Field: "tenant", Reason: "is required"}
	}
	in := toDomainTenant(req.GetTenant())
	if req.GetTenant().GetState() != wxrelayv1.Tenant_STATE_UNSPECIFIED {
		in.State = fromProto(states, req.GetTenant().GetState())
	}
	var check func(context.Context, *tenant.Tenant) error
	if req.GetCheckCredentials() {
		if s.checkCredentials == nil {
			return nil, status.Error(codes.Unimplemented, "this relay checks no credentials")
		}
		check = func(ctx context.Context, t *tenant.Tenant) error {
			if t.ComponentID != "" {
				return &tenant.FieldError{Field: "check_credentials", Reason: "is for a tenant with its own app_secret: a component's tenant has none, and its authorization shows in its health"}
			}
			ctx, cancel := context.WithTimeout(ctx, credentialsCheckTime)
			defer cancel()
			if err := s.checkCredentials(ctx, t.AppID, t.Secrets.AppSecret); err != nil {
				return credentialsStatus(err).Err()
			}
			return nil
		}
	}
	t, creds, err := s.tenants.CreateChecked(ctx, in, check)
	if err != nil {
		return nil, err
	}
	if s.fetchToken != nil && t.ComponentID == "" {
		// token_status shows within a second, not at the keeper's next
		// scan: a wrong secret or a missing IP whitelist entry shows at
		// once, checked or not.
		s.fetchToken(t.ID)
	}
	return &wxrelayv1.CreateTenantResponse{
		Tenant:             s.toProtoTenant(t),
		ApiKey:             creds.APIKey,
		WebhookSecret:      creds.WebhookSecret,
		CredentialsChecked: check != nil,
	}, nil
}

// credentialsCheckTime bounds the call to WeChat that checks a new
// tenant's credentials.
const credentialsCheckTime = 10 * time.Second

func (s *tenantServer) GetTenant(ctx context.Context, req *wxrelayv1.GetTenantRequest) (*wxrelayv1.Tenant, error) {
	t, err := s.tenants.Get(ctx, tenant.ID(req.GetId()))
	if err != nil {
		return nil, err
	}
	out := s.toProtoTenant(t)
	if s.tokens != nil {
		st, err := s.tokens.Status(ctx, t.ID)
		if err != nil {
			return nil, err
		}
		out.TokenStatus = toProtoTokenStatus(st)
	}
	if out.Health, err = s.healthOf(ctx, t, true); err != nil {
		return nil, err
	}
	if t.ComponentID != "" && s.auths != nil {
		a, err := s.auths.FindAuthorization(ctx, t.ComponentID, t.AppID)
		if err != nil && !errors.Is(err, tenant.ErrAuthorizationNotFound) {
			return nil, err
		}
		out.Authorization = toProtoAuthorization(a)
	}
	return out, nil
}

func (s *tenantServer) ListTenants(ctx context.Context, req *wxrelayv1.ListTenantsRequest) (*wxrelayv1.ListTenantsResponse, error) {
	ts, next, err := s.tenants.List(ctx, int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	resp := &wxrelayv1.ListTenantsResponse{NextPageToken: next}
	for _, t := range ts {
		pt := s.toProtoTenant(t)
		if pt.Health, err = s.healthOf(ctx, t, false); err != nil {
			return nil, err
		}
		resp.Tenants = append(resp.Tenants, pt)
	}
	return resp, nil
}

func (s *tenantServer) UpdateTenant(ctx context.Context, req *wxrelayv1.UpdateTenantRequest) (*wxrelayv1.Tenant, error) {
	p, err := patchFromMask(req.GetTenant(), req.GetUpdateMask().GetPaths())
	if err != nil {
		return nil, err
	}
	t, err := s.tenants.Update(ctx, tenant.ID(req.GetId()), p)
	if err != nil {
		return nil, err
	}
	return s.toProtoTenant(t), nil
}

// patchFromMask picks the masked fields of in. Output-only fields in the mask
// are an error rather than silently ignored, so a client learns at once that
// its change did not happen.
func patchFromMask(in *wxrelayv1.Tenant, paths []string) (tenant.Patch, error) {
	var p tenant.Patch
	if in == nil {
		in = &wxrelayv1.Tenant{}
	}
	if len(paths) == 0 {
		return p, &tenant.FieldError{Field: "update_mask", Reason: "names no field to change"}
	}
	d := toDomainTenant(in)
	for _, path := range paths {
		switch path {
		case "display_name":
			p.DisplayName = &d.DisplayName
		case "appid":
			p.AppID = &d.AppID
		case "app_secret":
			p.AppSecret = &d.Secrets.AppSecret
		case "token":
			p.Token = &d.Secrets.Token
		case "encoding_aes_key":
			p.EncodingAESKey = &d.Secrets.EncodingAESKey
		case "original_id":
			p.OriginalID = &d.OriginalID
		case "encrypt_mode":
			p.EncryptMode = &d.EncryptMode
		case "data_format":
			p.DataFormat = &d.DataFormat
		case "webhook_url":
			p.WebhookURL = &d.WebhookURL
		case "reply_mode":
			p.ReplyMode = &d.ReplyMode
		case "ordered_delivery":
			p.OrderedDelivery = &d.OrderedDelivery
		case "ignore_reply_window":
			p.IgnoreReplyWindow = &d.IgnoreReplyWindow
		case "token_endpoint":
			p.TokenEndpoint = &d.TokenEndpoint
		case "state":
			st := fromProto(states, in.GetState())
			p.State = &st
		case "push_silence_alert":
			p.PushSilenceAlert = &d.PushSilenceAlert
		case "id", "push_url", "wechat_api_base_url", "create_time", "update_time", "token_status", "health":
			return p, &tenant.FieldError{Field: path, Reason: "is output only and cannot be changed"}
		default:
			// REST masks name the leaves of a message field.
			if head, _, ok := strings.Cut(path, "."); ok && (head == "token_status" || head == "health") {
				return p, &tenant.FieldError{Field: head, Reason: "is output only and cannot be changed"}
			}
			return p, &tenant.FieldError{Field: "update_mask", Reason: fmt.Sprintf("unknown field %q", strings.TrimSpace(path))}
		}
	}
	return p, nil
}

func (s *tenantServer) DeleteTenant(ctx context.Context, req *wxrelayv1.DeleteTenantRequest) (*emptypb.Empty, error) {
	if err := s.tenants.Delete(ctx, tenant.ID(req.GetId())); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

func (s *tenantServer) RotateApiKey(ctx context.Context, req *wxrelayv1.RotateApiKeyRequest) (*wxrelayv1.RotateApiKeyResponse, error) {
	key, err := s.tenants.RotateAPIKey(ctx, tenant.ID(req.GetId()))
	if err != nil {
		return nil, err
	}
	return &wxrelayv1.RotateApiKeyResponse{ApiKey: key}, nil
}

func (s *tenantServer) RotateWebhookSecret(ctx context.Context, req *wxrelayv1.RotateWebhookSecretRequest) (*wxrelayv1.RotateWebhookSecretResponse, error) {
	secret, err := s.tenants.RotateWebhookSecret(ctx, tenant.ID(req.GetId()))
	if err != nil {
		return nil, err
	}
	return &wxrelayv1.RotateWebhookSecretResponse{WebhookSecret: secret}, nil
}

// Finder looks across tenants, for Search; *store.TenantStore and
// *store.EventStore together are one.
type Finder interface {
	IDByAppID(ctx context.Context, appid string) (tenant.ID, error)
	SearchEvents(ctx context.Context, q string, limit int) ([]*relay.Event, error)
}

// maxSearchEvents is how many events Search answers at most.
const maxSearchEvents = 50

// Search finds the tenant whose id or appid is the query, and the events
// whose id or openid it is.
func (s *tenantServer) Search(ctx context.Context, req *wxrelayv1.SearchRequest) (*wxrelayv1.SearchResponse, error) {
	q := req.GetQuery()
	if q == "" {
		return nil, &tenant.FieldError{Field: "query", Reason: "is required: a tenant id, an appid, an event id or an openid"}
	}
	resp := &wxrelayv1.SearchResponse{}
	add := func(id tenant.ID) error {
		t, err := s.tenants.Get(ctx, id)
		if errors.Is(err, tenant.ErrNotFound) {
			return nil
		}
		if err == nil {
			pt := s.toProtoTenant(t)
			if pt.Health, err = s.healthOf(ctx, t, false); err == nil {
				resp.Tenants = append(resp.Tenants, pt)
			}
		}
		return err
	}
	if err := add(tenant.ID(q)); err != nil {
		return nil, err
	}
	if s.finder == nil {
		return resp, nil
	}
	if id, err := s.finder.IDByAppID(ctx, q); err == nil && id != tenant.ID(q) {
		if err := add(id); err != nil {
			return nil, err
		}
	} else if err != nil && !errors.Is(err, tenant.ErrNotFound) {
		return nil, err
	}
	evs, err := s.finder.SearchEvents(ctx, q, maxSearchEvents)
	if err != nil {
		return nil, err
	}
	for _, e := range evs {
		resp.Events = append(resp.Events, &wxrelayv1.SearchResponse_EventHit{TenantId: string(e.TenantID), Event: toProtoEvent(e)})
	}
	return resp, nil
}
