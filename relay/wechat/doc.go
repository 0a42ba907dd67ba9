// Package wechat speaks the wire protocol of WeChat mini-program message
// pushes: the signatures, the AES "safe mode" cipher, the push envelopes and
// messages in XML or JSON, and the passive replies WeChat accepts.
//
// It is a leaf package: it imports only the standard library, so both the
// relay and the WeChat simulator can use it, and it can be fuzzed on its own.
//
// # Receiving
//
// WeChat first checks a push URL with a signed GET, answered by [VerifyURL].
// Every push after that is a signed POST; [Receiver.Receive] authenticates
// it for the configured [Mode], decrypts it when needed and decodes the
// [Message]:
//
//	rcv := &wechat.Receiver{Token: token, Mode: wechat.ModeSafe, Cipher: c, OriginalID: "gh_..."}
//	m, err := rcv.Receive(r.URL.Query(), body)
//	// store m under m.DedupKey(), forward m.Data, answer wechat.Success
//
// The pieces underneath ([Sign], [Cipher], [ParseEnvelope], [DecodeMessage],
// [SealReply]) are exported for callers that need them one at a time.
//
// # Sending
//
// [Pusher] is the WeChat side of the same exchange: it turns an inner
// message, built for instance with [TextMessage] or [EnterTempSessionEvent],
// into the query, body and Content-Type WeChat would send, so a simulator
// and the tests can drive a Receiver exactly as WeChat does.
//
// # Calling WeChat
//
// [Client] is the other direction: the relay calling WeChat's API for its
// tenants' mini programs. It fetches access tokens ([Client.Token],
// [Client.StableToken]), sends customer-service messages whose JSON bodies
// pass through untouched ([Client.SendCustomMessage]; build them with
// [EncodeJSON], which keeps <, > and & as they are), sets typing and uploads
// images. A refusal by WeChat is an [*APIError], matched by errcode
// ([Errcode], [IsTokenInvalid]); WeChat out of reach is a
// [*TransportError], whose text never shows a secret or access token.
//
// # Formats
//
// The mini-program console offers XML or JSON bodies. The format of a body
// is always recognised from its first non-blank byte ([DetectFormat]), never
// from Content-Type, which WeChat has been seen to get wrong. XML and JSON
// pushes of the same message decode to the same canonical JSON in
// [Message.Data], so tenants see one shape whatever the console says.
//
// The protocol is described in docs/protocol.md of the wxrelay
// repository; the test vectors of its section 4 are in this package's tests.
package wechat
