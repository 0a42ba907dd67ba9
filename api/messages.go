package api

import (
	"context"
	"math"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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
}

func (s *messageServer) SendMessage(ctx context.Context, req *wxrelayv1.SendMessageRequest) (*wxrelayv1.SendMessageResponse, error) {
	if req.GetIdempotencyKey() != "" {
		return nil, status.Error(codes.Unimplemented, "idempotency_key is not supported yet")
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
	if err := s.messages.Send(ctx, tenant.ID(req.GetId()), m); err != nil {
		return nil, err
	}
	return &wxrelayv1.SendMessageResponse{}, nil
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
