// Package message sends customer-service messages and typing indicators to
// a tenant's users through WeChat (protocol §7), with the access token the
// token.Keeper keeps for the tenant.
//
// Bodies are validated before anything is sent, so that a malformed one is
// refused with the field it gets wrong rather than with WeChat's terse
// errcode, and encoded with wechat.EncodeJSON, which leaves <, > and &
// unescaped (protocol §8). A call WeChat refuses for its token
// (wechat.IsTokenInvalid) is retried once with a refreshed token.
//
// With WithReplyWindows, a send WeChat would certainly refuse for the
// user's reply window is refused first, with a *WindowClosedError (see
// window.go).
//
// Errors are returned as they come, wrapped: a *tenant.FieldError for bad
// input, tenant.ErrNotFound, tenant.ErrDisabled, a *wechat.APIError or *wechat.TransportError
// from the send, and errors wrapping ErrToken when no access token could be
// had (they wrap the Keeper's error in turn). Mapping them to client codes
// is the API's business.
package message

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/tenant"
)

// ErrToken wraps failures to obtain the tenant's access token: the error
// chain also holds the Keeper's error (token.ErrBackoff,
// token.ErrForceLimited, a *wechat.APIError such as 40125 wrong secret, a
// *wechat.TransportError).
var ErrToken = errors.New("message: no access token for the tenant")

// Message types WeChat's send accepts from mini programs.
const (
	TypeText            = "text"
	TypeImage           = "image"
	TypeLink            = "link"
	TypeMiniProgramPage = "miniprogrampage"
)

// The send body is WeChat's own, defined once in the protocol package.
type (
	Message         = wechat.SendMessage
	Text            = wechat.SendText
	Image           = wechat.SendImage
	Link            = wechat.SendLink
	MiniProgramPage = wechat.SendMiniProgramPage
)

// Tokens hands out tenants' access tokens; *token.Keeper is one.
type Tokens interface {
	Token(ctx context.Context, tid tenant.ID) (string, error)
	Refresh(ctx context.Context, tid tenant.ID, failed string) (string, error)
}

// WeChat makes the calls; *wechat.Client is one.
type WeChat interface {
	SendCustomMessage(ctx context.Context, accessToken string, body []byte) error
	SetTyping(ctx context.Context, accessToken, touser, command string) error
	UploadTempMedia(ctx context.Context, accessToken, mediaType, filename, contentType string, content io.Reader) (wechat.Media, error)
}

// Service sends messages. It is safe for concurrent use.
type Service struct {
	tokens  Tokens
	wx      WeChat
	windows *windowCheck // nil: no reply-window check
}

// NewService returns a Service getting tokens from tokens and calling wx.
func NewService(tokens Tokens, wx WeChat) *Service {
	return &Service{tokens: tokens, wx: wx}
}

// Send validates m, checks the user's reply window (WithReplyWindows) and
// sends m as tenant tid. Only fields of m's msgtype
// are sent: a payload object of another type is dropped, as WeChat would
// ignore it.
func (s *Service) Send(ctx context.Context, tid tenant.ID, m Message) error {
	if err := Validate(&m); err != nil {
		return err
	}
	body, err := wechat.EncodeJSON(onlyType(m))
	if err != nil {
		return err
	}
	release, err := s.windows.reserve(ctx, tid, m.ToUser)
	if err != nil {
		return err
	}
	err = s.withToken(ctx, tid, func(tok string) error {
		return s.wx.SendCustomMessage(ctx, tok, body)
	})
	if err != nil {
		// WeChat did not take the message (or may not have: a transport
		// failure is given the benefit of the doubt), so it used no quota.
		release()
	}
	return err
}

// ReserveReply checks tenant tid's reply window to touser for a send made
// some other way than Send (the WeChat-compatible API forwards the
// caller's own body) and counts the send against it: a *WindowClosedError
// for a send WeChat would certainly refuse. Call release if WeChat did not
// take the message, so that it uses no quota. Without WithReplyWindows it
// reserves nothing.
func (s *Service) ReserveReply(ctx context.Context, tid tenant.ID, touser string) (release func(), err error) {
	return s.windows.reserve(ctx, tid, touser)
}

// SetTyping shows (wechat.Typing) or hides (wechat.CancelTyping) "typing…"
// to touser.
func (s *Service) SetTyping(ctx context.Context, tid tenant.ID, touser, command string) error {
	if touser == "" {
		return fieldErr("touser", "is required")
	}
	if command != wechat.Typing && command != wechat.CancelTyping {
		return fieldErr("command", "must be %q or %q", wechat.Typing, wechat.CancelTyping)
	}
	return s.withToken(ctx, tid, func(tok string) error {
		return s.wx.SetTyping(ctx, tok, touser, command)
	})
}

// ImageField names the uploaded file in errors: the multipart part WeChat
// and the REST API take it in.
const ImageField = "media"

// UploadImage uploads content as tenant tid's temporary image media
// (protocol §7). It must be a JPEG, PNG, GIF or BMP image, judged by its
// bytes as WeChat judges them, of at most wechat.MaxUploadBytes; otherwise
// the error is a *tenant.FieldError naming ImageField and WeChat is not
// called.
func (s *Service) UploadImage(ctx context.Context, tid tenant.ID, filename, contentType string, content []byte) (wechat.Media, error) {
	if err := ValidateImage(content); err != nil {
		return wechat.Media{}, err
	}
	var m wechat.Media
	err := s.withToken(ctx, tid, func(tok string) error {
		var err error
		m, err = s.wx.UploadTempMedia(ctx, tok, wechat.MediaTypeImage, filename, contentType, bytes.NewReader(content))
		return err
	})
	return m, err
}

// ValidateImage checks that content is an image WeChat takes: not empty,
// at most wechat.MaxUploadBytes, and sniffed (http.DetectContentType) as
// JPEG, PNG, GIF or BMP. Errors are *tenant.FieldError naming ImageField.
func ValidateImage(content []byte) error {
	switch {
	case len(content) == 0:
		return fieldErr(ImageField, "is empty")
	case len(content) > wechat.MaxUploadBytes:
		return fieldErr(ImageField, "is %d bytes, over the limit of %d bytes (10 MiB)", len(content), wechat.MaxUploadBytes)
	}
	switch ct := http.DetectContentType(content); ct {
	case "image/jpeg", "image/png", "image/gif", "image/bmp":
		return nil
	default:
		return fieldErr(ImageField, "is %s, not a JPEG, PNG, GIF or BMP image", ct)
	}
}

// withToken calls call with tid's token and, if WeChat refuses that token,
// once more with a refreshed one (protocol §6).
func (s *Service) withToken(ctx context.Context, tid tenant.ID, call func(token string) error) error {
	tok, err := s.tokens.Token(ctx, tid)
	if err != nil {
		return tokenErr(err)
	}
	err = call(tok)
	if !wechat.IsTokenInvalid(err) {
		return err
	}
	tok, rerr := s.tokens.Refresh(ctx, tid, tok)
	if rerr != nil {
		return tokenErr(rerr)
	}
	return call(tok)
}

func tokenErr(err error) error {
	if errors.Is(err, tenant.ErrNotFound) || errors.Is(err, tenant.ErrDisabled) || errors.Is(err, tenant.ErrNotAuthorized) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrToken, err)
}

// Validate checks that m names a recipient and a known msgtype with its
// payload and the fields WeChat requires of it. Errors are
// *tenant.FieldError naming the field as clients send it ("link.url").
func Validate(m *Message) error {
	if m.ToUser == "" {
		return fieldErr("touser", "is required")
	}
	var missing string
	switch m.MsgType {
	case "":
		return fieldErr("msgtype", "is required: one of text, image, link, miniprogrampage")
	case TypeText:
		switch {
		case m.Text == nil:
			return fieldErr("text", "is required when msgtype is text")
		case m.Text.Content == "":
			missing = "text.content"
		}
	case TypeImage:
		switch {
		case m.Image == nil:
			return fieldErr("image", "is required when msgtype is image")
		case m.Image.MediaID == "":
			missing = "image.media_id"
		}
	case TypeLink:
		l := m.Link
		switch {
		case l == nil:
			return fieldErr("link", "is required when msgtype is link")
		case l.Title == "":
			missing = "link.title"
		case l.Description == "":
			missing = "link.description"
		case l.URL == "":
			missing = "link.url"
		case l.ThumbURL == "":
			missing = "link.thumb_url"
		}
	case TypeMiniProgramPage:
		p := m.MiniProgramPage
		switch {
		case p == nil:
			return fieldErr("miniprogrampage", "is required when msgtype is miniprogrampage")
		case p.Title == "":
			missing = "miniprogrampage.title"
		case p.PagePath == "":
			missing = "miniprogrampage.pagepath"
		case p.ThumbMediaID == "":
			missing = "miniprogrampage.thumb_media_id"
		}
	default:
		return fieldErr("msgtype", "%q is not one of text, image, link, miniprogrampage", m.MsgType)
	}
	if missing != "" {
		return fieldErr(missing, "is required")
	}
	return nil
}

// onlyType returns m with only the payload of its msgtype.
func onlyType(m Message) Message {
	out := Message{ToUser: m.ToUser, MsgType: m.MsgType}
	switch m.MsgType {
	case TypeText:
		out.Text = m.Text
	case TypeImage:
		out.Image = m.Image
	case TypeLink:
		out.Link = m.Link
	case TypeMiniProgramPage:
		out.MiniProgramPage = m.MiniProgramPage
	}
	return out
}

func fieldErr(field, format string, args ...any) error {
	return &tenant.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
