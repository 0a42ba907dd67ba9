package api

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	wxrelayv1 "github.com/wxrelay/wxrelay/api/gen/wxrelay/v1"
	"github.com/wxrelay/wxrelay/relay/calllog"
	"github.com/wxrelay/wxrelay/tenant"
)

// callServer implements wxrelayv1.CallServiceServer on a calllog.Store.
type callServer struct {
	wxrelayv1.UnimplementedCallServiceServer
	tenants *tenant.Service
	calls   calllog.Store
}

func (s *callServer) ListCalls(ctx context.Context, req *wxrelayv1.ListCallsRequest) (*wxrelayv1.ListCallsResponse, error) {
	tid := tenant.ID(req.GetId())
	// An unknown tenant is 404, as for its events, not an empty list.
	if _, err := s.tenants.Get(ctx, tid); err != nil {
		return nil, err
	}
	calls, next, err := calllog.List(ctx, s.calls, tid, int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	resp := &wxrelayv1.ListCallsResponse{NextPageToken: next}
	for _, c := range calls {
		pc := &wxrelayv1.Call{
			Time: timestamppb.New(c.Time), Method: c.Method, Path: c.Path, PathClass: c.PathClass,
			HttpStatus: int32(c.HTTPStatus), Errmsg: c.Errmsg, DurationUs: c.Duration.Microseconds(), Retried: c.Retried,
		}
		if c.HasErrcode {
			code := int32(c.Errcode)
			pc.Errcode = &code
		}
		resp.Calls = append(resp.Calls, pc)
	}
	return resp, nil
}
