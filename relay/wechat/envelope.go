package wechat

// Envelope is the outer body of a push in compatible or safe mode.
type Envelope struct {
	// Format is the body's format, recognised from the body itself.
	Format Format
	// ToUserName is the mini program's original ID (gh_…) as written
	// outside the ciphertext. msg_signature does not cover it, so trust the
	// decrypted message's ToUserName instead.
	ToUserName string
	// Encrypt is the base64 ciphertext of the inner message.
	Encrypt string
}

// ParseEnvelope extracts ToUserName and Encrypt from a safe-mode body (just
// those two fields) or a compatible-mode body (the plaintext fields plus
// Encrypt), in JSON or XML:
//
//	{"ToUserName":"gh_…","Encrypt":"…"}
//	<xml><ToUserName><![CDATA[gh_…]]></ToUserName><Encrypt><![CDATA[…]]></Encrypt></xml>
//
// It returns ErrMalformed if the body does not parse or has no Encrypt.
func ParseEnvelope(body []byte) (*Envelope, error) {
	if env, ok := parseEnvelopeFast(body); ok {
		return env, nil
	}
	obj, f, err := decodeObject(body)
	if err != nil {
		return nil, err
	}
	r := fields{obj: obj}
	env := &Envelope{Format: f, ToUserName: r.string("ToUserName"), Encrypt: r.string("Encrypt")}
	if r.err != nil {
		return nil, r.err
	}
	if env.Encrypt == "" {
		return nil, ErrNotEncrypted
	}
	return env, nil
}
