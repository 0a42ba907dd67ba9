package wxsim

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// DefaultMaxUploadBytes is the image size limit when Options.MaxUploadBytes
// is zero. WeChat documents none for mini-program temporary media (protocol
// §7, [UNCONFIRMED]); 10 MiB is roomy for any card or link thumbnail while
// keeping a runaway test from filling memory.
const DefaultMaxUploadBytes = 10 << 20

// maxJSONBody caps the JSON bodies of token, send and typing calls. A text
// message holds at most 2048 bytes (protocol §8), so 1 MiB is only a guard.
const maxJSONBody = 1 << 20

// Options configure a Server. The zero value gives a working simulator on
// the real clock with the default upload limit and no logging.
type Options struct {
	// Now is the clock behind token and media lifetimes, the daily
	// force_refresh quota and the call record. Nil means time.Now; tests
	// inject a fake to move time without sleeping. Injected latency
	// (SetLatency) is real time regardless, since it exists to exercise
	// the client's timeouts.
	Now func() time.Time

	// MaxUploadBytes caps an uploaded image; larger ones get 40009.
	// Zero means DefaultMaxUploadBytes.
	MaxUploadBytes int64

	// Log receives one debug line per API call. Nil discards.
	Log *slog.Logger
}

// Server is a fake api.weixin.qq.com. It is an http.Handler serving the
// WeChat endpoints under /cgi-bin/ and the test controls under /wxsim/, and
// is safe for concurrent use. Create it with New.
type Server struct {
	now       func() time.Time
	maxUpload int64
	log       *slog.Logger
	mux       *http.ServeMux

	mu     sync.Mutex             // guards everything below
	apps   map[string]*app        // by appid
	tokens map[string]*token      // remembered tokens, classic and stable, by value
	media  map[string]*media      // by media_id
	faults faults                 // injected misbehaviour
	calls  []Call                 // the record, in the order handled
	issued map[string]TokenCounts // by appid
	rids   map[string]ridInfo     // failed calls by their rid, for openapi/rid/get
	comp   componentState         // the open platform (component.go)
}

// New returns a Server with no apps; register them with AddApp.
func New(opts Options) *Server {
	s := &Server{
		now:       opts.Now,
		maxUpload: opts.MaxUploadBytes,
		log:       opts.Log,
		apps:      make(map[string]*app),
		tokens:    make(map[string]*token),
		media:     make(map[string]*media),
		issued:    make(map[string]TokenCounts),
		rids:      make(map[string]ridInfo),
		comp: componentState{components: make(map[string]*component), ctokens: make(map[string]*token),
			pushClient: &http.Client{Timeout: 5 * time.Second}},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.maxUpload <= 0 {
		s.maxUpload = DefaultMaxUploadBytes
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.mux = s.routes()
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()

	// The WeChat API. Patterns carry no method: WeChat answers a wrong
	// method with an errcode (43001/43002), not with HTTP 405.
	mux.Handle("/cgi-bin/token", s.api(http.MethodGet, s.classicToken))
	mux.Handle("/cgi-bin/stable_token", s.api(http.MethodPost, s.stableToken))
	// Newer docs move send and typing under /custom/business/; older docs
	// and most SDKs use /custom/. Serve both (protocol §7).
	mux.Handle("/cgi-bin/message/custom/send", s.api(http.MethodPost, s.send))
	mux.Handle("/cgi-bin/message/custom/business/send", s.api(http.MethodPost, s.send))
	mux.Handle("/cgi-bin/message/custom/typing", s.api(http.MethodPost, s.typing))
	mux.Handle("/cgi-bin/message/custom/business/typing", s.api(http.MethodPost, s.typing))
	mux.Handle("/cgi-bin/media/upload", s.api(http.MethodPost, s.upload))
	mux.Handle("/cgi-bin/media/get", s.api(http.MethodGet, s.getMedia))
	mux.Handle("/cgi-bin/openapi/rid/get", s.api(http.MethodPost, s.ridGet))
	// The open platform (protocol §9), and its consent page, which lives
	// on mp.weixin.qq.com: point the relay's --wechat-mp here too.
	mux.Handle("/cgi-bin/component/api_component_token", s.api(http.MethodPost, s.componentToken))
	mux.Handle("/cgi-bin/component/api_create_preauthcode", s.api(http.MethodPost, s.preAuthCode))
	mux.Handle("/cgi-bin/component/api_query_auth", s.api(http.MethodPost, s.queryAuth))
	mux.Handle("/cgi-bin/component/api_authorizer_token", s.api(http.MethodPost, s.authorizerToken))
	mux.Handle("/cgi-bin/component/api_get_authorizer_list", s.api(http.MethodPost, s.authorizerList))
	mux.Handle("/cgi-bin/component/api_start_push_ticket", s.api(http.MethodPost, s.startPushTicket))
	mux.HandleFunc("/cgi-bin/componentloginpage", s.consentPage)
	mux.HandleFunc("/cgi-bin/", s.unknownAPI)

	s.controlRoutes(mux)
	s.componentControlRoutes(mux)
	return mux
}

// endpoint handles one WeChat API call once the shared steps are done. It
// returns the success body (a JSON value, or a rawAnswer) or an *apiError,
// and fills in rec as it learns who is calling and what they sent.
type endpoint func(r *http.Request, rec *Call) (any, error)

// rawAnswer is a success body that is not JSON: media/get's image bytes.
type rawAnswer interface {
	writeTo(w http.ResponseWriter)
}

// api wraps an endpoint in what every WeChat call shares: the body size
// cap, injected system errors and latency, the method check, WeChat's
// answer shape (HTTP 200 even for errors) and the call record.
func (s *Server) api(method string, h endpoint) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := Call{
			Time:   s.now(),
			Method: r.Method,
			Path:   r.URL.Path,
			Query:  r.URL.Query(),
			Status: http.StatusOK,
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.maxUpload+maxJSONBody)
		answer, err := s.dispatch(r, &rec, method, h)
		if err != nil {
			apiErr, ok := errors.AsType[*apiError](err)
			if !ok { // a bug in wxsim: say so the way WeChat would
				apiErr = &apiError{code: codeSystemError, note: err.Error()}
			}
			rec.Errcode, rec.Note = apiErr.code, apiErr.note
			rid := newRID()
			answer = apiErr.body(rid)
			s.rememberRID(rid, r, rec, answer)
		}
		// Recorded before answering, so a client holding its answer
		// always finds the call in the record.
		s.record(r.Context(), rec)

		// Injected latency delays the answer, not the effect: like a slow
		// WeChat, a send that times out on the client may still have gone
		// through, and the relay has to live with that.
		s.delay(r.Context())
		if raw, ok := answer.(rawAnswer); ok {
			raw.writeTo(w)
			return
		}
		writeJSON(w, http.StatusOK, answer)
	})
}

func (s *Server) dispatch(r *http.Request, rec *Call, method string, h endpoint) (any, error) {
	if s.takeSystemError(r.URL.Path) {
		return nil, fail(codeSystemError, "injected system error")
	}
	if r.Method != method {
		code := codeRequirePOST
		if method == http.MethodGet {
			code = codeRequireGET
		}
		return nil, failf(code, "method %s", r.Method)
	}
	return h(r, rec)
}

// unknownAPI answers paths under /cgi-bin/ that wxsim does not simulate,
// recording them so a relay calling the wrong URL shows up in the record.
func (s *Server) unknownAPI(w http.ResponseWriter, r *http.Request) {
	s.record(r.Context(), Call{
		Time:   s.now(),
		Method: r.Method,
		Path:   r.URL.Path,
		Query:  r.URL.Query(),
		Status: http.StatusNotFound,
		Note:   "wxsim does not simulate this path",
	})
	http.NotFound(w, r)
}

// readJSON reads a JSON object body into v, keeping the raw body in rec.
// It answers 44002 for an empty body and 47001 for anything that is not a
// JSON object with fields of the right types.
func readJSON(r *http.Request, rec *Call, v any) error {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxJSONBody+1))
	switch {
	case err != nil:
		return failf(codeDataFormat, "reading body: %v", err)
	case len(data) > maxJSONBody:
		return failf(codeContentTooLong, "body over %d bytes", maxJSONBody)
	}
	trimmed := bytes.TrimSpace(data)
	switch {
	case len(trimmed) == 0:
		return fail(codeEmptyPostData, "empty body")
	case !json.Valid(trimmed):
		return fail(codeDataFormat, "body is not JSON")
	}
	rec.Body = json.RawMessage(trimmed)
	rec.HTMLEscaped = htmlEscaped(trimmed)
	if trimmed[0] != '{' {
		return fail(codeDataFormat, "body is not a JSON object")
	}
	if err := json.Unmarshal(trimmed, v); err != nil {
		return failf(codeDataFormat, "decoding body: %v", err)
	}
	return nil
}

// writeJSON writes v as WeChat does: raw UTF-8, no HTML escaping, and the
// "encoding=utf-8" parameter seen on api.weixin.qq.com answers where
// "charset" belongs (clients should key on the media type alone).
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, "wxsim: encoding answer: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; encoding=utf-8")
	w.WriteHeader(status)
	// WeChat's answers end at their closing brace: the Encoder's newline
	// made a popular Node.js SDK's parser fail on every answer the relay
	// forwarded byte for byte, reporting delivered messages as failed.
	w.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

// randomID returns n random bytes as unpadded base64url: the URL-safe
// alphabet of real access tokens and media ids.
func randomID(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails since Go 1.24
	return base64.RawURLEncoding.EncodeToString(b)
}
