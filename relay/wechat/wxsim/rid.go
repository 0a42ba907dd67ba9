package wxsim

import (
	"encoding/json"
	"net"
	"net/http"
)

// ridInfo is what /cgi-bin/openapi/rid/get tells of a failed call: WeChat
// keeps it for the rid its errmsg ended in. request_url is the call's URL
// parameters as sent, access_token included, which is why a relay must
// not pass this answer on unread.
type ridInfo struct {
	AppID        string `json:"-"`
	InvokeTime   int64  `json:"invoke_time"`
	CostInMs     int64  `json:"cost_in_ms"`
	RequestURL   string `json:"request_url"`
	RequestBody  string `json:"request_body"`
	ResponseBody string `json:"response_body"`
	ClientIP     string `json:"client_ip"`
}

// maxRIDs bounds the failed calls remembered; past it the record starts
// anew (WeChat keeps rids for a limited time too).
const maxRIDs = 10000

// rememberRID keeps a failed call under its rid.
func (s *Server) rememberRID(rid string, r *http.Request, rec Call, answer any) {
	resp, _ := json.Marshal(answer)
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	info := ridInfo{
		AppID: rec.AppID, InvokeTime: rec.Time.Unix(), CostInMs: s.now().Sub(rec.Time).Milliseconds(),
		RequestURL: r.URL.RawQuery, RequestBody: string(rec.Body), ResponseBody: string(resp), ClientIP: ip,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.rids) >= maxRIDs {
		clear(s.rids)
	}
	s.rids[rid] = info
}

// ridGet serves POST /cgi-bin/openapi/rid/get {"rid": "..."}: the failed
// call of that rid, if it was this app's.
func (s *Server) ridGet(r *http.Request, rec *Call) (any, error) {
	appid, err := s.authorize(r, rec)
	if err != nil {
		return nil, err
	}
	var req struct {
		RID string `json:"rid"`
	}
	if err := readJSON(r, rec, &req); err != nil {
		return nil, err
	}
	s.mu.Lock()
	info, ok := s.rids[req.RID]
	s.mu.Unlock()
	if !ok || (info.AppID != "" && info.AppID != appid) {
		return nil, failf(codeInvalidRID, "no failed call of this app has rid %q", req.RID)
	}
	return struct {
		result
		Request ridInfo `json:"request"`
	}{okResult(), info}, nil
}
