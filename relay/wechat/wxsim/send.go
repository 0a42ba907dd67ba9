package wxsim

import (
	"bytes"
	"net/http"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat"
)

// maxTextBytes is the longest text.content accepted. WeChat documents no
// limit for mini programs; community reports put official-account
// customer-service text at about 2048 UTF-8 bytes, answered with 45002
// beyond (protocol §8, [COMM]).
const maxTextBytes = 2048

// The send body types are the protocol package's; tests may decode
// Call.Body into Message. Fields WeChat does not read are ignored, as
// WeChat ignores them.
type (
	Message         = wechat.SendMessage
	Text            = wechat.SendText
	Image           = wechat.SendImage
	Link            = wechat.SendLink
	MiniProgramPage = wechat.SendMiniProgramPage
)

// send serves POST /cgi-bin/message/custom/send and its /business/ twin.
// The token is checked first, then the body, then the injected per-openid
// rejections (45015, 45047), which stand in for the 48-hour window and the
// reply quota of protocol §7.
func (s *Server) send(r *http.Request, rec *Call) (any, error) {
	appid, err := s.authorize(r, rec)
	if err != nil {
		return nil, err
	}
	var m Message
	if err := readJSON(r, rec, &m); err != nil {
		return nil, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.validate(appid, &m, s.now()); err != nil {
		return nil, err
	}
	if code := s.faults.rejected[m.ToUser]; code != 0 {
		return nil, failf(code, "injected for openid %q", m.ToUser)
	}
	return okResult(), nil
}

// validate checks a send body the way WeChat does for each msgtype. Media
// ids must be ones this app uploaded within the last three days. s.mu must
// be held.
func (s *Server) validate(appid string, m *Message, now time.Time) error {
	if m.ToUser == "" {
		return fail(codeInvalidOpenID, "touser is empty")
	}
	switch m.MsgType {
	case "text":
		var content string
		if m.Text != nil {
			content = m.Text.Content
		}
		switch {
		case content == "":
			return fail(codeEmptyContent, "text.content is empty")
		case len(content) > maxTextBytes:
			return failf(codeContentTooLong, "text.content is %d bytes, over %d", len(content), maxTextBytes)
		}
	case "image":
		var id string
		if m.Image != nil {
			id = m.Image.MediaID
		}
		if _, ok := s.findMedia(appid, id, now); !ok {
			return failf(codeInvalidMediaID, "image.media_id %q is not live media of %s", id, appid)
		}
	case "link":
		var l Link
		if m.Link != nil {
			l = *m.Link
		}
		if err := required("link", "title", l.Title, "description", l.Description, "url", l.URL, "thumb_url", l.ThumbURL); err != nil {
			return err
		}
	case "miniprogrampage":
		var p MiniProgramPage
		if m.MiniProgramPage != nil {
			p = *m.MiniProgramPage
		}
		if err := required("miniprogrampage", "title", p.Title, "pagepath", p.PagePath); err != nil {
			return err
		}
		if _, ok := s.findMedia(appid, p.ThumbMediaID, now); !ok {
			return failf(codeInvalidMediaID, "miniprogrampage.thumb_media_id %q is not live media of %s", p.ThumbMediaID, appid)
		}
	default:
		return failf(codeInvalidMsgType, "msgtype %q", m.MsgType)
	}
	return nil
}

// required answers 47001 naming the first empty field; nameValues
// alternates field names and values.
func required(object string, nameValues ...string) error {
	for i := 0; i+1 < len(nameValues); i += 2 {
		if nameValues[i+1] == "" {
			return failf(codeDataFormat, "%s.%s is empty", object, nameValues[i])
		}
	}
	return nil
}

// htmlEscaped reports whether a JSON text spells <, > or & as \u003c,
// \u003e or \u0026. That is what Go's encoding/json does unless told
// SetEscapeHTML(false), and WeChat has been reported to show such escapes
// literally, breaking <a> links in text (protocol §8). WeChat's JSON parser
// may well accept them today, so wxsim does too, and only records the fact
// for tests to assert on. The scan steps over whole escape sequences, so an
// escaped backslash followed by "u003c" does not count.
func htmlEscaped(data []byte) bool {
	for i := 0; i+1 < len(data); i++ {
		if data[i] != '\\' {
			continue
		}
		if data[i+1] != 'u' {
			i++ // a two-byte escape such as \\ or \"
			continue
		}
		if i+6 <= len(data) {
			code := data[i+2 : i+6]
			if bytes.EqualFold(code, []byte("003c")) || bytes.EqualFold(code, []byte("003e")) || bytes.EqualFold(code, []byte("0026")) {
				return true
			}
		}
		i += 5
	}
	return false
}

// typingRequest is the body of the typing endpoints.
type typingRequest struct {
	ToUser  string `json:"touser"`
	Command string `json:"command"`
}

// typing serves POST /cgi-bin/message/custom/typing and its /business/
// twin: "Typing" or "CancelTyping", anything else 45072 (protocol §7).
// WeChat's 45080 (no interaction in the last 30 s) and 45081 (already
// typing) are not simulated.
func (s *Server) typing(r *http.Request, rec *Call) (any, error) {
	if _, err := s.authorize(r, rec); err != nil {
		return nil, err
	}
	var req typingRequest
	if err := readJSON(r, rec, &req); err != nil {
		return nil, err
	}
	switch {
	case req.ToUser == "":
		return nil, fail(codeInvalidOpenID, "touser is empty")
	case req.Command != "Typing" && req.Command != "CancelTyping":
		return nil, failf(codeBadTypingCommand, "command %q", req.Command)
	}
	return okResult(), nil
}
