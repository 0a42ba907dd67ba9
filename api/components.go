package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"

	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	wxrelayv1 "github.com/wxrelay/wxrelay/api/gen/wxrelay/v1"
	"github.com/wxrelay/wxrelay/relay/health"
	"github.com/wxrelay/wxrelay/relay/token"
	"github.com/wxrelay/wxrelay/tenant"
)

// componentServer implements wxrelayv1.ComponentServiceServer on
// tenant.ComponentService.
type componentServer struct {
	wxrelayv1.UnimplementedComponentServiceServer
	components *tenant.ComponentService
	auths      AuthorizationReader    // nil: none listed
	tokens     ComponentTokenStatuser // nil: no token_status
	health     ComponentHealthChecker // nil: no health
	publicURL  string                 // no trailing slash
}

// ComponentHealthChecker computes components' health;
// *health.ComponentChecker is one.
type ComponentHealthChecker interface {
	Check(ctx context.Context, c *tenant.Component) (health.Health, error)
	Latest(id tenant.ComponentID) (health.Health, bool)
}

// AuthorizationReader reads components' authorizations;
// *store.ComponentStore is one.
type AuthorizationReader interface {
	FindAuthorization(ctx context.Context, cid tenant.ComponentID, appid string) (*tenant.Authorization, error)
	// AuthorizerPage lists up to limit of cid's authorizers in appid
	// order after the appid after, with their tenants.
	AuthorizerPage(ctx context.Context, cid tenant.ComponentID, after string, limit int) ([]tenant.AuthorizerEntry, error)
}

func (s *componentServer) ListAuthorizers(ctx context.Context, req *wxrelayv1.ListAuthorizersRequest) (*wxrelayv1.ListAuthorizersResponse, error) {
	// The contract shows the list unpaged: a client that asks for no page
	// size gets the largest page, so that one without paging sees every
	// authorizer of all but the largest agencies.
	size, after, err := tenant.ParsePage(cmp.Or(int(req.GetPageSize()), tenant.MaxPageSize), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	c, err := s.components.Get(ctx, tenant.ComponentID(req.GetId()))
	if err != nil {
		return nil, err
	}
	resp := &wxrelayv1.ListAuthorizersResponse{}
	if s.auths == nil {
		return resp, nil
	}
	entries, err := s.auths.AuthorizerPage(ctx, c.ID, after, size+1)
	if err != nil {
		return nil, err
	}
	if len(entries) > size {
		entries = entries[:size]
		resp.NextPageToken = tenant.NextPageToken(entries[size-1].AppID)
	}
	for _, a := range entries {
		resp.Authorizers = append(resp.Authorizers, &wxrelayv1.ListAuthorizersResponse_Authorizer{Appid: a.AppID,
			State: authorizationState(a.State), FuncInfo: funcInfo(a.FuncInfo), AuthorizeTime: timestamppb.New(a.AuthorizeTime),
			TenantId: string(a.TenantID)})
	}
	return resp, nil
}

func authorizationState(s tenant.AuthorizationState) wxrelayv1.Authorization_State {
	switch s {
	case tenant.AuthorizationAuthorized:
		return wxrelayv1.Authorization_AUTHORIZATION_AUTHORIZED
	case tenant.AuthorizationRevoked:
		return wxrelayv1.Authorization_AUTHORIZATION_REVOKED
	}
	return wxrelayv1.Authorization_AUTHORIZATION_PENDING
}

func funcInfo(ids []int) []int32 {
	out := make([]int32, len(ids))
	for i, id := range ids {
		out[i] = int32(id)
	}
	return out
}

// toProtoAuthorization is a component tenant's authorization, PENDING
// while none is known.
func toProtoAuthorization(a *tenant.Authorization) *wxrelayv1.Authorization {
	if a == nil {
		return &wxrelayv1.Authorization{State: wxrelayv1.Authorization_AUTHORIZATION_PENDING}
	}
	out := &wxrelayv1.Authorization{State: authorizationState(a.State), FuncInfo: funcInfo(a.FuncInfo), AuthorizeTime: timestamppb.New(a.AuthorizeTime)}
	if !a.RevokeTime.IsZero() {
		out.RevokeTime = timestamppb.New(a.RevokeTime)
	}
	return out
}

// ComponentTokenStatuser reports a component's token status; the
// components' token.KeeperOf is one.
type ComponentTokenStatuser interface {
	Status(ctx context.Context, id tenant.ComponentID) (token.Status, error)
}

func (s *componentServer) CreateComponent(ctx context.Context, req *wxrelayv1.CreateComponentRequest) (*wxrelayv1.CreateComponentResponse, error) {
	in := req.GetComponent()
	if in == nil {
		return nil, &tenant.FieldError{Field: "component", Reason: "is required"}
	}
	c, err := s.components.Create(ctx, &tenant.Component{
		DisplayName: in.GetDisplayName(),
		AppID:       in.GetComponentAppid(),
		Secrets:     tenant.ComponentSecrets{Secret: in.GetComponentSecret(), Token: in.GetToken(), EncodingAESKey: in.GetEncodingAesKey()},
	})
	if err != nil {
		return nil, err
	}
	return &wxrelayv1.CreateComponentResponse{Component: s.toProto(c)}, nil
}

func (s *componentServer) GetComponent(ctx context.Context, req *wxrelayv1.GetComponentRequest) (*wxrelayv1.Component, error) {
	c, err := s.components.Get(ctx, tenant.ComponentID(req.GetId()))
	if err != nil {
		return nil, err
	}
	out := s.toProto(c)
	if s.tokens != nil {
		st, err := s.tokens.Status(ctx, c.ID)
		if err != nil {
			return nil, err
		}
		out.TokenStatus = toProtoTokenStatus(st)
	}
	if s.health != nil {
		h, err := s.health.Check(ctx, c)
		if err != nil {
			return nil, err
		}
		out.Health = toProtoHealth(h)
	}
	return out, nil
}

func (s *componentServer) ListComponents(ctx context.Context, req *wxrelayv1.ListComponentsRequest) (*wxrelayv1.ListComponentsResponse, error) {
	cs, next, err := s.components.List(ctx, int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	resp := &wxrelayv1.ListComponentsResponse{NextPageToken: next}
	for _, c := range cs {
		out := s.toProto(c)
		if s.health != nil {
			// The latest computed, or, for one not computed yet, now.
			h, ok := s.health.Latest(c.ID)
			if !ok {
				if h, err = s.health.Check(ctx, c); err != nil {
					return nil, err
				}
			}
			out.Health = toProtoHealth(h)
		}
		resp.Components = append(resp.Components, out)
	}
	return resp, nil
}

// UpdateComponent applies the masked fields. Output-only fields in the
// mask are an error, so that a client learns at once that its change did
// not happen.
func (s *componentServer) UpdateComponent(ctx context.Context, req *wxrelayv1.UpdateComponentRequest) (*wxrelayv1.Component, error) {
	in := req.GetComponent()
	if in == nil {
		in = &wxrelayv1.Component{}
	}
	paths := req.GetUpdateMask().GetPaths()
	if len(paths) == 0 {
		return nil, &tenant.FieldError{Field: "update_mask", Reason: "names no field to change"}
	}
	var changes []func(*tenant.Component)
	for _, path := range paths {
		switch path {
		case "display_name":
			changes = append(changes, func(c *tenant.Component) { c.DisplayName = in.GetDisplayName() })
		case "component_appid":
			changes = append(changes, func(c *tenant.Component) { c.AppID = in.GetComponentAppid() })
		case "component_secret":
			changes = append(changes, func(c *tenant.Component) { c.Secrets.Secret = in.GetComponentSecret() })
		case "token":
			changes = append(changes, func(c *tenant.Component) { c.Secrets.Token = in.GetToken() })
		case "encoding_aes_key":
			changes = append(changes, func(c *tenant.Component) { c.Secrets.EncodingAESKey = in.GetEncodingAesKey() })
		default:
			return nil, &tenant.FieldError{Field: path, Reason: "cannot be changed (output only or unknown)"}
		}
	}
	c, err := s.components.Update(ctx, tenant.ComponentID(req.GetId()), func(c *tenant.Component) error {
		for _, change := range changes {
			change(c)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.toProto(c), nil
}

func (s *componentServer) DeleteComponent(ctx context.Context, req *wxrelayv1.DeleteComponentRequest) (*emptypb.Empty, error) {
	if err := s.components.Delete(ctx, tenant.ComponentID(req.GetId())); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// toProto is c as the API shows it: no secret, no ticket value.
func (s *componentServer) toProto(c *tenant.Component) *wxrelayv1.Component {
	out := &wxrelayv1.Component{
		Id:             string(c.ID),
		DisplayName:    c.DisplayName,
		ComponentAppid: c.AppID,
		AuthEventUrl:   s.publicURL + "/wxc/" + string(c.ID) + "/events",
		MessageUrl:     s.publicURL + "/wxc/" + string(c.ID) + "/$APPID$",
		CreateTime:     timestamppb.New(c.CreateTime),
		UpdateTime:     timestamppb.New(c.UpdateTime),
	}
	if !c.Ticket.ReceiveTime.IsZero() {
		out.Ticket = &wxrelayv1.Component_Ticket{ReceiveTime: timestamppb.New(c.Ticket.ReceiveTime)}
	}
	return out
}

// noComponents is the store of a server given no ComponentService: it
// holds none, and takes none.
type noComponents struct{}

func (noComponents) CreateComponent(context.Context, *tenant.Component) error {
	return errors.New("api: no component store configured")
}
func (noComponents) FindComponent(_ context.Context, id tenant.ComponentID) (*tenant.Component, error) {
	return nil, fmt.Errorf("component %s: %w", id, tenant.ErrComponentNotFound)
}
func (noComponents) FindComponents(context.Context, tenant.ComponentID, int) ([]*tenant.Component, error) {
	return nil, nil
}
func (noComponents) UpdateComponent(_ context.Context, c *tenant.Component) error {
	return fmt.Errorf("component %s: %w", c.ID, tenant.ErrComponentNotFound)
}
func (noComponents) DeleteComponent(_ context.Context, id tenant.ComponentID) error {
	return fmt.Errorf("component %s: %w", id, tenant.ErrComponentNotFound)
}
func (noComponents) SaveTicket(_ context.Context, id tenant.ComponentID, _ tenant.Ticket) error {
	return fmt.Errorf("component %s: %w", id, tenant.ErrComponentNotFound)
}
