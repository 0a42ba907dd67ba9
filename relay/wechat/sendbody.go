package wechat

// SendMessage is the body of a customer-service send, POST
// /cgi-bin/message/custom/send (protocol §7): it encodes to exactly
// WeChat's JSON. The relay builds it from tenants' requests and the
// simulator decodes what it receives into it, so both speak one shape.
// Fields WeChat does not read (businessid, a card's appid) are left out.
type SendMessage struct {
	ToUser          string               `json:"touser"`
	MsgType         string               `json:"msgtype"`
	Text            *SendText            `json:"text,omitempty"`
	Image           *SendImage           `json:"image,omitempty"`
	Link            *SendLink            `json:"link,omitempty"`
	MiniProgramPage *SendMiniProgramPage `json:"miniprogrampage,omitempty"`
}

// SendText is the payload of msgtype "text".
type SendText struct {
	Content string `json:"content"`
}

// SendImage is the payload of msgtype "image"; MediaID comes from
// media/upload.
type SendImage struct {
	MediaID string `json:"media_id"`
}

// SendLink is the payload of msgtype "link".
type SendLink struct {
	Title       string `json:"title"`
	Description string `json:"description"`
	URL         string `json:"url"`
	ThumbURL    string `json:"thumb_url"`
}

// SendMiniProgramPage is the payload of msgtype "miniprogrampage", a card
// that opens a page of the mini program; ThumbMediaID comes from
// media/upload.
type SendMiniProgramPage struct {
	Title        string `json:"title"`
	PagePath     string `json:"pagepath"`
	ThumbMediaID string `json:"thumb_media_id"`
}
