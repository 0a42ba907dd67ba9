package wechat

import (
	"crypto/sha1" // WeChat's signature scheme is SHA-1; we cannot choose another.
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"slices"
)

// Sign returns WeChat's signature over parts: the lower-case hex SHA-1 of
// the parts sorted byte-wise and joined with no separator. It computes both
// signature (token, timestamp, nonce) and msg_signature (token, timestamp,
// nonce, Encrypt). parts is not modified.
func Sign(parts ...string) string {
	sorted := slices.Clone(parts)
	slices.Sort(sorted)
	h := sha1.New()
	for _, p := range sorted {
		io.WriteString(h, p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// VerifySignature reports whether signature equals Sign(parts...). The
// comparison takes constant time, so response timing does not reveal how
// much of a forged signature was right.
func VerifySignature(signature string, parts ...string) bool {
	return subtle.ConstantTimeCompare([]byte(signature), []byte(Sign(parts...))) == 1
}

// VerifyURL checks the GET request WeChat sends when a push URL is saved,
// whose query holds signature, timestamp, nonce and echostr, and returns the
// echostr to write back verbatim as the whole response body. Safe mode does
// not change this request: echostr is never encrypted for mini programs.
//
// It returns ErrInvalidConfig for an empty token, ErrBadSignature if the
// signature does not match and ErrMalformed if echostr is missing.
func VerifyURL(token string, query url.Values) (echostr string, err error) {
	if token == "" {
		return "", fmt.Errorf("%w: empty token", ErrInvalidConfig)
	}
	if !VerifySignature(query.Get("signature"), token, query.Get("timestamp"), query.Get("nonce")) {
		return "", ErrBadSignature
	}
	echostr = query.Get("echostr")
	if echostr == "" {
		return "", fmt.Errorf("%w: no echostr", ErrMalformed)
	}
	return echostr, nil
}

// URLVerificationQuery returns the query of the GET request WeChat sends to
// check a push URL: the WeChat side of [VerifyURL].
func URLVerificationQuery(token string, timestamp int64, nonce, echostr string) url.Values {
	ts := formatInt(timestamp)
	return url.Values{
		"signature": {Sign(token, ts, nonce)},
		"timestamp": {ts},
		"nonce":     {nonce},
		"echostr":   {echostr},
	}
}
