package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/textproto"
	"time"
	"unicode"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	wxrelayv1 "github.com/wxrelay/wxrelay/api/gen/wxrelay/v1"
	"github.com/wxrelay/wxrelay/relay/message"
	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/tenant"
)

// Messenger sends messages as tenants; *message.Service is one.
type Messenger interface {
	Send(ctx context.Context, tid tenant.ID, m message.Message) error
	SetTyping(ctx context.Context, tid tenant.ID, touser, command string) error
	UploadImage(ctx context.Context, tid tenant.ID, filename, contentType string, content []byte) (wechat.Media, error)
}

type messageServer struct {
	wxrelayv1.UnimplementedMessageServiceServer
	messages Messenger
	idem     message.IdempotencyStore // nil: keys refused
	now      func() time.Time
}

// IdempotencyHeader is the REST header that carries an idempotency key; the
// gateway passes it on as the gRPC metadata idempotencyMD.
const (
	IdempotencyHeader = "Idempotency-Key"
	idempotencyMD     = "idempotency-key"
)

// headerMatcher is the gateway's incoming header matcher: grpc-gateway's
// default, plus Idempotency-Key as the metadata idempotency-key.
func headerMatcher(key string) (string, bool) {
	if textproto.CanonicalMIMEHeaderKey(key) == IdempotencyHeader {
		return idempotencyMD, true
	}
	return runtime.DefaultHeaderMatcher(key)
}

// idempotencyKey returns the request's idempotency key: the field, or else
// the metadata (the REST header). Both set and different is an error rather
// than a silent choice, since one of them is then a client bug.
func idempotencyKey(ctx context.Context, req *wxrelayv1.SendMessageRequest) (string, error) {
	key := req.GetIdempotencyKey()
	var md string
	if vals := metadata.ValueFromIncomingContext(ctx, idempotencyMD); len(vals) > 0 {
		md = vals[0]
	}
	switch {
	case key != "" && md != "" && key != md:
		return "", badRequest("idempotency_key", "differs from the Idempotency-Key header; send one or make them equal")
	case key == "":
		key = md
	}
	if len(key) > message.MaxIdempotencyKeyLen {
		return "", badRequest("idempotency_key", fmt.Sprintf("is longer than %d bytes", message.MaxIdempotencyKeyLen))
	}
	for _, r := range key {
		if r > unicode.MaxASCII || !unicode.IsPrint(r) {
			return "", badRequest("idempotency_key", "must be printable ASCII")
		}
	}
	return key, nil
}

func badRequest(field, reason string) error {
	return &tenant.FieldError{Field: field, Reason: reason}
}

func (s *messageServer) SendMessage(ctx context.Context, req *wxrelayv1.SendMessageRequest) (*wxrelayv1.SendMessageResponse, error) {
	key, err := idempotencyKey(ctx, req)
	if err != nil {
		return nil, err
	}
	if key != "" && s.idem == nil {
		return nil, status.Error(codes.Unimplemented, "idempotency keys are not enabled on this server")
	}
	m := message.Message{ToUser: req.GetTouser(), MsgType: req.GetMsgtype()}
	if t := req.GetText(); t != nil {
		m.Text = &message.Text{Content: t.GetContent()}
	}
	if i := req.GetImage(); i != nil {
		m.Image = &message.Image{MediaID: i.GetMediaId()}
	}
	if l := req.GetLink(); l != nil {
		m.Link = &message.Link{Title: l.GetTitle(), Description: l.GetDescription(), URL: l.GetUrl(), ThumbURL: l.GetThumbUrl()}
	}
	if p := req.GetMiniprogrampage(); p != nil {
		m.MiniProgramPage = &message.MiniProgramPage{Title: p.GetTitle(), PagePath: p.GetPagepath(), ThumbMediaID: p.GetThumbMediaId()}
	}
	tid := tenant.ID(req.GetId())
	if key == "" {
		if err := s.messages.Send(ctx, tid, m); err != nil {
			return nil, err
		}
		return &wxrelayv1.SendMessageResponse{}, nil
	}
	return s.sendOnce(ctx, tid, key, m)
}

// sendOnce sends m under an idempotency key (issue 5). The first call with
// the key reserves it (a row keyed by tenant and key, so that of concurrent
// calls exactly one wins), sends, and records the outcome; a repeat within
// message.IdempotencyTTL with the same body gets that outcome without a
// second send. A repeat with another body is ALREADY_EXISTS (the key is
// taken, by a different request: retrying cannot help, and the client must
// pick a new key), and a repeat while the first call still runs is ABORTED
// (retry shortly). Both are 409 over REST.
//
// Only sends that reached WeChat are recorded: success, WeChat's refusal
// (errcode) and transport failures, after which WeChat may or may not have
// delivered, so a replay must not risk sending twice. Failures before the
// send (invalid body, unknown tenant, no access token) release the key, so
// that a retry with it may send.
func (s *messageServer) sendOnce(ctx context.Context, tid tenant.ID, key string, m message.Message) (*wxrelayv1.SendMessageResponse, error) {
	fp, err := message.Fingerprint(m)
	if err != nil {
		return nil, err
	}

	prev, err := s.idem.ReserveIdempotencyKey(ctx, tid, key, fp, s.now(), message.IdempotencyTTL)
	if errors.Is(err, message.ErrKeyTaken) {
		switch {
		case prev.Fingerprint != fp:
			return nil, status.Error(codes.AlreadyExists, "idempotency key already used for a different message body within 24 hours; use a new key")
		case !prev.Done:
			return nil, status.Error(codes.Aborted, "a request with this idempotency key is in progress; retry shortly")
		}
		return replay(prev.Outcome)
	} else if err != nil {
		return nil, err
	}

	sendErr := s.messages.Send(ctx, tid, m)
	// Record even if the caller has gone away: the send happened.
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if sendErr != nil && !reachedWeChat(sendErr) {
		if err := s.idem.ReleaseIdempotencyKey(bg, tid, key); err != nil {
			slog.ErrorContext(ctx, "release idempotency key", "tenant", tid, "err", err)
		}
		return nil, sendErr
	}
	var o message.Outcome
	if sendErr != nil {
		st, _ := wechatStatus(sendErr)
		o.Code = int32(st.Code())
		if apiErr, ok := errors.AsType[*wechat.APIError](sendErr); ok {
			o.Errcode, o.Errmsg = apiErr.Code, apiErr.Msg
		}
		if o.Status, err = proto.Marshal(st.Proto()); err != nil {
			return nil, err
		}
	}
	if err := s.idem.FinishIdempotencyKey(bg, tid, key, o, s.now()); err != nil {
		// The send's own answer stands; the key stays pending until it
		// expires, so a repeat is refused (ABORTED) rather than sent twice.
		slog.ErrorContext(ctx, "record idempotency outcome", "tenant", tid, "err", err)
	}
	if sendErr != nil {
		return nil, sendErr
	}
	return &wxrelayv1.SendMessageResponse{}, nil
}

// reachedWeChat reports whether a send error came from the send call
// itself, which WeChat may have acted on, rather than from before it.
func reachedWeChat(err error) bool {
	if errors.Is(err, message.ErrToken) {
		return false
	}
	_, isAPI := errors.AsType[*wechat.APIError](err)
	_, isTransport := errors.AsType[*wechat.TransportError](err)
	return isAPI || isTransport
}

// replay returns a recorded outcome as the first call returned it.
func replay(o message.Outcome) (*wxrelayv1.SendMessageResponse, error) {
	if o.Code == int32(codes.OK) {
		return &wxrelayv1.SendMessageResponse{}, nil
	}
	var sp spb.Status
	if err := proto.Unmarshal(o.Status, &sp); err == nil && sp.GetCode() == o.Code {
		return nil, status.ErrorProto(&sp)
	}
	// Recorded by the compatible API, which keeps WeChat's answer only:
	// answered as this API answers WeChat's refusals.
	if st, ok := wechatStatus(&wechat.APIError{Code: o.Errcode, Msg: o.Errmsg}); ok && o.Errcode != 0 {
		return nil, st.Err()
	}
	return nil, status.Error(codes.Code(o.Code), fmt.Sprintf("WeChat refused the call: errcode %d: %s", o.Errcode, o.Errmsg))
}

func (s *messageServer) SetTyping(ctx context.Context, req *wxrelayv1.SetTypingRequest) (*wxrelayv1.SetTypingResponse, error) {
	if err := s.messages.SetTyping(ctx, tenant.ID(req.GetId()), req.GetTouser(), req.GetCommand()); err != nil {
		return nil, err
	}
	return &wxrelayv1.SetTypingResponse{}, nil
}

func (s *messageServer) UploadMedia(ctx context.Context, req *wxrelayv1.UploadMediaRequest) (*wxrelayv1.Media, error) {
	m, err := s.messages.UploadImage(ctx, tenant.ID(req.GetId()), req.GetFilename(), req.GetContentType(), req.GetContent())
	if err != nil {
		return nil, err
	}
	out := &wxrelayv1.Media{Type: m.Type, MediaId: m.MediaID}
	if secs := m.CreatedAt.Unix(); !m.CreatedAt.IsZero() && secs > 0 && secs <= math.MaxUint32 {
		out.CreatedAt = uint32(secs)
	}
	return out, nil
}
