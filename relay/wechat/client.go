package wechat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"time"
)

// DefaultBaseURL is where WeChat serves its API.
const DefaultBaseURL = "https://api.weixin.qq.com"

// DefaultTimeout bounds every call of a Client whose HTTP is nil, from
// dialing to reading the whole answer. Sends happen after a push has been
// acknowledged, so they are not held to WeChat's 5-second push deadline.
const DefaultTimeout = 10 * time.Second

// MaxUploadBytes is the largest file UploadTempMedia sends. WeChat documents
// no limit for mini-program temporary media (protocol §7); 10 MiB is the
// official-account image limit and wxsim's default.
const MaxUploadBytes = 10 << 20

// maxAnswerBytes caps how much of an answer is read. WeChat's JSON answers
// are a few hundred bytes; anything near this is not WeChat.
const maxAnswerBytes = 1 << 20

// Typing commands for SetTyping.
const (
	Typing       = "Typing"
	CancelTyping = "CancelTyping"
)

// MediaTypeImage is the media type of UploadTempMedia, the only one mini
// programs may upload.
const MediaTypeImage = "image"

// ErrMediaTooLarge means a file given to UploadTempMedia is over
// MaxUploadBytes. Nothing was sent.
var ErrMediaTooLarge = errors.New("wechat: media too large")

// The API paths the Client calls. Newer docs also offer send and typing
// under /cgi-bin/message/custom/business/ (protocol §7); the relay uses the
// paths older docs and most SDKs use.
const (
	pathToken       = "/cgi-bin/token"
	pathStableToken = "/cgi-bin/stable_token"
	pathSend        = "/cgi-bin/message/custom/send"
	pathTyping      = "/cgi-bin/message/custom/typing"
	pathUpload      = "/cgi-bin/media/upload"
)

// Client calls WeChat's server API on behalf of mini programs: access
// tokens, customer-service sends, typing and media uploads. It holds no
// per-app state, so one Client serves every tenant, and it is safe for
// concurrent use as long as its fields are not changed. The zero value
// calls api.weixin.qq.com with DefaultTimeout.
//
// Every method returns an *APIError when WeChat answers with a non-zero
// errcode, a *TransportError when no answer in WeChat's shape arrived, and
// an error wrapping ErrInvalidConfig when BaseURL is unusable. Nothing is
// retried here: retrying, and refreshing tokens (IsTokenInvalid), is the
// caller's policy.
type Client struct {
	// BaseURL is the scheme and host, and optionally a path prefix, of
	// the WeChat API; "" means DefaultBaseURL. Tests point it at wxsim.
	BaseURL string

	// HTTP makes the requests; nil means a client using
	// http.DefaultTransport and DefaultTimeout. A client given here keeps
	// its own Timeout (zero: none, so only ctx bounds a call). Redirects
	// are never followed, whatever HTTP.CheckRedirect says: a redirect
	// would carry the secret or access token in its query to wherever it
	// points. A 3xx answer is a *TransportError.
	HTTP *http.Client
}

// AccessToken is an access token with the lifetime WeChat gave it. Its
// String and LogValue hide Token, so logging one does not leak it.
type AccessToken struct {
	Token string
	// ExpiresIn is how long the token has left as of the answer: two
	// hours for a new token, at least five minutes for a stable one.
	ExpiresIn time.Duration
}

// String describes t without its Token.
func (t AccessToken) String() string {
	return fmt.Sprintf("AccessToken{REDACTED, expires in %s}", t.ExpiresIn)
}

// GoString is String, so that %#v hides the Token too.
func (t AccessToken) GoString() string { return t.String() }

// LogValue implements slog.LogValuer, hiding the Token.
func (t AccessToken) LogValue() slog.Value {
	return slog.GroupValue(slog.String("token", "REDACTED"), slog.Duration("expires_in", t.ExpiresIn))
}

// Media is an uploaded temporary file. Its MediaID works for three days,
// for the app whose access token uploaded it.
type Media struct {
	Type      string    // "image"
	MediaID   string    // for image sends and card thumbnails
	CreatedAt time.Time // in UTC; zero if WeChat did not say
}

// Token fetches an access token from the classic endpoint, GET
// /cgi-bin/token. Every call issues a new token and the previous one dies
// five minutes later, so one holder per app must fetch and share it
// (protocol §6). Errcodes include CodeInvalidAppID, CodeInvalidSecret,
// CodeIPNotWhitelisted and CodeSystemError.
func (c *Client) Token(ctx context.Context, appid, secret string) (AccessToken, error) {
	query := "grant_type=client_credential&appid=" + url.QueryEscape(appid) + "&secret=" + url.QueryEscape(secret)
	var a tokenAnswer
	if err := c.do(ctx, http.MethodGet, pathToken, query, "", nil, &a); err != nil {
		return AccessToken{}, err
	}
	return a.token(http.MethodGet + " " + pathToken)
}

// StableToken fetches an access token from POST /cgi-bin/stable_token,
// whose credentials travel in the JSON body. Without forceRefresh it
// returns the current token until its last five minutes, so callers need
// not coordinate. forceRefresh kills the current token at once and is
// limited to 20 a day (then CodeDailyQuota); calls within 30 s of the last
// one return the same token. Stable tokens and classic ones are independent
// (protocol §6). Errcodes are those of Token.
func (c *Client) StableToken(ctx context.Context, appid, secret string, forceRefresh bool) (AccessToken, error) {
	body, err := EncodeJSON(stableTokenRequest{
		GrantType:    "client_credential",
		AppID:        appid,
		Secret:       secret,
		ForceRefresh: forceRefresh,
	})
	if err != nil {
		return AccessToken{}, err
	}
	var a tokenAnswer
	if err := c.do(ctx, http.MethodPost, pathStableToken, "", "application/json", body, &a); err != nil {
		return AccessToken{}, err
	}
	return a.token(http.MethodPost + " " + pathStableToken)
}

// SendCustomMessage sends a customer-service message, POST
// /cgi-bin/message/custom/send. body is WeChat's JSON send body and goes
// out byte for byte, unchecked:
//
//	{"touser":"OPENID","msgtype":"text","text":{"content":"Hello"}}
//
// Build bodies with EncodeJSON, not json.Marshal, which would spell <, >
// and & as escapes WeChat shows literally (protocol §8). Errcodes include
// CodeOutOfWindow, CodeOutOfResponses, CodeInvalidOpenID,
// CodeInvalidMediaID, CodeContentTooLong, CodeDataFormat,
// CodeUnauthorized, CodeSystemError and the token errors (IsTokenInvalid).
//
// After a *TransportError the message may or may not have been delivered.
func (c *Client) SendCustomMessage(ctx context.Context, accessToken string, body []byte) error {
	if body == nil {
		body = []byte{}
	}
	return c.do(ctx, http.MethodPost, pathSend, tokenQuery(accessToken), "application/json", body, nil)
}

// SetTyping shows or hides "typing…" to a user, POST
// /cgi-bin/message/custom/typing, with command Typing or CancelTyping
// (otherwise CodeBadTypingCommand). Typing lasts about 15 seconds, and a
// sent message cancels it.
func (c *Client) SetTyping(ctx context.Context, accessToken, touser, command string) error {
	body, err := EncodeJSON(typingRequest{ToUser: touser, Command: command})
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, pathTyping, tokenQuery(accessToken), "application/json", body, nil)
}

// UploadTempMedia uploads a temporary file, POST
// /cgi-bin/media/upload?type=mediaType, as the multipart/form-data part
// "media" labelled filename and contentType. mediaType must be
// MediaTypeImage: WeChat takes images only, judged by their bytes
// (otherwise CodeInvalidMediaType). An empty contentType is sniffed from the
// content (http.DetectContentType), an empty filename becomes "media".
//
// The file is read into memory first, so the request has a Content-Length
// as WeChat's SDKs send it. A file over MaxUploadBytes is ErrMediaTooLarge,
// and an error reading content is returned wrapped; neither sends anything.
func (c *Client) UploadTempMedia(ctx context.Context, accessToken, mediaType, filename, contentType string, content io.Reader) (Media, error) {
	body, formType, err := multipartBody(filename, contentType, content)
	if err != nil {
		return Media{}, err
	}
	query := tokenQuery(accessToken) + "&type=" + url.QueryEscape(mediaType)
	var a uploadAnswer
	if err := c.do(ctx, http.MethodPost, pathUpload, query, formType, body, &a); err != nil {
		return Media{}, err
	}
	return a.media(http.MethodPost + " " + pathUpload)
}

// EncodeJSON is json.Marshal without HTML escaping: <, > and & stay as
// they are instead of becoming \u003c, \u003e and \u0026, which WeChat has
// been seen to show users literally, breaking <a href> links in text
// (protocol §8). Like json.Marshal, it adds no trailing newline.
func EncodeJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("wechat: encoding JSON: %w", err)
	}
	b.Truncate(b.Len() - 1) // Encode's newline
	return b.Bytes(), nil
}

type stableTokenRequest struct {
	GrantType    string `json:"grant_type"`
	AppID        string `json:"appid"`
	Secret       string `json:"secret"`
	ForceRefresh bool   `json:"force_refresh"`
}

type typingRequest struct {
	ToUser  string `json:"touser"`
	Command string `json:"command"`
}

// tokenAnswer is the success answer of both token endpoints, which has no
// errcode (protocol §6).
type tokenAnswer struct {
	AccessToken string      `json:"access_token"`
	ExpiresIn   json.Number `json:"expires_in"`
}

func (a *tokenAnswer) token(op string) (AccessToken, error) {
	secs, err := a.ExpiresIn.Int64()
	switch {
	case a.AccessToken == "":
		return AccessToken{}, badAnswer(op, "no access_token")
	case err != nil || secs <= 0:
		return AccessToken{}, badAnswer(op, fmt.Sprintf("expires_in %q is not a positive integer", a.ExpiresIn))
	}
	return AccessToken{Token: a.AccessToken, ExpiresIn: time.Duration(secs) * time.Second}, nil
}

// uploadAnswer is media/upload's success answer. The official example adds
// errcode 0 and errmsg "ok", others omit them (protocol §7).
type uploadAnswer struct {
	Type      string      `json:"type"`
	MediaID   string      `json:"media_id"`
	CreatedAt json.Number `json:"created_at"`
}

func (a *uploadAnswer) media(op string) (Media, error) {
	if a.MediaID == "" {
		return Media{}, badAnswer(op, "no media_id")
	}
	m := Media{Type: a.Type, MediaID: a.MediaID}
	if a.CreatedAt != "" {
		secs, err := a.CreatedAt.Int64()
		if err != nil {
			return Media{}, badAnswer(op, fmt.Sprintf("created_at %q is not an integer", a.CreatedAt))
		}
		m.CreatedAt = time.Unix(secs, 0).UTC()
	}
	return m, nil
}

// badAnswer is the error for a 200 answer that lacks what the API promises.
func badAnswer(op, what string) error {
	return &TransportError{Op: op, StatusCode: http.StatusOK, Err: errors.New("answer has " + what)}
}

func tokenQuery(accessToken string) string {
	return "access_token=" + url.QueryEscape(accessToken)
}

// multipartBody writes content as the form's "media" file part.
func multipartBody(filename, contentType string, content io.Reader) (body []byte, formType string, err error) {
	if content == nil {
		content = http.NoBody
	}
	// The first 512 bytes are all http.DetectContentType looks at.
	head := make([]byte, 512)
	n, err := io.ReadFull(content, head)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, "", fmt.Errorf("wechat: reading media: %w", err)
	}
	head = head[:n]
	if contentType == "" {
		contentType = http.DetectContentType(head)
	}
	if filename == "" {
		filename = "media"
	}

	var b bytes.Buffer
	if l, ok := content.(interface{ Len() int }); ok {
		// One allocation for the whole form when the size is known
		// (a *bytes.Reader): files are up to 10 MiB.
		b.Grow(n + min(l.Len(), MaxUploadBytes+1) + 1024)
	}
	mw := multipart.NewWriter(&b)
	h := make(textproto.MIMEHeader)
	h.Set("Content-Disposition", multipart.FileContentDisposition("media", filename))
	h.Set("Content-Type", contentType)
	part, err := mw.CreatePart(h)
	if err != nil {
		return nil, "", fmt.Errorf("wechat: writing upload: %w", err)
	}
	part.Write(head) // a bytes.Buffer does not fail
	rest, err := io.Copy(part, io.LimitReader(content, MaxUploadBytes+1-int64(n)))
	switch {
	case err != nil:
		return nil, "", fmt.Errorf("wechat: reading media: %w", err)
	case int64(n)+rest > MaxUploadBytes:
		return nil, "", fmt.Errorf("%w: over %d bytes", ErrMediaTooLarge, MaxUploadBytes)
	}
	if err := mw.Close(); err != nil {
		return nil, "", fmt.Errorf("wechat: writing upload: %w", err)
	}
	return b.Bytes(), mw.FormDataContentType(), nil
}

// do makes one API call and decodes a successful answer into out (if not
// nil). It returns an *APIError for a non-zero errcode and a
// *TransportError for anything that is not an answer in WeChat's shape.
func (c *Client) do(ctx context.Context, method, path, query, contentType string, body []byte, out any) error {
	op := method + " " + path
	target, err := c.endpoint(path, query)
	if err != nil {
		return err
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return &TransportError{Op: op, Err: redact(err)}
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")

	resp, err := c.httpClient().Do(req)
	if err != nil {
		return &TransportError{Op: op, Err: redact(err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// Drain a little so the connection can be reused.
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return &TransportError{Op: op, StatusCode: resp.StatusCode}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	switch {
	case err != nil:
		return &TransportError{Op: op, StatusCode: resp.StatusCode, Err: redact(err)}
	case len(data) > maxAnswerBytes:
		return &TransportError{Op: op, StatusCode: resp.StatusCode, Err: fmt.Errorf("answer is over %d bytes", maxAnswerBytes)}
	}
	if err := decodeAnswer(data, out); err != nil {
		if _, ok := errors.AsType[*APIError](err); ok {
			return err
		}
		return &TransportError{Op: op, StatusCode: resp.StatusCode, Err: fmt.Errorf("%w (Content-Type %q)", err, resp.Header.Get("Content-Type"))}
	}
	return nil
}

// decodeAnswer reads a JSON answer: an *APIError if errcode is present and
// not 0, otherwise the answer decoded into out. Fields nobody asked for are
// ignored. Content-Type is not consulted: WeChat labels its JSON
// "application/json; encoding=utf-8", and sometimes text/plain.
func decodeAnswer(data []byte, out any) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return errors.New("answer is not a JSON object")
	}
	var status struct {
		Errcode int    `json:"errcode"`
		Errmsg  string `json:"errmsg"`
	}
	if err := json.Unmarshal(data, &status); err != nil {
		return fmt.Errorf("answer is not WeChat's JSON: %w", err)
	}
	if status.Errcode != 0 {
		return &APIError{Code: status.Errcode, Msg: status.Errmsg}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("answer is not WeChat's JSON: %w", err)
	}
	return nil
}

// endpoint returns the URL of an API path with its query.
func (c *Client) endpoint(path, query string) (string, error) {
	base := c.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.Parse(base)
	// The parse error is not wrapped: it would quote BaseURL, which may
	// hold a password.
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%w: BaseURL must be an http or https URL with a host and no query", ErrInvalidConfig)
	}
	u = u.JoinPath(path)
	u.RawQuery = query
	return u.String(), nil
}

// httpClient returns the client to use for one call: HTTP, or the default,
// with redirects refused. The copy leaves the caller's client untouched.
func (c *Client) httpClient() *http.Client {
	hc := http.Client{Timeout: DefaultTimeout}
	if c.HTTP != nil {
		hc = *c.HTTP
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &hc
}

// redact removes credentials from err's text. net/http reports failures as
// a *url.Error quoting the whole URL, whose query holds the secret (Token)
// or the access token (every other call); the copy returned quotes the URL
// with their values replaced by REDACTED and wraps the same cause.
func redact(err error) error {
	if ue, ok := err.(*url.Error); ok { // http.Client.Do and http.NewRequest return it unwrapped
		return &url.Error{Op: ue.Op, URL: redactURL(ue.URL), Err: ue.Err}
	}
	return err
}

// redactURL replaces the values of the secret and access_token query
// parameters of raw, and any password in it, with REDACTED. It works on the
// text, so it also cleans URLs that do not parse.
func redactURL(raw string) string {
	head, query, hasQuery := strings.Cut(raw, "?")
	if u, err := url.Parse(head); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			head = u.Redacted()
		}
	}
	if !hasQuery {
		return head
	}
	query, fragment, hasFragment := strings.Cut(query, "#")
	params := strings.Split(query, "&")
	for i, p := range params {
		key, _, _ := strings.Cut(p, "=")
		name, err := url.QueryUnescape(key)
		if err != nil {
			name = key
		}
		if isCredentialParam(name) {
			params[i] = key + "=REDACTED"
		}
	}
	out := head + "?" + strings.Join(params, "&")
	if hasFragment {
		out += "#" + fragment
	}
	return out
}

// isCredentialParam reports whether a query parameter carries a credential.
func isCredentialParam(name string) bool {
	return strings.EqualFold(name, "secret") || strings.EqualFold(name, "access_token")
}
