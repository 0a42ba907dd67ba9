package wxsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// maxControlBody caps the JSON bodies of the control endpoints.
const maxControlBody = 64 << 10

// controlRoutes serves the Go API of the fault and record methods over HTTP
// under /wxsim/, for tests that run wxsim as a separate process. Mutations
// answer 204 No Content; mistakes answer 400 with a plain-text reason.
func (s *Server) controlRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /wxsim/apps", s.controlAddApp)
	mux.HandleFunc("POST /wxsim/apps/{appid}/invalidate", s.controlInvalidate)
	mux.HandleFunc("GET /wxsim/calls", s.controlCalls)
	mux.HandleFunc("POST /wxsim/reset", s.controlReset)
	mux.HandleFunc("POST /wxsim/faults/system-error", s.controlSystemError)
	mux.HandleFunc("POST /wxsim/faults/reject", s.controlReject)
	mux.HandleFunc("POST /wxsim/faults/latency", s.controlLatency)
	mux.HandleFunc("POST /wxsim/faults/ip-whitelist", s.controlIPWhitelist)
	mux.HandleFunc("DELETE /wxsim/faults", s.controlClearFaults)
}

// POST /wxsim/apps {"appid":"wx…","secret":"…"}: AddApp.
func (s *Server) controlAddApp(w http.ResponseWriter, r *http.Request) {
	var req struct {
		AppID  string `json:"appid"`
		Secret string `json:"secret"`
	}
	if !decodeControl(w, r, &req) {
		return
	}
	if req.AppID == "" || req.Secret == "" {
		http.Error(w, "wxsim: appid and secret are required", http.StatusBadRequest)
		return
	}
	s.AddApp(req.AppID, req.Secret)
	w.WriteHeader(http.StatusNoContent)
}

// POST /wxsim/apps/{appid}/invalidate: InvalidateTokens; 404 for an
// unknown app.
func (s *Server) controlInvalidate(w http.ResponseWriter, r *http.Request) {
	if err := s.InvalidateTokens(r.PathValue("appid")); err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// callsAnswer is the body of GET /wxsim/calls.
type callsAnswer struct {
	Calls  []Call                 `json:"calls"`
	Tokens map[string]TokenCounts `json:"tokens"` // by appid
}

// GET /wxsim/calls[?path=/cgi-bin/…]: Calls, optionally only those to one
// path, and the TokenCounts of every app.
func (s *Server) controlCalls(w http.ResponseWriter, r *http.Request) {
	calls := s.Calls()
	if path := r.URL.Query().Get("path"); path != "" {
		kept := calls[:0]
		for _, c := range calls {
			if c.Path == path {
				kept = append(kept, c)
			}
		}
		calls = kept
	}
	writeJSON(w, http.StatusOK, callsAnswer{Calls: calls, Tokens: s.allTokenCounts()})
}

// POST /wxsim/reset: Reset.
func (s *Server) controlReset(w http.ResponseWriter, r *http.Request) {
	s.Reset()
	w.WriteHeader(http.StatusNoContent)
}

// POST /wxsim/faults/system-error {"count":2,"path":"/cgi-bin/…"}: FailNext;
// path is optional.
func (s *Server) controlSystemError(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Count int    `json:"count"`
		Path  string `json:"path"`
	}
	if !decodeControl(w, r, &req) {
		return
	}
	if req.Count <= 0 {
		http.Error(w, "wxsim: count must be positive", http.StatusBadRequest)
		return
	}
	s.FailNext(req.Count, req.Path)
	w.WriteHeader(http.StatusNoContent)
}

// POST /wxsim/faults/reject {"openid":"o…","errcode":45015}: RejectSends;
// errcode 45015, 45047, or 0 to lift.
func (s *Server) controlReject(w http.ResponseWriter, r *http.Request) {
	var req struct {
		OpenID  string `json:"openid"`
		Errcode int    `json:"errcode"`
	}
	if !decodeControl(w, r, &req) {
		return
	}
	if err := s.RejectSends(req.OpenID, req.Errcode); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// POST /wxsim/faults/latency {"latency":"1.5s"}: SetLatency; a Go duration,
// "0s" to remove.
func (s *Server) controlLatency(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Latency string `json:"latency"`
	}
	if !decodeControl(w, r, &req) {
		return
	}
	d, err := time.ParseDuration(req.Latency)
	if err != nil || d < 0 {
		http.Error(w, fmt.Sprintf("wxsim: latency %q: want a non-negative Go duration such as \"250ms\"", req.Latency), http.StatusBadRequest)
		return
	}
	s.SetLatency(d)
	w.WriteHeader(http.StatusNoContent)
}

// POST /wxsim/faults/ip-whitelist {"enabled":true}: SetIPWhitelist.
func (s *Server) controlIPWhitelist(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Enabled *bool `json:"enabled"`
	}
	if !decodeControl(w, r, &req) {
		return
	}
	if req.Enabled == nil {
		http.Error(w, `wxsim: "enabled" (true or false) is required`, http.StatusBadRequest)
		return
	}
	s.SetIPWhitelist(*req.Enabled)
	w.WriteHeader(http.StatusNoContent)
}

// DELETE /wxsim/faults: ClearFaults.
func (s *Server) controlClearFaults(w http.ResponseWriter, r *http.Request) {
	s.ClearFaults()
	w.WriteHeader(http.StatusNoContent)
}

// decodeControl decodes a control request's JSON body into v, strictly: a
// misspelt field in a test's fault setup should fail loudly, not be
// ignored. It answers 400 and returns false on failure.
func decodeControl(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxControlBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		err = dec.Decode(new(json.RawMessage))
		if errors.Is(err, io.EOF) {
			return true
		}
		if err == nil {
			err = errors.New("more than one JSON value")
		}
	}
	http.Error(w, "wxsim: bad control request body: "+err.Error(), http.StatusBadRequest)
	return false
}
