package api

import (
	"context"
	"strconv"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	wxrelayv1 "github.com/wxrelay/wxrelay/api/gen/wxrelay/v1"
	"github.com/wxrelay/wxrelay/relay/calllog"
	"github.com/wxrelay/wxrelay/tenant"
)

// CallRecorder takes call records; *calllog.Recorder is one.
type CallRecorder interface{ Record(calllog.Call) }

// recordedMethods are the calls of the send API that go into the tenant's
// call records beside those of the WeChat-compatible API, with the REST
// path each is listed under and its path class.
var recordedMethods = map[string]struct{ suffix, class string }{
	wxrelayv1.MessageService_SendMessage_FullMethodName: {"/messages:send", "send"},
	wxrelayv1.MessageService_SetTyping_FullMethodName:   {"/typing", "typing"},
	wxrelayv1.MessageService_UploadMedia_FullMethodName: {"/media", "media"},
}

// callRecordInterceptor records each call of the send API, REST or gRPC,
// with what it was answered: the HTTP status its gRPC code maps to, and
// WeChat's errcode when WeChat refused it (or the relay refused it for the
// reply window, in WeChat's stead). It runs outside errorInterceptor, so it
// sees the status the caller gets; calls refused for their credentials are
// not the tenant's, and are not recorded.
func callRecordInterceptor(rec CallRecorder) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		m, ok := recordedMethods[info.FullMethod]
		scoped, isScoped := req.(tenantScoped)
		if rec == nil || !ok || !isScoped {
			return handler(ctx, req)
		}
		start := time.Now()
		resp, err := handler(ctx, req)
		st := status.Convert(err)
		if st.Code() == codes.Unauthenticated || st.Code() == codes.PermissionDenied {
			return resp, err
		}
		c := calllog.Call{
			TenantID: tenant.ID(scoped.GetId()), Time: start.UTC(), Method: "POST",
			Path: "/v1/tenants/" + scoped.GetId() + m.suffix, PathClass: m.class,
			HTTPStatus: runtime.HTTPStatusFromCode(st.Code()), Duration: time.Since(start),
		}
		if err == nil {
			c.HasErrcode, c.Errmsg = true, "ok"
		} else {
			c.Errmsg = st.Message()
			for _, d := range st.Details() {
				if info, ok := d.(*errdetails.ErrorInfo); ok {
					if code, err := strconv.Atoi(info.GetMetadata()["errcode"]); err == nil {
						c.Errcode, c.HasErrcode = code, true
					}
				}
			}
		}
		rec.Record(c)
		return resp, err
	}
}
