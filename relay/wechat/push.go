package wechat

import (
	"bytes"
	"fmt"
	"net/url"
	"strings"
)

// PushRequest is a push as WeChat sends it: POST to the push URL with Query
// appended, Body as the request body, labelled ContentType.
type PushRequest struct {
	Query       url.Values
	Body        []byte
	ContentType string
}

// pushQueryOrder is the order WeChat writes the push query parameters in.
var pushQueryOrder = []string{"signature", "timestamp", "nonce", "openid", "encrypt_type", "msg_signature"}

// RawQuery encodes Query in the order WeChat uses, which url.Values.Encode
// (sorting by key) does not keep.
func (r *PushRequest) RawQuery() string {
	var b strings.Builder
	for _, k := range pushQueryOrder {
		for _, v := range r.Query[k] {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(url.QueryEscape(k) + "=" + url.QueryEscape(v))
		}
	}
	return b.String()
}

// Pusher plays WeChat: it encodes pushes for one mini program as WeChat
// would send them to a server configured with the same Token, Mode and key.
// It is the counterpart of [Receiver], for the simulator and the tests.
type Pusher struct {
	Token  string
	Mode   Mode
	Cipher *Cipher // required unless Mode is ModePlaintext
}

// Push encodes msg, an inner message in XML or JSON (see [TextMessage] and
// the other builders), as WeChat pushes it in p.Mode:
//
//   - plaintext: query signature, timestamp, nonce; the body is msg.
//   - compatible: query signature, timestamp, nonce, openid, encrypt_type=aes,
//     msg_signature; the body is msg with an Encrypt field added.
//   - safe: the same query; the body holds only ToUserName and Encrypt.
//
// The format of the body and its Content-Type follow msg's format; openid is
// msg's FromUserName. It returns ErrInvalidConfig for an unusable Pusher and
// ErrMalformed if msg does not decode as a [Message].
func (p *Pusher) Push(msg []byte, timestamp int64, nonce string) (*PushRequest, error) {
	return p.PushWithRandom(newRandom(), msg, timestamp, nonce)
}

// PushWithRandom is Push with a caller-chosen random frame prefix, for
// reproducible tests. The prefix is unused in plaintext mode.
func (p *Pusher) PushWithRandom(random [RandomLen]byte, msg []byte, timestamp int64, nonce string) (*PushRequest, error) {
	if err := checkEndpoint(p.Token, p.Mode, p.Cipher); err != nil {
		return nil, err
	}
	m, err := DecodeMessage(msg)
	if err != nil {
		return nil, err
	}
	ts := formatInt(timestamp)
	req := &PushRequest{
		Query: url.Values{
			"signature": {Sign(p.Token, ts, nonce)},
			"timestamp": {ts},
			"nonce":     {nonce},
		},
		ContentType: m.Format.ContentType(),
	}
	if p.Mode == ModePlaintext {
		req.Body = bytes.Clone(msg)
		return req, nil
	}

	enc, err := p.Cipher.EncryptWithRandom(random, msg)
	if err != nil {
		return nil, err
	}
	req.Query.Set("openid", m.FromUserName)
	req.Query.Set("encrypt_type", "aes")
	req.Query.Set("msg_signature", Sign(p.Token, ts, nonce, enc))
	if p.Mode == ModeSafe {
		req.Body = encodeFields(m.Format, str("ToUserName", m.ToUserName), str("Encrypt", enc))
		return req, nil
	}
	if req.Body, err = appendEncrypt(m.Format, msg, enc); err != nil {
		return nil, err
	}
	return req, nil
}

// appendEncrypt adds an Encrypt field at the end of msg's object or root
// element, which is where WeChat's compatible-mode bodies carry it.
func appendEncrypt(f Format, msg []byte, enc string) ([]byte, error) {
	var b bytes.Buffer
	if f == FormatJSON {
		// DecodeMessage has accepted msg as an object with a MsgType,
		// so it ends in '}' and is not empty.
		body := bytes.TrimRight(msg, " \t\r\n")
		b.Write(body[:len(body)-1])
		b.WriteByte(',')
		writeJSONField(&b, str("Encrypt", enc))
		b.WriteByte('}')
		return b.Bytes(), nil
	}
	i := bytes.LastIndex(msg, []byte("</"))
	if i < 0 {
		return nil, fmt.Errorf("%w: no closing root tag", ErrMalformed)
	}
	b.Write(msg[:i])
	writeXMLField(&b, str("Encrypt", enc))
	b.Write(msg[i:])
	return b.Bytes(), nil
}
