package wechat

import (
	"fmt"
	"strconv"
)

// Success is the acknowledgement body WeChat recommends. It (or an empty
// body) needs no encryption, even in safe mode. WeChat shows the user an
// error if a push is not answered within 5 seconds, so acknowledge first
// and do the work afterwards.
const Success = "success"

// TransferReply returns the transfer_customer_service passive reply to m,
// which hands the conversation to WeChat's web customer-service tool. The
// reply goes back to m's sender from m's recipient. Send it for user
// messages only, never for events, and seal it with [SealReply] (or
// [Receiver.Reply]) outside plaintext mode.
func TransferReply(m *Message, f Format, createTime int64) []byte {
	return encodeFields(f,
		str("ToUserName", m.FromUserName),
		str("FromUserName", m.ToUserName),
		num("CreateTime", createTime),
		str("MsgType", "transfer_customer_service"),
	)
}

// EncryptedReply is a passive reply in compatible or safe mode.
type EncryptedReply struct {
	Encrypt      string // base64 ciphertext of the reply
	MsgSignature string // Sign(token, TimeStamp, Nonce, Encrypt)
	TimeStamp    int64  // Unix seconds, written as a number
	Nonce        string // by convention the push's nonce
}

// SealReply encrypts reply, an XML or JSON passive reply, and signs it:
// Encrypt under a fresh random prefix, then MsgSignature over token,
// timestamp, nonce and Encrypt. Encode the result in the configured format.
// It returns ErrTooLarge for a reply of 1 GiB or more.
func SealReply(c *Cipher, token string, reply []byte, timestamp int64, nonce string) (*EncryptedReply, error) {
	return SealReplyWithRandom(c, token, newRandom(), reply, timestamp, nonce)
}

// SealReplyWithRandom is SealReply with a caller-chosen random prefix, for
// reproducible tests.
func SealReplyWithRandom(c *Cipher, token string, random [RandomLen]byte, reply []byte, timestamp int64, nonce string) (*EncryptedReply, error) {
	enc, err := c.EncryptWithRandom(random, reply)
	if err != nil {
		return nil, err
	}
	return &EncryptedReply{
		Encrypt:      enc,
		MsgSignature: Sign(token, formatInt(timestamp), nonce, enc),
		TimeStamp:    timestamp,
		Nonce:        nonce,
	}, nil
}

// Encode writes r as WeChat documents it, TimeStamp a number, the rest
// strings:
//
//	{"Encrypt":"…","MsgSignature":"…","TimeStamp":1713424427,"Nonce":"415670741"}
//	<xml><Encrypt><![CDATA[…]]></Encrypt><MsgSignature><![CDATA[…]]></MsgSignature><TimeStamp>1713424427</TimeStamp><Nonce><![CDATA[415670741]]></Nonce></xml>
func (r *EncryptedReply) Encode(f Format) []byte {
	return encodeFields(f,
		str("Encrypt", r.Encrypt),
		str("MsgSignature", r.MsgSignature),
		num("TimeStamp", r.TimeStamp),
		str("Nonce", r.Nonce),
	)
}

// ParseEncryptedReply reads an encrypted passive reply in JSON or XML, the
// way WeChat would. TimeStamp and Nonce may be numbers or strings, since
// SDKs differ. It returns ErrMalformed if the body does not parse or has no
// Encrypt.
func ParseEncryptedReply(body []byte) (*EncryptedReply, error) {
	obj, _, err := decodeObject(body)
	if err != nil {
		return nil, err
	}
	r := fields{obj: obj}
	reply := &EncryptedReply{
		Encrypt:      r.string("Encrypt"),
		MsgSignature: r.string("MsgSignature"),
		TimeStamp:    r.int64("TimeStamp"),
		Nonce:        r.string("Nonce"),
	}
	if r.err != nil {
		return nil, r.err
	}
	if reply.Encrypt == "" {
		return nil, fmt.Errorf("%w: no Encrypt field", ErrMalformed)
	}
	return reply, nil
}

// Open verifies r's MsgSignature under token and decrypts the reply inside.
// It returns ErrBadSignature, or the errors of [Cipher.Decrypt].
func (r *EncryptedReply) Open(c *Cipher, token string) ([]byte, error) {
	if !VerifySignature(r.MsgSignature, token, strconv.FormatInt(r.TimeStamp, 10), r.Nonce, r.Encrypt) {
		return nil, ErrBadSignature
	}
	return c.Decrypt(r.Encrypt)
}
