package api

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fullstorydev/grpchan/inprocgrpc"
	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
	"google.golang.org/protobuf/encoding/protojson"

	wxrelayv1 "github.com/wxrelay/wxrelay/api/gen/wxrelay/v1"
	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/relay/calllog"
	"github.com/wxrelay/wxrelay/relay/message"
	"github.com/wxrelay/wxrelay/relay/rejection"
	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/tenant"
)

// MaxBodyBytes caps REST request bodies; larger ones get 413. Media
// uploads have their own cap, MaxUploadBodyBytes.
const MaxBodyBytes = 1 << 20

// maxGRPCMessage caps a received gRPC message: a full-size upload plus
// room for the other fields.
const maxGRPCMessage = wechat.MaxUploadBytes + 1<<20

// gRPC connection limits, as on the HTTP port (cmd/wxrelay): a connection
// must finish its handshake within grpcHandshakeTimeout, and one with no
// call in flight for DefaultGRPCMaxIdle is closed (GOAWAY; clients
// reconnect when they next call).
const (
	grpcHandshakeTimeout = 10 * time.Second
	DefaultGRPCMaxIdle   = 2 * time.Minute
)

// Options wires a Server. All but Ready, Registry and Routes are required.
type Options struct {
	Logger  *slog.Logger
	Auth    *tenant.Authenticator
	Tenants *tenant.Service
	// Components registers third-party platforms; nil: the component
	// methods answer NOT_FOUND for every id and list none.
	Components *tenant.ComponentService
	// ComponentTokens is the keeper of components' tokens, for their
	// token_status; nil shows none.
	ComponentTokens ComponentTokenStatuser
	// ComponentHealth computes components' health for the component
	// resource; nil leaves it unset.
	ComponentHealth ComponentHealthChecker
	// Consent makes consent links for components' tenants; nil: none.
	Consent ConsentLinker
	// Authorizations reads components' authorizations, for the component's
	// authorizers and the tenant's authorization; nil: none shown.
	Authorizations AuthorizationReader
	Events         *relay.Events
	Redeliver      Redeliverer
	// Appender stores test events for delivery (SendTestEvent); nil
	// refuses them.
	Appender EventAppender
	// Recoveries keeps bulk recoveries of failed events, which a job
	// steps every 2 s; nil: none.
	Recoveries relay.RecoveryStore
	Messages   Messenger
	// TokenStatus reports tenants' access token status for GetTenant
	// (a *token.Keeper); nil leaves token_status unset.
	TokenStatus TokenStatuser
	// Health computes tenants' health for the tenant resource; nil leaves
	// it out.
	Health    HealthChecker
	PublicURL string // base of push URLs, e.g. https://relay.example.com
	// Ready reports whether the service can take traffic (it can durably
	// store a push: store.DB.Writable); /readyz answers 503 while it
	// returns an error.
	Ready func(context.Context) error
	// Registry collects the API's metrics; MetricsHandler serves it.
	Registry *prometheus.Registry
	// Routes adds handlers beside the API, such as the push endpoint.
	Routes map[string]http.Handler
	// Idempotency keeps SendMessage's idempotency keys; nil refuses keys
	// (UNIMPLEMENTED).
	Idempotency message.IdempotencyStore
	// Calls lists the calls tenants made through the WeChat-compatible
	// API and the send API; nil answers every listing empty.
	Calls calllog.Store
	// CallRecorder records the calls of the send API (MessageService)
	// beside the compatible API's; nil records none.
	CallRecorder CallRecorder
	// CheckCredentials asks WeChat whether a new tenant's appid and
	// AppSecret hold, for CreateTenant's check_credentials, without
	// disturbing the token in use (a stable token without force_refresh);
	// nil refuses the check.
	CheckCredentials func(ctx context.Context, appid, secret string) error
	// FetchToken starts fetching a tenant's access token, in the
	// background, once it is created; nil leaves it to the keeper's scan.
	FetchToken func(tenant.ID)
	// Operators keeps the named operators (OperatorService); with it the
	// API takes their keys. Nil: no operators.
	Operators tenant.OperatorStore
	// Audit keeps the audit log of admins' changes (AuditService); nil
	// keeps none.
	Audit tenant.AuditStore
	// Finder looks across tenants for the operator's Search; nil finds
	// tenants by id only.
	Finder Finder
	// PushRejections lists the runs of refused pushes per tenant; nil
	// answers every listing empty.
	PushRejections rejection.Store
	// TenantWriteRate and TenantWriteBurst are each tenant's budget of
	// redeliveries, test events and recoveries asked for with its own key
	// (tenantwrites.go); zero means DefaultTenantWriteRate and
	// DefaultTenantWriteBurst, a negative rate no budget.
	TenantWriteRate  float64
	TenantWriteBurst int
	// GRPCMaxIdle closes gRPC connections without a call for this long;
	// zero means DefaultGRPCMaxIdle.
	GRPCMaxIdle time.Duration
}

// Server serves the API over gRPC and, through grpc-gateway, over REST.
type Server struct {
	log     *slog.Logger
	metrics http.Handler
	grpc    *grpc.Server
	handler http.Handler
	inproc  *inprocgrpc.Channel // the services, for REST
	health  *health.Server
	uploads *uploadSlots // a slot per upload in progress, REST and gRPC
}

// New builds a Server. REST calls reach the services over an in-process
// channel, so they pass through the very same interceptors (auth, error
// mapping, logging, metrics) as gRPC calls do; the gateway's direct-call
// mode would skip them.
func New(opts Options) (*Server, error) {
	if opts.Logger == nil || opts.Auth == nil || opts.Tenants == nil || opts.Events == nil || opts.Redeliver == nil || opts.Messages == nil {
		return nil, errors.New("api: Logger, Auth, Tenants, Events, Redeliver and Messages are required")
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.Calls == nil {
		opts.Calls = noCalls{}
	}
	log := opts.Logger
	metrics := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram())
	if err := opts.Registry.Register(metrics); err != nil {
		return nil, fmt.Errorf("api: register metrics: %w", err)
	}
	logCalls := logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		log.Log(ctx, slog.Level(lvl), msg, fields...)
	})
	onPanic := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic in handler", "panic", p)
		return status.Error(codes.Internal, "internal error")
	})
	unary := []grpc.UnaryServerInterceptor{
		recovery.UnaryServerInterceptor(onPanic),
		metrics.UnaryServerInterceptor(),
		logging.UnaryServerInterceptor(logCalls, logging.WithLogOnEvents(logging.FinishCall), logging.WithLevels(callLogLevel)),
		callRecordInterceptor(opts.CallRecorder),
		errorInterceptor(log),
		authUnaryInterceptor(opts.Auth),
		// After auth, which names the caller, and around everything that
		// can refuse a change, so that refusals are logged too.
		auditInterceptor(opts.Audit, log),
		readOnlyInterceptor,
		// After audit: a write refused for the tenant's budget is its own
		// traffic, as its writes are, and not an admin's change.
		tenantWritesInterceptor(opts.TenantWriteRate, opts.TenantWriteBurst),
		// After auth: an unauthenticated caller learns nothing of its input.
		textInterceptor,
	}
	reads := newReadGate()
	gs := grpc.NewServer(
		// Room for a full-size UploadMedia request; gRPC's default is 4 MiB.
		grpc.MaxRecvMsgSize(maxGRPCMessage),
		// grpc-go keeps a connection that does nothing for as long as the
		// client likes and gives a silent one 120 s to say hello; the HTTP
		// port gives 10 s to a connection that sends no request and 120 s
		// to an idle keep-alive one. The same here, so that idle or
		// half-open connections cannot pile up, and clients may not ping
		// more often than every 10 s to keep theirs alive.
		grpc.ConnectionTimeout(grpcHandshakeTimeout),
		// Refuse a call without a token signed here before its message,
		// up to maxGRPCMessage, is read.
		grpc.InTapHandle(credentialsTap(opts.Auth)),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle: cmp.Or(opts.GRPCMaxIdle, DefaultGRPCMaxIdle),
			Time:              time.Minute,
			Timeout:           20 * time.Second,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             10 * time.Second,
			PermitWithoutStream: true,
		}),
		grpc.ChainUnaryInterceptor(unary...),
		// What a caller can make the relay hold while its messages are
		// read (grpcgate.go): no window grows past grpcStreamWindow on
		// its own (a set window turns off grpc-go's BDP estimation), and
		// a connection carries at most 100 calls at once.
		grpc.InitialWindowSize(grpcStreamWindow),
		grpc.InitialConnWindowSize(16*grpcStreamWindow),
		grpc.MaxConcurrentStreams(100),
		grpc.ChainStreamInterceptor(
			reads.streams,
			recovery.StreamServerInterceptor(onPanic),
			metrics.StreamServerInterceptor(),
			logging.StreamServerInterceptor(logCalls, logging.WithLogOnEvents(logging.FinishCall), logging.WithLevels(callLogLevel)),
			authStreamInterceptor(opts.Auth, log),
		),
	)
	// REST calls reach the services through an in-process channel: a
	// method call with the request cloned, through the same unary
	// interceptors as gRPC calls (auth, error mapping, logging, metrics).
	// The gateway's direct-call mode would skip the interceptors; a
	// loopback gRPC connection, which this replaced, marshalled every call
	// into HTTP/2 frames and back, about a quarter of the relay's CPU on a
	// send (docs/benchmarks.md, "Sending").
	inproc := new(inprocgrpc.Channel).WithServerUnaryInterceptor(chainUnary(unary))
	messages := &messageServer{messages: opts.Messages, idem: opts.Idempotency, now: time.Now}
	uploads := newUploadSlots()
	// gRPC uploads take their slot before their message is read; REST
	// uploads take theirs in uploadHandler, before reading the body.
	tenantsSrv := &tenantServer{
		tenants:    opts.Tenants,
		tokens:     opts.TokenStatus,
		health:     opts.Health,
		consent:    opts.Consent,
		auths:      opts.Authorizations,
		rejections: opts.PushRejections,

		checkCredentials: opts.CheckCredentials,
		fetchToken:       opts.FetchToken,
		finder:           opts.Finder,
		publicURL:        strings.TrimRight(opts.PublicURL, "/"),
	}
	if opts.Components == nil {
		opts.Components = tenant.NewComponentService(noComponents{}, nil)
	}
	componentsSrv := &componentServer{components: opts.Components, tokens: opts.ComponentTokens, health: opts.ComponentHealth, auths: opts.Authorizations, publicURL: strings.TrimRight(opts.PublicURL, "/")}
	eventsSrv := &eventServer{events: opts.Events, redeliver: opts.Redeliver, tenants: opts.Tenants, appender: opts.Appender,
		recoveries: opts.Recoveries}
	callsSrv := &callServer{tenants: opts.Tenants, calls: opts.Calls}
	if opts.Operators != nil {
		opts.Auth.SetOperators(opts.Operators)
	}
	operatorsSrv := &operatorServer{auth: opts.Auth, store: opts.Operators}
	auditSrv := &auditServer{store: opts.Audit}
	hs := health.NewServer()
	// On the network, every message is read in a read slot (grpcgate.go);
	// in process (REST), the body was read, and bounded, already.
	for _, svc := range []struct {
		desc *grpc.ServiceDesc
		impl any
	}{
		{&wxrelayv1.TenantService_ServiceDesc, tenantsSrv},
		{&wxrelayv1.ComponentService_ServiceDesc, componentsSrv},
		{&wxrelayv1.EventService_ServiceDesc, eventsSrv},
		{gateUploads(&wxrelayv1.MessageService_ServiceDesc, uploads), messages},
		{&wxrelayv1.CallService_ServiceDesc, callsSrv},
		{&wxrelayv1.OperatorService_ServiceDesc, operatorsSrv},
		{&wxrelayv1.AuditService_ServiceDesc, auditSrv},
		{&healthpb.Health_ServiceDesc, hs},
	} {
		gs.RegisterService(reads.unary(svc.desc), svc.impl)
	}
	wxrelayv1.RegisterTenantServiceServer(inproc, tenantsSrv)
	wxrelayv1.RegisterComponentServiceServer(inproc, componentsSrv)
	wxrelayv1.RegisterEventServiceServer(inproc, eventsSrv)
	wxrelayv1.RegisterMessageServiceServer(inproc, messages)
	wxrelayv1.RegisterCallServiceServer(inproc, callsSrv)
	wxrelayv1.RegisterOperatorServiceServer(inproc, operatorsSrv)
	wxrelayv1.RegisterAuditServiceServer(inproc, auditSrv)
	reflection.Register(gs) // streams: read in slots by reads.streams
	metrics.InitializeMetrics(gs)

	s := &Server{log: log, metrics: promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{Registry: opts.Registry}), grpc: gs, inproc: inproc, health: hs, uploads: uploads}

	gw := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}),
		runtime.WithIncomingHeaderMatcher(headerMatcher),
		runtime.WithErrorHandler(gatewayErrorHandler),
	)
	for _, err := range []error{
		wxrelayv1.RegisterTenantServiceHandlerClient(context.Background(), gw, wxrelayv1.NewTenantServiceClient(inproc)),
		wxrelayv1.RegisterComponentServiceHandlerClient(context.Background(), gw, wxrelayv1.NewComponentServiceClient(inproc)),
		wxrelayv1.RegisterEventServiceHandlerClient(context.Background(), gw, wxrelayv1.NewEventServiceClient(inproc)),
		wxrelayv1.RegisterMessageServiceHandlerClient(context.Background(), gw, wxrelayv1.NewMessageServiceClient(inproc)),
		wxrelayv1.RegisterCallServiceHandlerClient(context.Background(), gw, wxrelayv1.NewCallServiceClient(inproc)),
		wxrelayv1.RegisterOperatorServiceHandlerClient(context.Background(), gw, wxrelayv1.NewOperatorServiceClient(inproc)),
		wxrelayv1.RegisterAuditServiceHandlerClient(context.Background(), gw, wxrelayv1.NewAuditServiceClient(inproc)),
	} {
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("api: register gateway: %w", err)
		}
	}

	mux := http.NewServeMux()
	// Multipart upload, which grpc-gateway cannot parse. The pattern is more
	// specific than "/v1/", so it takes precedence over the gateway.
	// Both check the caller's token before reading any body.
	mux.Handle("POST /v1/tenants/{id}/media", requireCredentials(opts.Auth, s.uploadHandler()))
	mux.Handle("/v1/", requireCredentials(opts.Auth, limitBody(gw)))
	mux.Handle("POST /v1/tenants/{id}/messages:send", requireCredentials(opts.Auth, limitBody(s.sendHandler(chainUnary(unary), messages))))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", readyHandler(opts.Ready))
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openAPI)
	})
	mux.HandleFunc("GET /swagger.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(swagger)
	})
	for pattern, h := range opts.Routes {
		mux.Handle(pattern, h)
	}
	s.handler = mux
	return s, nil
}

// Handler serves REST, operations endpoints and the extra routes.
func (s *Server) Handler() http.Handler { return s.handler }

// MetricsHandler serves the registry's metrics in Prometheus's text
// format. It is not part of Handler: per-tenant series name every tenant,
// which is nobody's business on the public port (cmd/wxrelay serves it
// on --metrics-addr, loopback by default).
func (s *Server) MetricsHandler() http.Handler { return s.metrics }

// Client is a connection to the services in this process, through the
// same interceptors as every other call (auth included): for callers such
// as the console that act with a caller's own token.
func (s *Server) Client() grpc.ClientConnInterface { return s.inproc }

// GRPC returns the gRPC server, to serve on a network listener.
func (s *Server) GRPC() *grpc.Server { return s.grpc }

// Shutdown marks the service not serving and lets in-flight calls finish
// until ctx ends, then stops hard.
func (s *Server) Shutdown(ctx context.Context) {
	s.health.Shutdown()
	done := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.grpc.Stop()
	}
}

// Close stops the server at once.
func (s *Server) Close() {
	s.grpc.Stop()
}

// gateUploads returns desc with its UploadMedia handler taking an upload
// slot (uploadSlots) before the request, up to maxGRPCMessage, is read,
// and refusing with RESOURCE_EXHAUSTED when the caller has none left:
// the slots bound uploads' memory over gRPC as over REST.
func gateUploads(desc *grpc.ServiceDesc, uploads *uploadSlots) *grpc.ServiceDesc {
	gated := *desc
	gated.Methods = slices.Clone(desc.Methods)
	for i, m := range gated.Methods {
		if "/"+desc.ServiceName+"/"+m.MethodName != wxrelayv1.MessageService_UploadMedia_FullMethodName {
			continue
		}
		read := m.Handler
		gated.Methods[i].Handler = func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			p, _ := principalOf(ctx) // credentialsTap put it there
			release, ok := uploads.take(ctx, slotOwner(p), 0)
			if !ok {
				return nil, status.Error(codes.ResourceExhausted, uploadsBusy)
			}
			defer release()
			return read(srv, ctx, dec, interceptor)
		}
	}
	return &gated
}

// chainUnary makes one interceptor of several, the first outermost, as
// grpc.ChainUnaryInterceptor does for a grpc.Server.
func chainUnary(chain []grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		next := handler
		for i := len(chain) - 1; i >= 0; i-- {
			interceptor, inner := chain[i], next
			next = func(ctx context.Context, req any) (any, error) { return interceptor(ctx, req, info, inner) }
		}
		return next(ctx, req)
	}
}

func readyHandler(ready func(context.Context) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if ready != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if err := ready(ctx); err != nil {
				http.Error(w, "not ready: database unavailable", http.StatusServiceUnavailable)
				return
			}
		}
		io.WriteString(w, "ready\n")
	}
}

// requireCredentials answers 401 to a REST call whose bearer token is
// missing, not signed by this relay, or an API key no longer current
// (tenant.Authenticator.Precheck), before anything reads its body:
// otherwise a caller with no credentials, or with a rotated or deleted
// tenant's key, makes the gateway read and parse up to 1 MiB, and an
// upload up to 10 MiB, per request, before the interceptors refuse it.
// The full check (against the store, the principal allowed) stays in the
// interceptor, and a call without a body goes straight there, so that the
// call metrics count refused calls by method as before. The principal is
// passed on in the request's context (principalOf).
func requireCredentials(auth *tenant.Authenticator, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		p, err := precheck(r.Context(), auth, r.Header.Get("Authorization"))
		if err != nil {
			// Close the connection rather than drain a body never read.
			w.Header().Set("Connection", "close")
			if !errors.Is(err, tenant.ErrUnauthenticated) { // the key could not be looked up
				writeStatus(w, http.StatusServiceUnavailable, codes.Unavailable, "could not check the credentials; retry in a moment")
				return
			}
			writeStatus(w, http.StatusUnauthorized, codes.Unauthenticated, tenant.ErrUnauthenticated.Error())
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

type principalKey struct{}

// principalOf is the principal requireCredentials found for r's caller.
func principalOf(ctx context.Context) (tenant.Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(tenant.Principal)
	return p, ok
}

// credentialsTap is requireCredentials for gRPC: it runs as a call's
// headers arrive, before its message is read, and refuses a call to a
// guarded method with no current credentials. A tap runs on the reading
// goroutine of the caller's connection: Precheck reads memory, or on a
// tenant cache miss one indexed row, which delays only that connection.
func credentialsTap(auth *tenant.Authenticator) tap.ServerInHandle {
	return func(ctx context.Context, info *tap.Info) (context.Context, error) {
		if acc, ok := accessFor(info.FullMethodName); ok && acc == accessPublic {
			// No credentials: the call may not last (see grpcgate.go).
			ctx, cancel := context.WithTimeout(ctx, publicCallTimeout)
			context.AfterFunc(ctx, cancel)
			return ctx, nil
		}
		var authorization string
		if vals := info.Header.Get("authorization"); len(vals) > 0 {
			authorization = vals[0]
		}
		p, err := precheck(ctx, auth, authorization)
		if errors.Is(err, tenant.ErrUnauthenticated) {
			return ctx, status.Error(codes.Unauthenticated, tenant.ErrUnauthenticated.Error())
		} else if err != nil {
			return ctx, status.Error(codes.Unavailable, "could not check the credentials; retry in a moment")
		}
		return context.WithValue(ctx, principalKey{}, p), nil
	}
}

// limitBody reads REST bodies up front, capped at MaxBodyBytes, so that an
// oversized body is a clear 413 rather than a JSON syntax error from a
// truncated read.
func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		if r.ContentLength > MaxBodyBytes {
			writeStatus(w, http.StatusRequestEntityTooLarge, codes.InvalidArgument, bodyTooLarge)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			writeStatus(w, http.StatusRequestEntityTooLarge, codes.InvalidArgument, bodyTooLarge)
			return
		case err != nil:
			writeStatus(w, http.StatusBadRequest, codes.InvalidArgument, "could not read request body")
			return
		}
		if msg := jsonSyntaxError(body); msg != "" {
			writeStatus(w, http.StatusBadRequest, codes.InvalidArgument, msg)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		next.ServeHTTP(w, r)
	})
}

// jsonSyntaxError says where body stops being JSON, by line and column,
// and "" when it is JSON or empty. The gateway's parser would say only
// "unexpected EOF" or "invalid character ','", which leaves a newcomer
// searching a hand-written body for the mistake.
func jsonSyntaxError(body []byte) string {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return ""
	}
	if json.Valid(body) {
		if trimmed[0] != '{' {
			return "request body must be a JSON object, {…}"
		}
		return ""
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var v json.RawMessage
	err := dec.Decode(&v)
	at, what := len(body), "the body ends inside its JSON: an object, array or string is not closed"
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		at, what = int(se.Offset)-1, strings.TrimPrefix(se.Error(), "json: ")
	} else if err == nil {
		at, what = int(dec.InputOffset()), "more follows the JSON object; send one"
		for at < len(body) && strings.ContainsRune(" \t\r\n", rune(body[at])) {
			at++
		}
	}
	at = max(0, min(at, len(body)))
	line, col := 1, 1
	for _, r := range string(body[:at]) {
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	near := string(body[max(0, at-24):at])
	if !utf8.ValidString(near) {
		near = strings.ToValidUTF8(near, "")
	}
	return fmt.Sprintf("request body is not valid JSON: line %d, column %d, after `%s`: %s", line, col, near, what)
}

var bodyTooLarge = fmt.Sprintf("request body exceeds %d bytes", MaxBodyBytes)

// writeStatus writes the gateway's error body shape for errors raised before
// a request reaches the gateway.
func writeStatus(w http.ResponseWriter, httpStatus int, code codes.Code, msg string) {
	b, _ := protojson.Marshal(status.New(code, msg).Proto())
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus)
	w.Write(b)
}

// callLogLevel is the level of a call's "finished call" line: debug for a
// call that succeeded, grpc-middleware's defaults (info for a client's
// mistake, warn or error for the server's) otherwise. A line per
// successful call was a sixth of the relay's CPU per send (slog's JSON
// encoding and the write) and says nothing that the call metrics
// (grpc_server_handled_total by method and code) do not; failures stay in
// the log at info and above, and --log-level debug brings the rest back.
func callLogLevel(code codes.Code) logging.Level {
	if code == codes.OK {
		return logging.LevelDebug
	}
	return logging.DefaultServerCodeToLevel(code)
}

// noCalls is the call store of a server that records none.
type noCalls struct{}

func (noCalls) AppendCalls(context.Context, []calllog.Call) error { return nil }
func (noCalls) ListCalls(context.Context, tenant.ID, int64, int) ([]calllog.Call, error) {
	return nil, nil
}
func (noCalls) PruneCalls(context.Context, time.Time, int) (int, error) { return 0, nil }
