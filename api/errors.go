package api

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/tenant"
)

// codeOf maps domain sentinels to gRPC codes; REST derives the HTTP status
// from the code (grpc-gateway's HTTPStatusFromCode). The first match wins.
var codeOf = []struct {
	err  error
	code codes.Code
}{
	{tenant.ErrInvalid, codes.InvalidArgument},
	{tenant.ErrNotFound, codes.NotFound},
	{tenant.ErrComponentNotFound, codes.NotFound},
	{relay.ErrNotFound, codes.NotFound},
	{tenant.ErrConflict, codes.AlreadyExists},
	{tenant.ErrUnauthenticated, codes.Unauthenticated},
	{tenant.ErrForbidden, codes.PermissionDenied},
	{tenant.ErrDisabled, codes.FailedPrecondition},
	{tenant.ErrNotAuthorized, codes.FailedPrecondition},
	{wechat.ErrMediaTooLarge, codes.InvalidArgument},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
	{context.Canceled, codes.Canceled},
}

// errorInterceptor turns every error a handler returns into a gRPC status.
// Clients get a message that is safe to show; the full chain goes to the log
// only for internal errors, whose detail is nobody else's business.
func errorInterceptor(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		if err != nil {
			return nil, clipStatus(toStatus(ctx, log, info.FullMethod, err))
		}
		return resp, nil
	}
}

func toStatus(ctx context.Context, log *slog.Logger, method string, err error) error {
	if _, ok := status.FromError(err); ok {
		return err // already a status, made on purpose by a handler
	}
	if fes, ok := errors.AsType[tenant.FieldErrors](err); ok {
		st := status.New(codes.InvalidArgument, fes.Error())
		violations := make([]*errdetails.BadRequest_FieldViolation, len(fes))
		for i, fe := range fes {
			violations[i] = &errdetails.BadRequest_FieldViolation{Field: fe.Field, Description: fe.Reason}
		}
		if d, derr := st.WithDetails(&errdetails.BadRequest{FieldViolations: violations}); derr == nil {
			st = d
		}
		return st.Err()
	}
	var fe *tenant.FieldError
	if errors.As(err, &fe) {
		st := status.New(codes.InvalidArgument, fe.Error())
		if d, derr := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: fe.Field, Description: fe.Reason},
		}}); derr == nil {
			st = d
		}
		return st.Err()
	}
	if ce, ok := errors.AsType[*tenant.ConflictError](err); ok && ce.Holder != "" {
		// A script onboarding many tenants can read the holder without
		// parsing the message.
		st := status.New(codes.AlreadyExists, ce.Msg)
		if d, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: "APPID_TAKEN", Domain: "wxrelay",
			Metadata: map[string]string{"appid": ce.AppID, "tenant_id": string(ce.Holder)}}); derr == nil {
			st = d
		}
		return st.Err()
	}
	if rr, ok := errors.AsType[*relay.RecoveryRunningError](err); ok {
		st := status.New(codes.AlreadyExists, rr.Error())
		if d, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: "RECOVERY_RUNNING", Domain: "wxrelay",
			Metadata: map[string]string{"recovery_id": rr.Running.ID}}); derr == nil {
			st = d
		}
		return st.Err()
	}
	if st, ok := windowStatus(err); ok {
		return st.Err()
	}
	if st, ok := wechatStatus(err); ok {
		return st.Err()
	}
	for _, c := range codeOf {
		if errors.Is(err, c.err) {
			return status.Error(c.code, clientMessage(err, c.err))
		}
	}
	log.ErrorContext(ctx, "internal error", "method", method, "err", err)
	return status.Error(codes.Internal, "internal error")
}

// clientMessage returns the error's own text when it is the sentinel or a
// conflict/auth explanation the domain wrote for clients, else the sentinel.
func clientMessage(err, sentinel error) string {
	if ce, ok := errors.AsType[*tenant.ConflictError](err); ok {
		return ce.Msg
	}
	switch sentinel {
	case tenant.ErrConflict, tenant.ErrNotFound, tenant.ErrComponentNotFound, relay.ErrNotFound:
		return err.Error()
	}
	return sentinel.Error()
}

// maxErrorText is the most bytes of an error message, or of a field
// violation's description, that a caller is answered. Messages may quote
// what the caller sent (an enum value, a name); a caller must not be able
// to have megabytes echoed back, or written to the log with the answer.
const maxErrorText = 300

// clipStatus cuts the message of the status err, and the descriptions of
// its field violations, to maxErrorText bytes.
func clipStatus(err error) error {
	st, ok := status.FromError(err)
	if !ok || err == nil {
		return err
	}
	p := st.Proto()
	changed := false
	if len(p.Message) > maxErrorText {
		p.Message, changed = clipText(p.Message), true
	}
	for i, d := range p.Details {
		var br errdetails.BadRequest
		if d.UnmarshalTo(&br) != nil {
			continue
		}
		cut := false
		for _, v := range br.FieldViolations {
			if len(v.Description) > maxErrorText {
				v.Description, cut = clipText(v.Description), true
			}
		}
		if cut {
			if a, err := anypb.New(&br); err == nil {
				p.Details[i], changed = a, true
			}
		}
	}
	if !changed {
		return err
	}
	return status.FromProto(p).Err()
}

// clipText cuts s to maxErrorText bytes on a character boundary, saying so.
func clipText(s string) string {
	const more = "… (cut)"
	end := maxErrorText - len(more)
	for end > 0 && !utf8.RuneStart(s[end]) {
		end--
	}
	return strings.ToValidUTF8(s[:end], "") + more
}
