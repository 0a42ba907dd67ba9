package wxsim

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrUnknownApp is returned by InvalidateTokens for an appid never
// registered with AddApp.
var ErrUnknownApp = errors.New("wxsim: unknown appid")

// faults is the misbehaviour injected into the next calls.
type faults struct {
	systemErrors []systemErrors // consumed first to last
	rejected     map[string]int // openid → 45015 or 45047 for sends
	latency      time.Duration  // added before every API answer
	ipWhitelist  bool           // token calls answer 40164
}

// systemErrors is a batch of -1 answers, for one path or ("") any.
type systemErrors struct {
	path string
	left int
}

// FailNext makes the next n API calls answer errcode -1 "system error", the
// transient failure WeChat asks clients to retry (protocol §6). With a
// path such as "/cgi-bin/message/custom/send", only calls to exactly that
// path fail; with "", any call does. Batches from several calls queue up.
func (s *Server) FailNext(n int, path string) {
	if n <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.systemErrors = append(s.faults.systemErrors, systemErrors{path: path, left: n})
}

// takeSystemError reports whether a call to path must fail with -1, using
// up one of the injected failures if so.
func (s *Server) takeSystemError(path string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.faults.systemErrors {
		f := &s.faults.systemErrors[i]
		if f.path != "" && f.path != path {
			continue
		}
		if f.left--; f.left == 0 {
			s.faults.systemErrors = append(s.faults.systemErrors[:i], s.faults.systemErrors[i+1:]...)
		}
		return true
	}
	return false
}

// RejectSends makes every valid send to openid answer errcode: 45015
// ("response out of time limit or subscription is canceled": the user's
// 48-hour window is closed) or 45047 ("out of response count limit": the
// window's reply quota is used up), as in protocol §7. Errcode 0 lifts the
// rejection. Typing calls are not affected.
func (s *Server) RejectSends(openid string, errcode int) error {
	switch {
	case openid == "":
		return errors.New("wxsim: RejectSends needs an openid")
	case errcode != 0 && errcode != codeOutOfWindow && errcode != codeOutOfResponses:
		return fmt.Errorf("wxsim: RejectSends errcode %d: want %d, %d or 0", errcode, codeOutOfWindow, codeOutOfResponses)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if errcode == 0 {
		delete(s.faults.rejected, openid)
		return nil
	}
	if s.faults.rejected == nil {
		s.faults.rejected = make(map[string]int)
	}
	s.faults.rejected[openid] = errcode
	return nil
}

// SetLatency delays every API answer by d of real time (not Options.Now),
// to exercise client timeouts. The call takes effect at once and only its
// answer waits, so a send whose client timed out is still delivered and
// recorded. Zero removes the delay.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.latency = max(d, 0)
}

// delay waits out the injected latency, or until ctx ends.
func (s *Server) delay(ctx context.Context) {
	s.mu.Lock()
	d := s.faults.latency
	s.mu.Unlock()
	if d == 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// SetIPWhitelist switches whitelist mode: while on, both token endpoints
// answer 40164 naming the caller's IP, as WeChat does for a server outside
// the account's IP whitelist. Whether mini programs are subject to the
// whitelist is unconfirmed (protocol §6), hence a switch.
func (s *Server) SetIPWhitelist(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.ipWhitelist = on
}

// InvalidateTokens kills every token of appid now, classic and stable, as
// if WeChat had revoked them without notice: calls with them answer 40001,
// and the next stable_token call issues a new token. Returns ErrUnknownApp
// if appid is not registered.
func (s *Server) InvalidateTokens(appid string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[appid]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownApp, appid)
	}
	now := s.now()
	for _, t := range a.tokens {
		t.retire(now)
	}
	return nil
}

// ClearFaults removes every injected fault: pending system errors,
// rejected openids, latency and the IP whitelist. Tokens already
// invalidated stay dead.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = faults{}
}
