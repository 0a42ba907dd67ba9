package wxapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/wxrelay/wxrelay/relay/message"
	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/tenant"
)

// forward passes a call on to WeChat with the tenant's real token in place
// of the relay token it carries.
func (h *Handler) forward(a *answer, r *http.Request, c class) {
	ctx := r.Context()
	relayToken, ok := queryValue(r.URL.RawQuery, "access_token")
	if !ok || relayToken == "" {
		a.refuse(http.StatusOK, codeTokenMissing, "access_token missing")
		return
	}
	t, ok := h.caller(a, r, relayToken)
	if !ok {
		return
	}
	a.tenant = t.ID
	if !h.allow(t.ID) {
		h.limited(a)
		return
	}

	limit := int64(maxHeldBody)
	if c == classMedia {
		limit = maxMediaBody
	}
	if r.ContentLength > limit {
		a.refuse(http.StatusRequestEntityTooLarge, codeTooLarge, fmt.Sprintf("the body is %d bytes, over wxrelay's limit of %d bytes for this call", r.ContentLength, limit))
		return
	}
	// The body is held, so that the call can be made again after a token
	// refresh, unless it may be larger than that is worth (media uploads
	// over maxHeldBody, or of unknown length): those are streamed.
	var held []byte
	streamed := c == classMedia && (r.ContentLength < 0 || r.ContentLength > maxHeldBody)
	if !streamed && r.Body != nil {
		var err error
		held, err = io.ReadAll(http.MaxBytesReader(nil, r.Body, limit))
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			a.refuse(http.StatusRequestEntityTooLarge, codeTooLarge, fmt.Sprintf("the body is over wxrelay's limit of %d bytes for this call", limit))
			return
		} else if err != nil {
			a.refuse(http.StatusBadRequest, codeDataFormat, "data format error: the body could not be read")
			return
		}
	}

	release, finish := func() {}, func(*response) {}
	if c == classSend {
		var done bool
		if finish, done = h.idempotent(a, r, t.ID, held); done {
			return
		}
		var err error
		if release, err = h.reserve(ctx, t.ID, held); err != nil {
			finish(nil)
			var closed *message.WindowClosedError
			if errors.As(err, &closed) {
				a.refuse(http.StatusOK, closed.Errcode, closed.Errmsg()+" (wxrelay: "+closed.Reason+")")
				return
			}
			h.tenantError(a, r, err)
			return
		}
	}

	var body func() io.Reader
	length := int64(len(held))
	capped := &cappedReader{r: r.Body, left: limit}
	if streamed {
		length = r.ContentLength
		body = func() io.Reader { return capped }
	} else {
		body = func() io.Reader { return bytes.NewReader(held) }
	}
	res, err := h.exchange(ctx, r, t.ID, body, length, !streamed)
	if err != nil && capped.over {
		// A streamed body of unknown length ran past the limit: the same
		// answer as a declared length over it, not a gateway error (which
		// SDKs retry). WeChat saw a cut-off body and took nothing.
		a.refuse(http.StatusRequestEntityTooLarge, codeTooLarge, fmt.Sprintf("the body is over wxrelay's limit of %d bytes for this call", limit))
		return
	}
	if err != nil {
		release()
		var tokenErr *keeperFailure
		if errors.As(err, &tokenErr) {
			finish(nil) // WeChat was not called
			h.keeperError(a, r, t.ID, tokenErr.err)
			return
		}
		// WeChat may have taken the send before the answer was lost.
		finish(&response{errcode: "", errmsg: ""})
		h.log.WarnContext(ctx, "wxapi: forward to WeChat", "tenant", t.ID, "path", r.URL.Path, "err", err)
		a.refuse(http.StatusBadGateway, codeSystemError, "system error: wxrelay could not reach WeChat")
		return
	}
	defer res.Body.Close()
	a.errcode, a.errmsg, a.retried, a.status = res.errcode, res.errmsg, res.retried, res.StatusCode
	finish(res)
	if c == classSend && res.errcode != "0" {
		// WeChat did not take the message (or its answer was no answer):
		// the reply quota is not used.
		release()
	}
	copyResponseHeader(a.w.Header(), res.Header)
	if echoesRequests(r.URL.Path) {
		h.writeRedacted(a, res)
		return
	}
	if res.ContentLength >= 0 {
		a.w.Header().Set("Content-Length", strconv.FormatInt(res.ContentLength, 10))
	}
	a.w.WriteHeader(res.StatusCode)
	// The real token must never reach the caller: a relay token is
	// revoked with the tenant's API key, a real one outlives that by up to
	// two hours. Should an answer quote it, it is masked (same length, so
	// Content-Length holds).
	mw := &maskWriter{w: a.w, secret: []byte(res.realToken)}
	io.Copy(mw, res.Body)
	mw.flush()
}

// cappedReader reads at most left bytes of r; past them it fails and
// records that the body was over its limit.
type cappedReader struct {
	r    io.Reader
	left int64
	over bool
}

var errBodyOverLimit = errors.New("wxapi: the body is over its limit")

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		var one [1]byte
		for {
			n, err := c.r.Read(one[:])
			if n > 0 {
				c.over = true
				return 0, errBodyOverLimit
			}
			if err != nil {
				return 0, err
			}
		}
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// caller returns the tenant whose relay token tok is, or answers WeChat's
// refusal of the token and returns false.
func (h *Handler) caller(a *answer, r *http.Request, tok string) (*tenant.Tenant, bool) {
	wt, err := h.opts.Auth.ParseWeChatToken(tok)
	switch {
	case errors.Is(err, tenant.ErrWeChatTokenExpired):
		a.refuse(http.StatusOK, codeTokenExpired, "access_token expired")
		return nil, false
	case err != nil:
		a.authFailed = true
		a.refuse(http.StatusOK, codeInvalidCredential, "invalid credential, access_token is invalid or not latest")
		return nil, false
	}
	t, err := h.opts.Tenants.Get(r.Context(), wt.Tenant)
	if err != nil {
		h.tenantError(a, r, err)
		return nil, false
	}
	if !wt.IssuedTo(t) {
		a.authFailed = true
		a.refuse(http.StatusOK, codeInvalidCredential, "invalid credential, access_token is invalid or not latest: the api key it was issued to was rotated")
		return nil, false
	}
	if t.State != tenant.StateActive {
		a.refuse(http.StatusOK, codeUnauthorized, msgDisabled)
		return nil, false
	}
	return t, true
}

// reserve counts a customer-service send against its user's reply window.
// A body the relay cannot read a touser from is passed on unchecked, for
// WeChat to refuse in its own words.
func (h *Handler) reserve(ctx context.Context, tid tenant.ID, body []byte) (func(), error) {
	var m struct {
		ToUser string `json:"touser"`
	}
	if json.Unmarshal(body, &m) != nil || m.ToUser == "" {
		return func() {}, nil
	}
	return h.opts.Replies.ReserveReply(ctx, tid, m.ToUser)
}

// keeperFailure is a failure to get the real token, as opposed to one of
// the exchange with WeChat.
type keeperFailure struct{ err error }

func (k *keeperFailure) Error() string { return k.err.Error() }

// response is WeChat's answer to a forwarded call, with its errcode when
// it is a JSON answer small enough to read ("" otherwise). Body starts
// with the bytes read to find it.
type response struct {
	*http.Response
	errcode, errmsg string
	// retried: the first answer refused the token, this is the second's.
	retried bool
	// realToken is the real access token the call was made with.
	realToken string
}

// exchange makes the call with the real token and, when WeChat refuses
// that token, refreshes it and, if the body can be sent again, makes the
// call once more with the new one.
func (h *Handler) exchange(ctx context.Context, r *http.Request, tid tenant.ID, body func() io.Reader, length int64, retry bool) (*response, error) {
	real, _, err := h.opts.Tokens.TokenExpiry(ctx, tid)
	if err != nil {
		return nil, &keeperFailure{err}
	}
	res, err := h.send(ctx, r, real, body(), length)
	if err != nil || !isTokenRefusal(res.errcode) {
		return res, err
	}
	fresh, _, rerr := h.opts.Tokens.RefreshExpiry(ctx, tid, real)
	if !retry {
		// A streamed body is gone: WeChat's refusal goes back as it is,
		// and the SDK's own retry meets the refreshed token.
		if rerr != nil {
			h.log.WarnContext(ctx, "wxapi: refresh a token WeChat refused", "tenant", tid, "err", rerr)
		}
		return res, nil
	}
	res.Body.Close()
	if rerr != nil {
		return nil, &keeperFailure{rerr}
	}
	h.metrics.refreshes.Inc()
	res, err = h.send(ctx, r, fresh, body(), length)
	if res != nil {
		res.retried = true
	}
	return res, err
}

// isTokenRefusal reports whether errcode is WeChat refusing the access
// token (wechat.IsTokenInvalid's codes).
func isTokenRefusal(errcode string) bool {
	switch errcode {
	case strconv.Itoa(wechat.CodeInvalidCredential), strconv.Itoa(wechat.CodeInvalidToken), strconv.Itoa(wechat.CodeTokenExpired):
		return true
	}
	return false
}

// maxInspected is how much of a JSON answer is read to find its errcode;
// WeChat's errors are far smaller, and a larger answer is passed on as is.
const maxInspected = 64 << 10

// send makes one forwarded call: r's method, path, query (with the real
// token swapped in) and headers, and body.
func (h *Handler) send(ctx context.Context, r *http.Request, real string, body io.Reader, length int64) (*response, error) {
	target := h.upstream + r.URL.EscapedPath()
	if q := swapQueryValue(r.URL.RawQuery, "access_token", real); q != "" {
		target += "?" + q
	}
	out, err := http.NewRequestWithContext(ctx, r.Method, target, body)
	if err != nil {
		return nil, fmt.Errorf("build the request: %w", redactError(err))
	}
	copyRequestHeader(out.Header, r.Header)
	out.ContentLength = length
	if length == 0 {
		out.Body = http.NoBody
	}
	res, err := h.http.Do(out)
	if err != nil {
		return nil, redactError(err)
	}
	resp := &response{Response: res, realToken: real}
	if isJSON(res.Header.Get("Content-Type")) && res.ContentLength <= maxInspected {
		head, err := io.ReadAll(io.LimitReader(res.Body, maxInspected+1))
		if err != nil {
			res.Body.Close()
			return nil, fmt.Errorf("read WeChat's answer: %w", err)
		}
		if len(head) <= maxInspected {
			var e struct {
				Errcode *json.Number `json:"errcode"`
				Errmsg  string       `json:"errmsg"`
			}
			if json.Unmarshal(head, &e) == nil {
				resp.errcode, resp.errmsg = "0", e.Errmsg
				if e.Errcode != nil {
					resp.errcode = e.Errcode.String()
				}
			}
		}
		res.Body = readCloser{io.MultiReader(bytes.NewReader(head), res.Body), res.Body}
	}
	return resp, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// isJSON reports whether a Content-Type may be a WeChat JSON answer: WeChat
// labels them application/json, and some text/plain.
func isJSON(ct string) bool {
	ct = strings.ToLower(ct)
	return strings.HasPrefix(ct, "application/json") || strings.HasPrefix(ct, "text/plain")
}

// forwardedHeaders are the only request headers passed on to WeChat:
// what describes the body and what a media download negotiates. Anything
// else a caller sends (its address in X-Forwarded-For, True-Client-IP or
// CF-Connecting-IP, Via, X-HTTP-Method-Override, credentials, headers its
// Connection names) would speak to WeChat for the caller, so a list of
// what to keep is safer than a list of what to drop. Accept-Encoding is
// not kept: the relay reads WeChat's JSON answers for their errcode, so it
// takes them as they come (Go's transport asks for gzip itself and
// unpacks it), and the caller gets them unpacked.
var forwardedHeaders = []string{
	"Accept", "Accept-Language", "Content-Type", "Content-Encoding", "User-Agent",
	"Range", "If-Range", "If-None-Match", "If-Modified-Since",
}

// copyRequestHeader copies the forwardedHeaders of src.
func copyRequestHeader(dst, src http.Header) {
	for _, k := range forwardedHeaders {
		if vs := src.Values(k); len(vs) > 0 {
			dst[k] = append([]string(nil), vs...)
		}
	}
}

// hopHeaders are the hop-by-hop headers of WeChat's answers, which no
// proxy passes on (RFC 9110 §7.6.1), and Content-Length, which the relay
// sets itself.
var hopHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true, "Proxy-Authorization": true,
	"Proxy-Connection": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	"Content-Length": true, "Set-Cookie": true,
}

// copyResponseHeader copies WeChat's answer's headers but the hop-by-hop
// ones, those its Connection header names included.
func copyResponseHeader(dst, src http.Header) {
	named := map[string]bool{}
	for _, v := range src.Values("Connection") {
		for f := range strings.SplitSeq(v, ",") {
			named[http.CanonicalHeaderKey(strings.TrimSpace(f))] = true
		}
	}
	for k, vs := range src {
		if hopHeaders[k] || named[k] {
			continue
		}
		dst[k] = append(dst[k][:0:0], vs...)
	}
}

// queryValue returns the (unescaped) value of the first parameter name in
// a raw query.
func queryValue(raw, name string) (string, bool) {
	for part := range strings.SplitSeq(raw, "&") {
		k, v, _ := strings.Cut(part, "=")
		if k != name {
			continue
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			return "", false
		}
		return val, true
	}
	return "", false
}

// swapQueryValue returns raw with the value of every parameter name set to
// value, and every other byte as it was: WeChat signs nothing of the query,
// but SDKs put more in it than the relay knows of.
func swapQueryValue(raw, name, value string) string {
	parts := strings.Split(raw, "&")
	for i, part := range parts {
		if k, _, _ := strings.Cut(part, "="); k == name {
			parts[i] = name + "=" + url.QueryEscape(value)
		}
	}
	return strings.Join(parts, "&")
}

// redactError keeps the real token, in the URL a *url.Error quotes, out of
// logs.
func redactError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}
