package wxapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/wxrelay/wxrelay/tenant"
)

// AllowedPrefixes are the WeChat API paths the relay forwards: the server
// API of mini programs (and of official accounts, whose SDK modules the
// same tenants use). Anything else is answered 404 without reaching WeChat,
// so that the relay cannot be used to reach WeChat's other hosts' paths or
// anything it was not built to pass on.
var AllowedPrefixes = []string{"/cgi-bin/", "/wxa/", "/sns/", "/datacube/", "/customservice/", "/shop/", "/product/", "/union/", "/wxaapi/"}

// class is what kind of call a path is, for the rules applied to it and
// the metrics' path_class label (a handful of values whatever the paths).
type class string

const (
	classNone   class = ""       // not forwarded
	classToken  class = "token"  // served by the relay
	classSend   class = "send"   // customer-service sends: the reply window applies
	classTyping class = "typing" // customer-service typing
	classMedia  class = "media"  // media uploads: streamed
	classOther  class = "other"  // everything else allowed
)

func classify(path string) class {
	switch path {
	case "/cgi-bin/token", "/cgi-bin/stable_token":
		return classToken
	case "/cgi-bin/message/custom/send", "/cgi-bin/message/custom/business/send":
		return classSend
	case "/cgi-bin/message/custom/typing", "/cgi-bin/message/custom/business/typing":
		return classTyping
	case "/cgi-bin/media/upload", "/cgi-bin/material/add_material":
		return classMedia
	}
	// Dot segments and doubled slashes would let a path that starts with
	// an allowed prefix mean another one once WeChat cleans it.
	if strings.Contains(path, "/.") || strings.Contains(path, "//") || strings.Contains(path, "\\") {
		return classNone
	}
	for _, p := range AllowedPrefixes {
		if strings.HasPrefix(path, p) && len(path) > len(p) {
			return classOther
		}
	}
	return classNone
}

// WeChat's errcodes that the relay answers itself (wechat.Code* has the
// ones it reads from WeChat).
const (
	codeSystemError       = -1
	codeInvalidCredential = 40001
	codeInvalidGrantType  = 40002
	codeInvalidAppID      = 40013
	codeInvalidURL        = 40066
	codeInvalidSecret     = 40125
	codeTokenMissing      = 41001
	codeAppIDMissing      = 41002
	codeSecretMissing     = 41004
	codeTokenExpired      = 42001
	codeEmptyPostData     = 44002
	codeTooLarge          = 45001
	codeMinuteQuota       = 45011
	codeDataFormat        = 47001
	codeUnauthorized      = 48001
	codeNotAuthorized     = 61003
)

// answer is one call's response writer, remembering the errcode for the
// metrics: WeChat's, or the relay's own.
type answer struct {
	w       http.ResponseWriter
	class   class
	errcode string

	// For the call record: whose call it was (empty until known), and
	// what it was answered.
	tenant  tenant.ID
	status  int
	errmsg  string
	retried bool

	// authFailed: the call presented credentials that are not good (an
	// unknown appid, a wrong secret, a forged or revoked relay token),
	// which counts against the caller's address.
	authFailed bool
}

// refuse answers WeChat's error shape with HTTP status (WeChat itself
// answers 200 to nearly every error; the relay does too except where the
// HTTP status says something an SDK may use: 404 and 413).
func (a *answer) refuse(status, errcode int, errmsg string) {
	a.errcode, a.errmsg = strconv.Itoa(errcode), errmsg
	a.json(status, struct {
		Errcode int    `json:"errcode"`
		Errmsg  string `json:"errmsg"`
	}{errcode, errmsg})
}

func (a *answer) json(status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(a.w, "internal error", http.StatusInternalServerError)
		return
	}
	a.w.Header().Set("Content-Type", "application/json; encoding=utf-8")
	a.w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	a.status = status
	a.w.WriteHeader(status)
	a.w.Write(b)
}
