package wxapi

import (
	"bytes"
	"io"
	"net/http"
	"regexp"
	"strconv"
)

// echoingPaths are WeChat APIs whose answers quote an earlier request's
// URL, access_token included: /cgi-bin/openapi/rid/get looks up a failed
// call by its rid and answers its invoke_url. Their answers have every
// access_token value replaced, whichever token it was (an earlier real
// token may still be valid for five minutes after a refresh).
var echoingPaths = map[string]bool{
	"/cgi-bin/openapi/rid/get": true,
}

func echoesRequests(path string) bool { return echoingPaths[path] }

// tokenInText matches an access_token parameter as it appears in a quoted
// URL, plain or percent-encoded.
var tokenInText = regexp.MustCompile(`(access_token(?:=|%3[Dd]))[^&"'\s\\<>]*`)

// redactedToken stands for a token removed from an answer.
const redactedToken = "REDACTED_BY_WXRELAY"

// maxEchoAnswer bounds the answer of an echoing path read to be redacted;
// WeChat's are a few hundred bytes.
const maxEchoAnswer = 1 << 20

// writeRedacted answers res with every access_token value in it replaced.
func (h *Handler) writeRedacted(a *answer, res *response) {
	body, err := io.ReadAll(io.LimitReader(res.Body, maxEchoAnswer+1))
	if err != nil || len(body) > maxEchoAnswer {
		a.w.Header().Del("Content-Type")
		a.refuse(http.StatusBadGateway, codeSystemError, "system error: WeChat's answer could not be read")
		return
	}
	body = tokenInText.ReplaceAll(body, []byte("${1}"+redactedToken))
	a.w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	a.w.WriteHeader(res.StatusCode)
	a.w.Write(body)
}

// maskWriter writes what it is given with every occurrence of secret
// replaced by as many '*'. It holds back len(secret)-1 bytes, which may
// begin an occurrence that the next write completes; flush writes them.
type maskWriter struct {
	w       io.Writer
	secret  []byte
	pending []byte
	err     error
}

func (m *maskWriter) Write(p []byte) (int, error) {
	if m.err != nil {
		return 0, m.err
	}
	if len(m.secret) == 0 {
		_, m.err = m.w.Write(p)
		return len(p), m.err
	}
	m.pending = append(m.pending, p...)
	for i := bytes.Index(m.pending, m.secret); i >= 0; i = bytes.Index(m.pending, m.secret) {
		copy(m.pending[i:], bytes.Repeat([]byte{'*'}, len(m.secret)))
	}
	keep := min(len(m.secret)-1, len(m.pending))
	out := len(m.pending) - keep
	if out > 0 {
		if _, m.err = m.w.Write(m.pending[:out]); m.err != nil {
			return 0, m.err
		}
		m.pending = append(m.pending[:0], m.pending[out:]...)
	}
	return len(p), nil
}

func (m *maskWriter) flush() {
	if m.err == nil && len(m.pending) > 0 {
		_, m.err = m.w.Write(m.pending)
		m.pending = m.pending[:0]
	}
}
