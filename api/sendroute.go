package api

import (
	"context"
	"io"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	wxrelayv1 "github.com/wxrelay/wxrelay/api/gen/wxrelay/v1"
)

// sendHandler serves POST /v1/tenants/{id}/messages:send, the API's hot
// path, without the gateway: it decodes the body as the gateway would,
// and calls the method through the very same unary interceptors (auth,
// the NUL check, error mapping, logging, metrics) directly, with the
// headers the gateway would pass as metadata. The gateway's generic
// route matching, metadata annotation and response forwarding, and the
// in-process channel's cloning of request and response, cost about a
// sixth of the relay's CPU per send (docs/benchmarks.md, "Sending").
func (s *Server) sendHandler(chain grpc.UnaryServerInterceptor, ms *messageServer) http.Handler {
	info := &grpc.UnaryServerInfo{Server: ms, FullMethod: wxrelayv1.MessageService_SendMessage_FullMethodName}
	call := func(ctx context.Context, req any) (any, error) {
		return ms.SendMessage(ctx, req.(*wxrelayv1.SendMessageRequest))
	}
	decode := protojson.UnmarshalOptions{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body) // limitBody has read and capped it
		if err != nil {
			writeStatusProto(w, http.StatusBadRequest, status.New(codes.InvalidArgument, "could not read request body"))
			return
		}
		req := &wxrelayv1.SendMessageRequest{}
		if err := decode.Unmarshal(body, req); err != nil {
			writeStatusProto(w, http.StatusBadRequest, status.New(codes.InvalidArgument, err.Error()))
			return
		}
		req.Id = r.PathValue("id") // the path wins, as in the gateway
		// As the gateway's annotateContext: Authorization as itself, the
		// rest through the header matcher.
		md := metadata.MD{}
		if vs := r.Header.Values("Authorization"); len(vs) > 0 {
			md.Set("authorization", vs...)
		}
		for k, vs := range r.Header {
			if key, ok := headerMatcher(k); ok {
				md.Append(key, vs...)
			}
		}
		resp, err := chain(metadata.NewIncomingContext(r.Context(), md), req, info, call)
		if err != nil {
			st := status.Convert(err)
			writeStatusProto(w, runtime.HTTPStatusFromCode(st.Code()), st)
			return
		}
		writeProto(w, http.StatusOK, resp.(*wxrelayv1.SendMessageResponse))
	})
}
