package api

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/wxrelay/wxrelay/relay/message"
	"github.com/wxrelay/wxrelay/relay/token"
	"github.com/wxrelay/wxrelay/relay/wechat"
)

// ErrorInfo of WeChat refusals (contract §3).
const (
	wechatReason = "WECHAT_ERROR"
	wechatDomain = "api.weixin.qq.com"
)

// ErrorInfo of sends the relay refused itself because WeChat would
// certainly have refused them for the user's reply window (issue 5).
const (
	windowReason = "REPLY_WINDOW_CLOSED"
	windowDomain = "wxrelay"
)

// wechatCodes maps the errcodes of a send, typing or upload call to gRPC codes
// (HTTP status in brackets, as grpc-gateway derives it):
//
//	45015 out of the 48-hour window        FailedPrecondition (400)
//	45080 no interaction for typing        FailedPrecondition (400)
//	45081 already typing                   FailedPrecondition (400)
//	48001 API unauthorized for the account FailedPrecondition (400): not 403,
//	      which would read as the relay refusing the caller
//	45047 window's reply quota used up     ResourceExhausted (429)
//	45009 daily quota, 45011 minute quota  ResourceExhausted (429)
//	40003 invalid openid                   InvalidArgument (400)
//	40007 invalid media_id                 InvalidArgument (400)
//	40008 invalid msgtype                  InvalidArgument (400)
//	44002 empty body, 44004 empty content  InvalidArgument (400)
//	45002 content too long                 InvalidArgument (400)
//	45072 bad typing command               InvalidArgument (400)
//	47001 data format error                InvalidArgument (400)
//	40004 not an image, 40005 bad file type,
//	40009 bad image size, 41005 no media,
//	44001 empty media (uploads)            InvalidArgument (400)
//	-1    system error                     Unavailable (503): retry
//	40001, 40014, 42001 token refused even
//	      after a refresh and retry        Unavailable (503): retry
//	any other errcode                      Unknown (500)
//
// A *wechat.TransportError (no answer in WeChat's shape; the message may or
// may not have been delivered) is Unavailable (503) without ErrorInfo.
//
// When the tenant's access token could not be had (message.ErrToken):
// a WeChat refusal of the fetch (40125 wrong secret, 40013 bad appid,
// 40164 IP not whitelisted, ...) is FailedPrecondition with ErrorInfo, -1
// is Unavailable with ErrorInfo, token.ErrForceLimited is
// ResourceExhausted, and anything else (a transport failure, a backoff
// after a transport failure, a lost lease) is Unavailable.
var wechatCodes = map[int]codes.Code{
	wechat.CodeOutOfWindow:       codes.FailedPrecondition,
	45080:                        codes.FailedPrecondition,
	45081:                        codes.FailedPrecondition,
	wechat.CodeUnauthorized:      codes.FailedPrecondition,
	wechat.CodeOutOfResponses:    codes.ResourceExhausted,
	wechat.CodeDailyQuota:        codes.ResourceExhausted,
	wechat.CodeMinuteQuota:       codes.ResourceExhausted,
	wechat.CodeInvalidOpenID:     codes.InvalidArgument,
	wechat.CodeInvalidMediaID:    codes.InvalidArgument,
	40008:                        codes.InvalidArgument,
	wechat.CodeEmptyPostData:     codes.InvalidArgument,
	44004:                        codes.InvalidArgument,
	wechat.CodeContentTooLong:    codes.InvalidArgument,
	wechat.CodeBadTypingCommand:  codes.InvalidArgument,
	wechat.CodeDataFormat:        codes.InvalidArgument,
	wechat.CodeInvalidMediaType:  codes.InvalidArgument,
	40005:                        codes.InvalidArgument,
	40009:                        codes.InvalidArgument,
	41005:                        codes.InvalidArgument,
	44001:                        codes.InvalidArgument,
	wechat.CodeSystemError:       codes.Unavailable,
	wechat.CodeInvalidCredential: codes.Unavailable,
	wechat.CodeInvalidToken:      codes.Unavailable,
	wechat.CodeTokenExpired:      codes.Unavailable,
}

// wechatStatus returns the status for an error of a WeChat call, and false
// if err is not one.
func wechatStatus(err error) (*status.Status, bool) {
	apiErr, isAPI := errors.AsType[*wechat.APIError](err)
	_, isTransport := errors.AsType[*wechat.TransportError](err)
	if errors.Is(err, message.ErrToken) {
		switch {
		case isAPI && apiErr.Code == wechat.CodeSystemError:
			return withErrorInfo(codes.Unavailable, "WeChat failed to issue an access token; retry later", apiErr), true
		case isAPI:
			return withErrorInfo(codes.FailedPrecondition,
				fmt.Sprintf("WeChat refused the tenant's access token request (check appid, secret and IP whitelist): errcode %d", apiErr.Code), apiErr), true
		case errors.Is(err, token.ErrForceLimited):
			return status.New(codes.ResourceExhausted, token.ErrForceLimited.Error()), true
		default:
			return status.New(codes.Unavailable, "could not obtain an access token from WeChat; retry later"), true
		}
	}
	switch {
	case isAPI:
		code, ok := wechatCodes[apiErr.Code]
		if !ok {
			code = codes.Unknown
		}
		return withErrorInfo(code, fmt.Sprintf("WeChat refused the call: errcode %d: %s", apiErr.Code, apiErr.Message()), apiErr), true
	case isTransport:
		return status.New(codes.Unavailable, "WeChat did not answer properly; the message may or may not have been delivered"), true
	}
	return nil, false
}

func withErrorInfo(code codes.Code, msg string, e *wechat.APIError) *status.Status {
	st := status.New(code, msg)
	d, err := st.WithDetails(&errdetails.ErrorInfo{
		Reason:   wechatReason,
		Domain:   wechatDomain,
		Metadata: map[string]string{"errcode": strconv.Itoa(e.Code), "errmsg": e.Msg},
	})
	if err != nil {
		return st
	}
	return d
}

// windowStatus returns the status of a send refused for its reply window
// (*message.WindowClosedError), and false if err is not one. It is
// FailedPrecondition (400) for both 45015 and 45047, unlike WeChat's own
// 45047 (ResourceExhausted, 429): retrying cannot help until the user
// writes again. Its ErrorInfo carries the errcode and errmsg WeChat would
// have answered, so that clients switching on errcode keep working; its
// reason and domain tell that the relay answered, not WeChat.
func windowStatus(err error) (*status.Status, bool) {
	we, ok := errors.AsType[*message.WindowClosedError](err)
	if !ok {
		return nil, false
	}
	st := status.New(codes.FailedPrecondition, we.Reason)
	d, derr := st.WithDetails(&errdetails.ErrorInfo{
		Reason: windowReason,
		Domain: windowDomain,
		Metadata: map[string]string{
			"errcode": strconv.Itoa(we.Errcode),
			"errmsg":  we.Errmsg(),
			"openid":  we.OpenID,
		},
	})
	if derr != nil {
		return st, true
	}
	return d, true
}

// StableTokenFetcher fetches stable access tokens; *wechat.Client is one.
type StableTokenFetcher interface {
	StableToken(ctx context.Context, appid, secret string, forceRefresh bool) (wechat.AccessToken, error)
}

// CheckWithStableToken is Options.CheckCredentials by wx: a stable token
// fetch without force_refresh, which hands back the token in use, if any,
// and disturbs no holder of it (protocol §6). The token is not kept: the
// keeper fetches its own, the same one.
func CheckWithStableToken(wx StableTokenFetcher) func(ctx context.Context, appid, secret string) error {
	return func(ctx context.Context, appid, secret string) error {
		_, err := wx.StableToken(ctx, appid, secret, false)
		return err
	}
}

// credentialsStatus is the answer to a CreateTenant whose credentials
// WeChat did not accept (check_credentials): nothing was created. A
// refusal names the field at fault where there is one and carries
// WeChat's errcode in an ErrorInfo; WeChat not reached is Unavailable.
func credentialsStatus(err error) *status.Status {
	apiErr, isAPI := errors.AsType[*wechat.APIError](err)
	if !isAPI {
		return status.New(codes.Unavailable, fmt.Sprintf("could not check the credentials: WeChat was not reached (%v); nothing was created: retry, "+
			"or create the tenant without check_credentials and read its token_status", err))
	}
	var field, msg string
	code := codes.FailedPrecondition
	switch apiErr.Code {
	case wechat.CodeInvalidSecret:
		field, code = "app_secret", codes.InvalidArgument
		msg = "WeChat refused the AppSecret (40125 invalid appsecret): copy it again from the mini-program console (开发管理 → 开发设置), where it can also be reset"
	case wechat.CodeInvalidAppID:
		field, code = "appid", codes.InvalidArgument
		msg = "WeChat does not know this appid (40013 invalid appid): copy it from the mini-program console (开发管理 → 开发设置)"
	case wechat.CodeIPNotWhitelisted:
		msg = fmt.Sprintf("WeChat refused the relay's address (40164: %s): add the relay's egress IP to the mini program's IP whitelist (开发管理 → 开发设置 → IP白名单) and retry", apiErr.Msg)
	case wechat.CodeSystemError:
		code, msg = codes.Unavailable, "WeChat failed to answer the check (-1 system error); retry"
	default:
		msg = fmt.Sprintf("WeChat refused the credentials: errcode %d: %s", apiErr.Code, apiErr.Message())
	}
	st := withErrorInfo(code, msg+"; nothing was created", apiErr)
	if field == "" {
		return st
	}
	st = status.New(code, field+": "+msg+"; nothing was created")
	d, derr := st.WithDetails(
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: msg}}},
		&errdetails.ErrorInfo{Reason: wechatReason, Domain: wechatDomain,
			Metadata: map[string]string{"errcode": strconv.Itoa(apiErr.Code), "errmsg": apiErr.Msg}})
	if derr != nil {
		return st
	}
	return d
}
