package wxsim

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"time"
)

// Call is one request wxsim received under /cgi-bin/, and how it answered.
type Call struct {
	Time   time.Time  `json:"time"` // arrival, by Options.Now
	Method string     `json:"method"`
	Path   string     `json:"path"`
	Query  url.Values `json:"query,omitempty"`

	// AppID is the app the call acted for when known: the owner of its
	// access_token, or the appid a token request named.
	AppID string `json:"appid,omitempty"`

	// Body is the JSON body verbatim, when it was valid JSON; decode a
	// send's into Message.
	Body json.RawMessage `json:"body,omitempty"`

	// HTMLEscaped is true when Body spelled <, > or & as \u003c, \u003e or
	// \u0026, which the relay must never do (protocol §8).
	HTMLEscaped bool `json:"html_escaped,omitempty"`

	// Upload describes the file of a media/upload call.
	Upload *Upload `json:"upload,omitempty"`

	// Status is the HTTP status: 200, as WeChat answers errors too, or 404
	// for a path wxsim does not simulate.
	Status int `json:"status"`

	// Errcode is the errcode answered, 0 for success.
	Errcode int `json:"errcode"`

	// Note says why wxsim answered an error ("link.url is empty"); WeChat's
	// errmsg rarely does.
	Note string `json:"note,omitempty"`
}

// Upload describes the "media" part of an upload as the client sent it.
type Upload struct {
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`       // the part's label, not what the bytes are
	Size        int64  `json:"size"`               // bytes received, counted up to the limit plus one
	MediaID     string `json:"media_id,omitempty"` // when accepted
}

// clone returns a deep copy of c, so callers may keep or change it freely.
func (c Call) clone() Call {
	if c.Query != nil {
		q := make(url.Values, len(c.Query))
		for k, v := range c.Query {
			q[k] = slices.Clone(v)
		}
		c.Query = q
	}
	c.Body = bytes.Clone(c.Body)
	if c.Upload != nil {
		u := *c.Upload
		c.Upload = &u
	}
	return c
}

// TokenCounts counts the access tokens one app was issued, by endpoint. A
// call that returned an existing token, or failed, does not count, so a
// relay that refreshed exactly once shows a Total of 1.
type TokenCounts struct {
	// Classic counts GET /cgi-bin/token: every success issues a token.
	Classic int `json:"classic"`
	// Stable counts stable_token calls in normal mode that issued a token:
	// the first, the first after InvalidateTokens, or a new one in the old
	// one's last five minutes.
	Stable int `json:"stable"`
	// StableForced counts stable_token calls with force_refresh that
	// refreshed.
	StableForced int `json:"stable_forced"`
	// Component counts api_component_token calls that issued a component
	// access token (under the component's appid); Authorizer counts the
	// authorizer access tokens issued by api_query_auth and
	// api_authorizer_token (under the authorizer's appid).
	Component  int `json:"component,omitempty"`
	Authorizer int `json:"authorizer,omitempty"`
}

// Total is the number of tokens issued by either endpoint.
func (c TokenCounts) Total() int { return c.Classic + c.Stable + c.StableForced }

// record keeps a finished call.
func (s *Server) record(ctx context.Context, c Call) {
	if s.log.Enabled(ctx, slog.LevelDebug) {
		attrs := []slog.Attr{
			slog.String("method", c.Method),
			slog.String("path", c.Path),
			slog.String("appid", c.AppID),
			slog.Int("status", c.Status),
			slog.Int("errcode", c.Errcode),
		}
		if c.Note != "" {
			attrs = append(attrs, slog.String("note", c.Note))
		}
		s.log.LogAttrs(ctx, slog.LevelDebug, "wechat api call", attrs...)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
}

// countIssue updates appid's token counts. s.mu must be held.
func (s *Server) countIssue(appid string, update func(*TokenCounts)) {
	c := s.issued[appid]
	update(&c)
	s.issued[appid] = c
}

// Calls returns a copy of the record: every call under /cgi-bin/ since New
// or the last Reset, in the order wxsim handled them. A call is recorded
// before it is answered.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	calls := make([]Call, len(s.calls))
	for i, c := range s.calls {
		calls[i] = c.clone()
	}
	return calls
}

// TokenCounts returns how many tokens appid was issued since New or the
// last Reset.
func (s *Server) TokenCounts(appid string) TokenCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issued[appid]
}

// allTokenCounts returns the token counts of every app issued a token.
func (s *Server) allTokenCounts() map[string]TokenCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.issued)
}

// Reset forgets the record and the token counts and clears every fault, to
// start a test phase afresh. Registered apps, live tokens, media and the
// day's force_refresh quota survive, as they would on WeChat, so a relay
// already running against wxsim is undisturbed.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = nil
	clear(s.issued)
	s.faults = faults{}
	s.comp.pushes = nil
}
