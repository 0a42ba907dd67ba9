package wechat

// The builders in this file write inner messages the way WeChat does, field
// for field and in its order (strings as CDATA in XML, integers bare), for
// the simulator and the tests. Hand the result to [Pusher.Push].

// Header holds the fields every push starts with.
type Header struct {
	ToUserName   string // the mini program's original ID, gh_…
	FromUserName string // the user's openid
	CreateTime   int64  // Unix seconds
}

func (h Header) fields(msgType string) []field {
	return []field{
		str("ToUserName", h.ToUserName),
		str("FromUserName", h.FromUserName),
		num("CreateTime", h.CreateTime),
		str("MsgType", msgType),
	}
}

// TextMessage returns a text message: Content and MsgId.
func TextMessage(f Format, h Header, content string, msgID int64) []byte {
	return encodeFields(f, append(h.fields("text"),
		str("Content", content),
		num("MsgId", msgID),
	)...)
}

// ImageMessage returns an image message: PicUrl (a CDN URL), MediaId (for
// /cgi-bin/media/get) and MsgId.
func ImageMessage(f Format, h Header, picURL, mediaID string, msgID int64) []byte {
	return encodeFields(f, append(h.fields("image"),
		str("PicUrl", picURL),
		str("MediaId", mediaID),
		num("MsgId", msgID),
	)...)
}

// MiniProgramPage is the card a user sends from a mini-program page.
type MiniProgramPage struct {
	Title        string
	AppID        string // sent as AppId
	PagePath     string
	ThumbURL     string // sent as ThumbUrl
	ThumbMediaID string // sent as ThumbMediaId
}

// MiniProgramPageMessage returns a miniprogrampage message: MsgId and the
// card's fields.
func MiniProgramPageMessage(f Format, h Header, page MiniProgramPage, msgID int64) []byte {
	return encodeFields(f, append(h.fields("miniprogrampage"),
		num("MsgId", msgID),
		str("Title", page.Title),
		str("AppId", page.AppID),
		str("PagePath", page.PagePath),
		str("ThumbUrl", page.ThumbURL),
		str("ThumbMediaId", page.ThumbMediaID),
	)...)
}

// EnterTempSessionEvent returns the user_enter_tempsession event WeChat
// pushes when a user opens a customer-service session; sessionFrom is the
// button's session-from. Events carry no MsgId.
func EnterTempSessionEvent(f Format, h Header, sessionFrom string) []byte {
	return encodeFields(f, append(h.fields("event"),
		str("Event", "user_enter_tempsession"),
		str("SessionFrom", sessionFrom),
	)...)
}
