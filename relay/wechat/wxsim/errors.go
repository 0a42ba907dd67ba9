package wxsim

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
)

// The errcodes wxsim answers. Those of protocol §6 and §7 are what WeChat
// documents for these endpoints; the others (41005, 43001, 43002, 44001,
// 44004, 40005, 40008, 40009) come from WeChat's global return-code list,
// where it has a code that fits a case the endpoint docs leave open.
const (
	codeSystemError       = -1
	codeInvalidCredential = 40001 // superseded, invalidated or unknown token
	codeInvalidGrantType  = 40002
	codeInvalidOpenID     = 40003
	codeInvalidMediaType  = 40004
	codeInvalidFileType   = 40005
	codeInvalidMediaID    = 40007
	codeInvalidMsgType    = 40008
	codeInvalidImageSize  = 40009
	codeInvalidAppID      = 40013
	codeInvalidToken      = 40014 // malformed token
	codeInvalidSecret     = 40125
	codeIPNotWhitelisted  = 40164
	codeTokenMissing      = 41001
	codeAppIDMissing      = 41002
	codeSecretMissing     = 41004
	codeMediaMissing      = 41005
	codeTokenExpired      = 42001
	codeRequireGET        = 43001
	codeRequirePOST       = 43002
	codeEmptyMedia        = 44001
	codeEmptyPostData     = 44002
	codeEmptyContent      = 44004
	codeContentTooLong    = 45002
	codeDailyQuota        = 45009
	codeOutOfWindow       = 45015
	codeOutOfResponses    = 45047
	codeBadTypingCommand  = 45072
	codeDataFormat        = 47001
	codeInvalidRID        = 76001 // openapi/rid/get: no such rid for this app

	// The open platform's (protocol §9: 61004, 61005, 61006, 61023 and
	// 45009 are documented there; 61003, 61010 and 61011 come from its
	// return-code list, for cases the endpoint docs leave open).
	codeNotAuthorized       = 61003 // the authorizer has not authorized this component
	codeComponentIP         = 61004 // the caller's IP is not on the component's whitelist
	codeTicketExpired       = 61005
	codeTicketInvalid       = 61006
	codeCodeExpired         = 61010 // an authorization or pre-auth code that expired or was never issued
	codeInvalidComponent    = 61011
	codeInvalidRefreshToken = 61023
)

// errmsg is the text WeChat pairs with code, as seen in the wild (protocol
// §6). Clients must match on errcode only; the text is for people.
func errmsg(code int) string {
	switch code {
	case codeSystemError:
		return "system error"
	case codeInvalidCredential:
		return "invalid credential, access_token is invalid or not latest"
	case codeInvalidGrantType:
		return "invalid grant_type"
	case codeInvalidOpenID:
		return "invalid openid"
	case codeInvalidMediaType:
		return "invalid media type"
	case codeInvalidFileType:
		return "invalid file type"
	case codeInvalidMediaID:
		return "invalid media_id"
	case codeInvalidMsgType:
		return "invalid message type"
	case codeInvalidImageSize:
		return "invalid image size"
	case codeInvalidAppID:
		return "invalid appid"
	case codeInvalidToken:
		return "invalid access_token"
	case codeInvalidSecret:
		return "invalid appsecret"
	case codeIPNotWhitelisted:
		return "invalid ip, not in whitelist" // the real text names the IP; see notWhitelisted
	case codeTokenMissing:
		return "access_token missing"
	case codeAppIDMissing:
		return "appid missing"
	case codeSecretMissing:
		return "appsecret missing"
	case codeMediaMissing:
		return "media data missing"
	case codeTokenExpired:
		return "access_token expired"
	case codeRequireGET:
		return "require GET method"
	case codeRequirePOST:
		return "require POST method"
	case codeEmptyMedia:
		return "empty media data"
	case codeEmptyPostData:
		return "empty post data"
	case codeEmptyContent:
		return "empty content"
	case codeContentTooLong:
		return "content size out of limit"
	case codeDailyQuota:
		return "reach max api daily quota limit"
	case codeOutOfWindow:
		return "response out of time limit or subscription is canceled"
	case codeOutOfResponses:
		return "out of response count limit"
	case codeBadTypingCommand:
		return "invalid command"
	case codeDataFormat:
		return "data format error"
	case codeInvalidRID:
		return "rid not found"
	case codeNotAuthorized:
		return "component is not authorized by this account"
	case codeComponentIP:
		return "access clientip is not registered"
	case codeTicketExpired:
		return "component ticket is expired"
	case codeTicketInvalid:
		return "component ticket is invalid"
	case codeCodeExpired:
		return "code is expired"
	case codeInvalidComponent:
		return "invalid component"
	case codeInvalidRefreshToken:
		return "refresh_token is invalid"
	}
	return "unknown error"
}

// apiError is an answer in WeChat's error shape. Endpoint handlers return it
// as their error; the server turns it into the body and the call record.
type apiError struct {
	code int
	msg  string // errmsg without the rid suffix; empty means errmsg(code)
	note string // why wxsim answered so: kept in the call record, never sent
}

// fail returns the WeChat error code, noting why for the call record.
func fail(code int, note string) error {
	return &apiError{code: code, note: note}
}

// failf is fail with a formatted note.
func failf(code int, format string, args ...any) error {
	return &apiError{code: code, note: fmt.Sprintf(format, args...)}
}

func (e *apiError) message() string {
	if e.msg != "" {
		return e.msg
	}
	return errmsg(e.code)
}

func (e *apiError) Error() string {
	if e.note == "" {
		return fmt.Sprintf("errcode %d: %s", e.code, e.message())
	}
	return fmt.Sprintf("errcode %d: %s (%s)", e.code, e.message(), e.note)
}

// result is WeChat's {"errcode","errmsg"} answer, for errors and for the
// plain "ok" of send and typing.
type result struct {
	Errcode int    `json:"errcode"`
	Errmsg  string `json:"errmsg"`
}

// okResult is the success answer of send and typing (protocol §7).
func okResult() result { return result{Errcode: 0, Errmsg: "ok"} }

// body renders e as WeChat does: every errmsg ends in a request id,
// " rid: xxxxxxxx-xxxxxxxx-xxxxxxxx" (protocol §6), which is exactly why
// clients must not compare errmsg text.
func (e *apiError) body(rid string) result {
	return result{Errcode: e.code, Errmsg: e.message() + " rid: " + rid}
}

// newRID returns a request id in WeChat's shape: three groups of eight
// lower-case hex digits.
func newRID() string {
	var b [12]byte
	rand.Read(b[:]) // never fails since Go 1.24
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:16] + "-" + h[16:]
}
