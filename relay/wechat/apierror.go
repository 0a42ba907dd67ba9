package wechat

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// The errcodes WeChat answers that the relay tells apart (protocol §6 and
// §7). WeChat has many more; any of them arrives as an *APIError too.
const (
	CodeSystemError       = -1    // "system error": transient, retry
	CodeInvalidCredential = 40001 // token superseded, invalidated or unknown; on token calls, a wrong secret
	CodeInvalidOpenID     = 40003 // touser is not a user of this mini program
	CodeInvalidMediaType  = 40004 // upload type is not image, or the bytes are not an image
	CodeInvalidMediaID    = 40007 // media_id unknown, expired or another app's
	CodeInvalidAppID      = 40013 // appid unknown
	CodeInvalidToken      = 40014 // access_token malformed
	CodeInvalidSecret     = 40125 // wrong AppSecret
	CodeIPNotWhitelisted  = 40164 // caller's IP is not in the account's whitelist
	CodeTokenExpired      = 42001 // access_token expired
	CodeEmptyPostData     = 44002 // empty body
	CodeContentTooLong    = 45002 // text content too long
	CodeDailyQuota        = 45009 // daily API quota (or force_refresh quota) used up
	CodeMinuteQuota       = 45011 // per-minute API quota used up: slow down
	CodeOutOfWindow       = 45015 // the user's 48-hour window is closed
	CodeOutOfResponses    = 45047 // the window's reply quota is used up
	CodeBadTypingCommand  = 45072 // typing command is neither Typing nor CancelTyping
	CodeDataFormat        = 47001 // body is not the JSON WeChat expects
	CodeUnauthorized      = 48001 // the account may not call this API
)

// APIError is an answer in which WeChat refused a call: any answer with a
// non-zero errcode. WeChat reached a decision, so retrying the same call is
// pointless unless Code says otherwise (CodeSystemError, CodeMinuteQuota,
// or a token error after refreshing the token).
//
// Compare Code, never Msg: WeChat appends a request id to errmsg
// (" rid: xxxxxxxx-xxxxxxxx-xxxxxxxx", or " hint: [xxxx]" on older
// answers), so the same error never has the same text twice.
type APIError struct {
	Code int    // errcode, never 0
	Msg  string // errmsg exactly as WeChat sent it, request id included
}

func (e *APIError) Error() string {
	if e.Msg == "" {
		return fmt.Sprintf("wechat: errcode %d", e.Code)
	}
	return fmt.Sprintf("wechat: errcode %d: %s", e.Code, e.Msg)
}

// Message returns Msg without WeChat's request-id suffix: the part that
// stays the same from one answer to the next, such as "invalid appsecret".
func (e *APIError) Message() string {
	msg, _ := splitErrmsg(e.Msg)
	return msg
}

// RequestID returns the request id WeChat appended to Msg (the value after
// "rid: ", or inside "hint: [...]"), which WeChat's support asks for, or ""
// if there is none.
func (e *APIError) RequestID() string {
	_, id := splitErrmsg(e.Msg)
	return id
}

// splitErrmsg cuts the request-id suffixes off an errmsg, returning the
// message and the last suffix's id.
func splitErrmsg(s string) (msg, id string) {
	msg = " " + strings.TrimRight(s, " ") // so a message that is only a suffix still matches
	found := false
	for {
		var rest string
		if i := strings.LastIndex(msg, " rid: "); i >= 0 && !strings.Contains(msg[i+len(" rid: "):], " ") {
			rest, msg = msg[i+len(" rid: "):], msg[:i]
		} else if i := strings.LastIndex(msg, " hint: ["); i >= 0 && strings.HasSuffix(msg, "]") && !strings.Contains(msg[i+len(" hint: ["):], " ") {
			rest, msg = msg[i+len(" hint: ["):len(msg)-1], msg[:i]
		} else {
			break
		}
		if !found {
			id, found = rest, true
		}
		msg = strings.TrimRight(msg, " ")
	}
	return strings.TrimPrefix(msg, " "), id
}

// Errcode returns the Code of the *APIError in err's chain, or 0 if there
// is none: the call succeeded, or failed without WeChat deciding anything.
func Errcode(err error) int {
	if e, ok := errors.AsType[*APIError](err); ok {
		return e.Code
	}
	return 0
}

// IsTokenInvalid reports whether err says the access token a call used is
// no good (CodeInvalidCredential, CodeInvalidToken or CodeTokenExpired):
// the relay's signal to refresh the token, unless another caller already
// has, and retry once (protocol §6). It is meant for calls made with an
// access token; on Token and StableToken, 40001 means a wrong secret.
func IsTokenInvalid(err error) bool {
	switch Errcode(err) {
	case CodeInvalidCredential, CodeInvalidToken, CodeTokenExpired:
		return true
	}
	return false
}

// TransportError means a call got no answer from WeChat in WeChat's shape:
// the request could not be sent or its answer not read (Err, often a
// *url.Error, which errors.Is matches against context.DeadlineExceeded and
// context.Canceled), the HTTP status was not 200 (WeChat answers its errors
// with 200), or the body was not the JSON object the API documents. Unlike an
// *APIError, WeChat decided nothing, and a send may or may not have been
// delivered.
//
// The access token and the secret never appear in its text: they travel in
// the URL's query, which is redacted.
type TransportError struct {
	Op         string // method and API path, such as "POST /cgi-bin/message/custom/send"
	StatusCode int    // HTTP status of the answer, or 0 if none was received
	Err        error  // what went wrong; nil for a bare non-200 status
}

func (e *TransportError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("wechat: %s: HTTP status %d %s", e.Op, e.StatusCode, http.StatusText(e.StatusCode))
	}
	return fmt.Sprintf("wechat: %s: %v", e.Op, e.Err)
}

func (e *TransportError) Unwrap() error { return e.Err }
