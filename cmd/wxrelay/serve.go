package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/wxrelay/wxrelay/api"
	"github.com/wxrelay/wxrelay/api/console"
	"github.com/wxrelay/wxrelay/api/throttle"
	"github.com/wxrelay/wxrelay/api/wxapi"
	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/relay/alert"
	"github.com/wxrelay/wxrelay/relay/calllog"
	"github.com/wxrelay/wxrelay/relay/component"
	"github.com/wxrelay/wxrelay/relay/delivery"
	"github.com/wxrelay/wxrelay/relay/health"
	"github.com/wxrelay/wxrelay/relay/ingress"
	"github.com/wxrelay/wxrelay/relay/message"
	"github.com/wxrelay/wxrelay/relay/pace"
	"github.com/wxrelay/wxrelay/relay/rejection"
	"github.com/wxrelay/wxrelay/relay/token"
	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/cmalloc"
	"github.com/wxrelay/wxrelay/tenant"
)

// shutdownGrace bounds how long SIGTERM waits for in-flight requests.
const shutdownGrace = 20 * time.Second

// maxTTLText is tenant.MaxAdminTokenTTL as people write it: "168h (7 days)".
var maxTTLText = fmt.Sprintf("%.0fh (%.0f days)", tenant.MaxAdminTokenTTL.Hours(), tenant.MaxAdminTokenTTL.Hours()/24)

// defaultMemoryLimit is the Go runtime's soft memory limit unless
// GOMEMLIMIT is set.
const defaultMemoryLimit = 256 << 20

// tenantCacheTTL is the longest a cached tenant is used unread.
const tenantCacheTTL = 30 * time.Second

func serve(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := newFlagSet("serve", getenv, stderr)
	fs.addServeFlags()
	cfg, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := cfg.validateServe(); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	if getenv("GOGC") == "" {
		// The relay's live heap is small (tenants, queues, buffers) and
		// nearly all it allocates dies with the request, so collecting at
		// 5x the live heap instead of 2x spends a few megabytes to take
		// about 14% more pushes a second (docs/benchmarks.md). GOGC
		// overrides it.
		debug.SetGCPercent(400)
	}
	if getenv("GOMEMLIMIT") == "" {
		// GOGC=400 lets the heap reach five times what is live before a
		// collection: harmless for the small live heap of pushes and
		// sends, but a burst of media uploads (tens of MiB live) would
		// take the process to gigabytes. A soft limit makes the collector
		// work harder past it instead; it is no cap, and GOMEMLIMIT
		// overrides it.
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	if cfg.MallocKeep > 0 {
		cmalloc.KeepFreedHeap(cfg.MallocKeep)
	}
	// Every part registers how it stops as it starts; whatever way serve
	// returns, they stop in lifecycle's stated order.
	lc := newLifecycle(log, shutdownGrace)
	defer lc.stop()
	k, err := loadKeys(cfg)
	if err != nil {
		return err
	}

	// Listen before anything slow, so a taken port fails start-up at once.
	httpLn, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("--http-addr: %w", err)
	}
	lc.listener("http listener", httpLn)
	grpcLn, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("--grpc-addr: %w", err)
	}
	lc.listener("gRPC listener", grpcLn)
	var metricsLn net.Listener
	if cfg.MetricsAddr != "" {
		addr, _ := privateListenAddr(cfg.MetricsAddr)
		if metricsLn, err = net.Listen("tcp", addr); err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		lc.listener("metrics listener", metricsLn)
	}

	db, err := store.Open(ctx, store.Config{DSN: cfg.DB, SealKey: k.seal, Logger: log, MaxConns: cfg.DBMaxConns})
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	lc.onStop(stopWriting, "database", closer(db.Close))

	tenantStore, eventStore, deliveryStore := store.NewTenantStore(db), store.NewEventStore(db), store.NewDeliveryStore(db)
	auth, err := tenant.NewAuthenticator(k.jwt, tenantStore, nil)
	if err != nil {
		return err
	}
	tenants := tenant.NewService(tenantStore, auth, cfg.AllowPrivateWebhooks, nil)
	tenants.SetPushSecretGrace(cfg.PushSecretGrace)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// Changes reach the cache as they are made: at once through this
	// process's Service, within milliseconds from other replicas through
	// the database's notices (store.DB.WatchTenants). The TTL only bounds
	// the staleness a lost notice could leave.
	tenantCache := tenant.NewCache(tenants, tenantCacheTTL, nil)
	tenants.OnChange(tenantCache.Forget)
	// The check before a body is read asks the cache whether an API key
	// is current, so that a rotated or deleted tenant's key is refused
	// unread without a database read per call.
	auth.SetKeyCache(tenantCache)
	sender := delivery.NewSender(delivery.SenderOptions{AllowPrivate: cfg.AllowPrivateWebhooks, Timeout: cfg.DeliveryTimeout})
	lc.onStop(stopWriting, "webhook sender", func(context.Context) error { sender.Close(); return nil })
	deliveryMetrics := delivery.NewMetrics(reg)
	dispatcher, err := delivery.New(delivery.Options{
		Store:    deliveryStore,
		Tenants:  tenantCache,
		Sender:   sender,
		Schedule: delivery.Schedule(cfg.RetrySchedule),
		Logger:   log,
		Metrics:  deliveryMetrics,
		// Leases and due times are compared by every replica: on the
		// database's clock, not this machine's (store/clock.go).
		Now: db.Now,
	})
	if err != nil {
		return err
	}
	tenants.OnChange(dispatcher.Forget)

	// Pushes are committed by one group-committing writer, which wakes the
	// dispatcher after each commit. It is closed after the HTTP server has
	// drained, so no push in flight loses its commit at shutdown.
	recordCommit := commitMetrics(reg)
	ingestor := relay.NewIngestor(eventStore, relay.IngestorOptions{FirstDelay: cfg.RetrySchedule[0], OnCommit: func(n int, took time.Duration, err error) {
		recordCommit(n, took, err)
		// New events are due at once only when the schedule's first delay
		// is zero; otherwise waking the dispatcher would run a claim that
		// finds nothing (about 18% of the relay's CPU at full load).
		if err == nil && cfg.RetrySchedule[0] == 0 {
			dispatcher.Notify()
		}
	}})
	lc.onStop(stopWriting, "ingest writer", func(context.Context) error { ingestor.Close(); return nil })
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "wxrelay_ingest_queued",
		Help: "Pushes waiting for the ingest writer's next group commit.",
	}, func() float64 { return float64(ingestor.Queued()) }))
	reg.MustRegister(db.Collectors()...)
	nonces := store.NewNonceStore(db)
	// Refused pushes are counted in memory, per tenant and cause, and
	// added to the store every few seconds by the job below: strangers
	// can have pushes refused, but not make the relay write for each.
	rejections, rejectionStore := &rejection.Tally{}, store.NewRejectionStore(db)
	lc.onStop(stopWriting, "push rejection counts", func(ctx context.Context) error { return rejections.Flush(ctx, rejectionStore) })
	push := ingress.New(ingress.Options{
		Tenants: tenantCache,
		Events:  ingestor,
		Logger:  log,
		Metrics: ingress.NewMetrics(reg),
		MaxSkew: cfg.PushMaxSkew,
		Nonces:  nonces,
		Now:     db.Now,
		// Third-party platforms' message URLs: their keys, and which
		// tenant an appid is.
		Components: ingress.ComponentLookup{Components: store.NewComponentStore(db), Tenants: tenantStore},
		Rejections: rejections,
	})
	tenants.OnChange(push.Forget)

	// One WeChat client serves every tenant; the Keeper fetches and
	// refreshes their access tokens, in the background and on demand.
	wx := &wechat.Client{BaseURL: cfg.WeChatAPI, HTTP: wechatHTTP()}
	// Components' tokens, fetched with their tickets: the same keeper
	// mechanism as tenants', one fetch per period across replicas. A
	// component's tenants get authorizer tokens through it.
	componentStore := store.NewComponentStore(db)
	componentKeeper := component.NewTokenKeeper(store.NewComponentTokenStore(db),
		component.NewTokenSource(componentStore, wx, db.Now), token.Options{Log: log, Now: db.Now})
	authorizerTokens := component.NewAuthorizerTokens(componentStore, componentKeeper, wx, log)
	keeper := token.NewKeeper(store.NewTokenStore(db), wx, tenantCache, token.Options{Log: log, Now: db.Now, Authorizers: authorizerTokens})
	tenants.OnChange(keeper.Forget)

	windows := store.NewWindowStore(db)
	messages := message.NewService(keeper, wx).WithReplyWindows(message.WindowOptions{
		Store: windows, Tenants: tenantCache, Log: log})
	// The WeChat-compatible API: under /wxapi on the HTTP port, and at the
	// root of --wxapi-addr for SDKs that can change only the host. Its
	// calls are recorded for the tenants to list, in batches off the
	// request path; the recorder is closed (and flushed) after the
	// listeners have drained.
	callStore := store.NewCallStore(db)
	calls, err := calllog.NewRecorder(callStore, calllog.Options{Logger: log, Registry: reg})
	if err != nil {
		return err
	}
	lc.onStop(stopWriting, "call records", func(context.Context) error { calls.Close(); return nil })
	idempotency := store.NewIdempotencyStore(db)
	compat, err := wxapi.New(wxapi.Options{
		Calls: calls, Idempotency: idempotency,
		Auth: auth, Tenants: tenantCache, AppIDs: tenantStore, Tokens: keeper, Replies: messages,
		// Its own connections, and a minute per call: a 10 MiB upload
		// streamed from a slow client takes longer than the relay's own
		// calls are given.
		Upstream: cfg.WeChatAPI, HTTP: wechatHTTPWithTimeout(time.Minute),
		Rate: cmp.Or(cfg.WXAPIRate, -1), Burst: int(2 * cfg.WXAPIRate),
		Proxies:  cfg.TrustedProxies,
		Registry: reg, Logger: log,
	})
	if err != nil {
		return err
	}
	tenants.OnChange(compat.Forget)

	// Tenant health, computed from the store and the keeper every
	// --health-interval (15 s) by every replica (each serves its own
	// gauges and listings) and afresh on GetTenant.
	healthStore := store.NewHealthStore(db)
	checker := health.NewChecker(healthStore, keeper, nil)
	if err := reg.Register(checker); err != nil {
		return err
	}
	tenants.OnChange(checker.Forget)
	// Every change of a tenant's health reasons is in the log (a tick
	// reports each tenant's at most once), WARN when it worsens.
	checker.OnChange(func(old, new health.Health) { logHealthChange(log, "tenant", string(new.Tenant), old, new) })

	// Authorization codes are exchanged by the scheduled job from the
	// events, and at once when the consent page sends a merchant back.
	authorizer := component.NewAuthorizer(componentStore, componentKeeper, wx, log, db.Now)
	authorizer.OnChange(authorizerTokens.Forget)
	consent := component.NewConsent(componentStore, componentKeeper, wx, authorizer, cfg.WeChatMP, cfg.PublicURL, log, db.Now)
	componentPushes := component.Options{Store: componentStore, Logger: log, Now: db.Now, MaxSkew: cfg.PushMaxSkew, Kick: authorizer.Kick}
	components := tenant.NewComponentService(componentStore, nil)
	componentHealth := health.NewComponentChecker(componentKeeper, db.Now)
	if err := reg.Register(componentHealth); err != nil {
		return err
	}
	components.OnChange(componentHealth.Forget)
	componentHealth.OnChange(func(old, new health.Health) { logHealthChange(log, "component", string(new.Component), old, new) })
	components.OnChange(push.ForgetComponent)
	components.OnChange(func(id tenant.ComponentID) { componentKeeper.Forget(id) })
	recoveries, auditStore := store.NewRecoveryStore(db), store.NewAuditStore(db)
	srv, err := api.New(api.Options{
		Logger:  log,
		Auth:    auth,
		Tenants: tenants,
		// Third-party platforms (components), whose authorized mini
		// programs become tenants.
		Components:      components,
		ComponentTokens: componentKeeper,
		ComponentHealth: componentHealth,
		Consent:         consent,
		Authorizations:  componentStore,
		Events:          relay.NewEvents(eventStore),
		Redeliver:       dispatcher,
		// Test events, stored and delivered as pushes are.
		Appender: ingestor,
		// Bulk recoveries of failed events, stepped by the job below.
		Recoveries: recoveries,
		Messages:   messages,
		// Idempotency keys of sends.
		Idempotency: idempotency,
		// GetTenant shows the token status, e.g. a wrong AppSecret.
		TokenStatus: keeper,
		Health:      checker,
		PublicURL:   cfg.PublicURL,
		// Ready while a push can be stored: a durable write, not a ping.
		Ready:        db.Writable,
		Registry:     reg,
		Calls:        callStore,
		CallRecorder: calls,
		// Refused pushes, by tenant and cause.
		PushRejections: rejectionStore,
		// 0 on the command line is no limit; the API takes a negative rate
		// for that, and 0 for its default.
		TenantWriteRate: cmp.Or(cfg.TenantWriteRate, -1), TenantWriteBurst: max(1, int(10*cfg.TenantWriteRate)),
		// Named operators, each with a key of their own, and the audit
		// log of what operators and admin tokens change.
		Operators: store.NewOperatorStore(db),
		Audit:     auditStore,
		// The operator's search across tenants: by appid, event id, openid.
		Finder: struct {
			*store.TenantStore
			*store.EventStore
		}{tenantStore, eventStore},
		// A new tenant's credentials, checked on request with a stable
		// token fetch that disturbs no token in use; and its first
		// token, fetched at once.
		CheckCredentials: api.CheckWithStableToken(wx),
		FetchToken: func(id tenant.ID) {
			go func() {
				ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
				defer cancel()
				keeper.Token(ctx, id) // its outcome is the token status
			}()
		},
		Routes: map[string]http.Handler{
			"/wx/{id}": push,
			// Where WeChat's consent page sends the merchant back. Anyone
			// may call it, and a code costs a call to WeChat on the
			// component's quota: failures are budgeted per address, as
			// console sign-ins are.
			"GET /wxc/{id}/authorized": throttle.NewFailures(0.1, 10, nil).Guard(cfg.TrustedProxies, consent),
			// A third-party platform's message URL ($APPID$ filled in).
			"/wxc/{id}/{appid}": http.HandlerFunc(push.ServeComponent),
			// A third-party platform's authorization-event URL.
			"/wxc/{id}/events": component.NewEventsHandler(componentPushes),
			// The message URL of WeChat's release-check mini program:
			// the check is answered for every component, with no code
			// of its own.
			"/wxc/{id}/" + wechat.ReleaseTestAppID: component.NewReleaseCheckHandler(componentPushes, authorizer.AnswerReleaseChecks),
			"/wxapi/":                              http.StripPrefix("/wxapi", compat),
		},
	})
	if err != nil {
		return err
	}
	lc.onStop(stopServing, "gRPC", func(ctx context.Context) error { srv.Shutdown(ctx); return nil })

	// The operator console, at /console/: pages over the API, calling it
	// in process with the signed-in operator's admin token.
	sessions := store.NewSessionStore(db)
	ops, err := console.New(console.Options{
		API: srv.Client(), Admins: auth, Stats: eventStore, Sessions: sessions, Proxies: cfg.TrustedProxies,
		SecureCookies: strings.HasPrefix(cfg.PublicURL, "https://"), Logger: log,
	})
	if err != nil {
		return err
	}
	root := http.NewServeMux()
	root.Handle(console.Prefix, ops)
	root.Handle("/", srv.Handler())

	httpSrv := &http.Server{
		Handler:           root,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	// Delivery and the jobs stop with workCtx, after the listeners: a
	// SIGTERM first stops new pushes, then lets deliveries in flight end.
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	delivered := make(chan struct{})
	go func() { dispatcher.Run(workCtx); close(delivered) }()
	lc.onStop(stopWorking, "delivery", func(context.Context) error { stopWork(); <-delivered; return nil })
	// What other replicas change reaches every holder of tenant state here
	// as this replica's own changes do (tenants.OnChange above); a lost
	// connection to the notices drops the caches whole, and the rest
	// follow the cache (the keeper and the dispatcher check against it).
	go db.WatchTenants(workCtx, tenants.Changed, func() { tenantCache.ForgetAll(); push.ForgetAll() })
	// With several replicas on one database (jobs.go): the gauges are
	// this process's own, so every replica collects them (two cheap
	// queries) and any one's /metrics is current; a replica that left it
	// to another would serve stale numbers forever. The token scan is
	// exclusive: the per-tenant leases already keep each token's fetch
	// single, and one replica's scan a minute spares the others theirs.
	// Pruning deletes in bulk, and two at once would only contend.
	jobList := []job{
		job{name: "delivery-stats", every: 15 * time.Second, run: func(ctx context.Context) error {
			return deliveryMetrics.CollectStats(ctx, deliveryStore, time.Now())
		}},
		job{name: "refresh-access-tokens", every: time.Minute, exclusive: true, run: keeper.RefreshDue},
		job{name: "refresh-component-tokens", every: time.Minute, exclusive: true, run: componentKeeper.RefreshDue},
		// Components' authorization events, acted on in order: codes
		// exchanged, refresh tokens kept, revocations recorded.
		job{name: "component-authorizations", every: 10 * time.Second, exclusive: true, run: authorizer.Process},
		// Ticket pushes that paused are asked for again.
		job{name: "component-tickets", every: 5 * time.Minute, exclusive: true, run: component.NewTicketRestarter(components, wx, log, db.Now).Run},
		// Bulk recoveries of failed events, a paced step at a time.
		job{name: "recoveries", every: 2 * time.Second, exclusive: true, run: func(ctx context.Context) error {
			return delivery.RunRecoveries(ctx, recoveries, dispatcher.Notify, 10*time.Second)
		}},
		// Each replica adds the refusals it counted.
		job{name: "push-rejections", every: 5 * time.Second, run: func(ctx context.Context) error {
			return rejections.Flush(ctx, rejectionStore)
		}},
		job{name: "tenant-health", every: cfg.HealthInterval, run: func(ctx context.Context) error {
			return errors.Join(checker.CheckAll(ctx, tenants), componentHealth.CheckAll(ctx, components))
		}},
		// A deleted tenant is only marked by the API call; its history goes
		// here, in short transactions, on one replica at a time.
		job{name: "purge-deleted-tenants", every: 10 * time.Second, exclusive: true, run: func(ctx context.Context) error {
			n, err := tenantStore.PurgeDeleted(ctx)
			if n > 0 {
				log.Info("purged deleted tenants", "tenants", n)
			}
			return err
		}},
		job{name: "prune-events", every: time.Hour, exclusive: true, run: func(ctx context.Context) error {
			n, err := delivery.Prune(ctx, deliveryStore, delivery.Retention{Delivered: cfg.Retention, Failed: cfg.FailedRetention}, time.Now())
			if n > 0 {
				log.Info("pruned finished events", "events", n)
			}
			// Call records are kept as long as delivered events.
			c, cerr := pruneCalls(ctx, callStore, time.Now().Add(-cfg.Retention))
			if c > 0 {
				log.Info("pruned call records", "calls", c)
			}
			// Delivered and abandoned alerts, after a day: the outbox is
			// not a history.
			a, aerr := healthStore.PruneAlerts(ctx, time.Now().Add(-alert.GiveUpAfter))
			if a > 0 {
				log.Info("pruned health alerts", "alerts", a)
			}
			// Plaintext pushes' signatures, once their timestamps are stale,
			// and console sessions, once over.
			_, nerr := pace.Run(ctx, func(limit int) (int, error) { return nonces.PruneNonces(ctx, time.Now(), limit) })
			_, serr := sessions.PruneSessions(ctx, time.Now())
			// Reply windows too old to decide anything, of every tenant.
			_, werr := pace.Run(ctx, func(limit int) (int, error) {
				return windows.PruneReplyWindows(ctx, time.Now().Add(-message.WindowRetention), limit)
			})
			// Idempotency keys, once they no longer hold.
			_, ierr := pace.Run(ctx, func(limit int) (int, error) {
				return idempotency.PruneIdempotencyKeys(ctx, time.Now().Add(-message.IdempotencyTTL), limit)
			})
			// Runs of refused pushes, once they are a day old; the audit
			// log after auditRetention.
			_, rerr := rejectionStore.PrunePushRejections(ctx, time.Now().Add(-rejection.Retention))
			_, lerr := auditStore.PruneAudit(ctx, time.Now().Add(-auditRetention))
			return errors.Join(err, cerr, aerr, nerr, serr, werr, ierr, rerr, lerr)
		}},
	}
	if cfg.AlertWebhook != "" {
		notifier, err := alert.New(alert.Options{
			URL: cfg.AlertWebhook, Secret: cfg.AlertWebhookSecret,
			Store: healthStore, Health: checker, Tenants: tenants, Logger: log, Registry: reg,
			Components: components, ComponentHealth: componentHealth,
		})
		if err != nil {
			return err
		}
		// Exclusive: the store de-duplicates transitions anyway, and one
		// replica posting at a time keeps the alerts in order.
		jobList = append(jobList, job{name: "health-alerts", every: cfg.HealthInterval, exclusive: true, run: notifier.Run})
		log.Info("health alerts go to the operator's webhook", "alert_webhook", redactURL(cfg.AlertWebhook))
	}
	jobs, err := startJobs(workCtx, log, db, reg, jobList...)
	if err != nil {
		return err
	}
	lc.onStop(stopWorking, "jobs", func(context.Context) error { stopWork(); return jobs.stop() })
	// Authorization events that cannot wait for the job's schedule, run
	// under the job's lock.
	authorizer.LockWith(func(ctx context.Context) (func(), error) {
		l, err := jobs.locker.Lock(ctx, "component-authorizations")
		if err != nil {
			return nil, err
		}
		return func() { l.Unlock(context.WithoutCancel(ctx)) }, nil
	})
	go authorizer.Run(workCtx)

	if metricsLn != nil {
		// Metrics on their own listener: their series name every tenant.
		if _, everywhere := privateListenAddr(cfg.MetricsAddr); everywhere {
			log.Info("metrics served on every interface: their series name every tenant, so keep this port inside the cluster or behind a firewall", "metrics_addr", metricsLn.Addr().String())
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", srv.MetricsHandler())
		ms := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := ms.Serve(metricsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server", "err", err)
			}
		}()
		lc.server("metrics server", ms)
	}
	if cfg.DebugAddr != "" {
		// Profiles on their own listener, never on the public port.
		addr, everywhere := privateListenAddr(cfg.DebugAddr)
		dbgLn, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("--debug-addr: %w", err)
		}
		if everywhere {
			log.Warn("pprof profiles are served on every interface: anyone who reaches this port can read the process's memory profile and stacks; give 127.0.0.1:PORT unless a firewall keeps it private", "debug_addr", dbgLn.Addr().String())
		} else {
			log.Info("pprof profiles served on loopback", "debug_addr", dbgLn.Addr().String())
		}
		dbg := &http.Server{Handler: debugMux(), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := dbg.Serve(dbgLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("debug server", "err", err)
			}
		}()
		lc.server("debug server", dbg)
	}

	errc := make(chan error, 3)
	var compatSrv *http.Server
	if cfg.WXAPIAddr != "" {
		compatLn, err := net.Listen("tcp", cfg.WXAPIAddr)
		if err != nil {
			return fmt.Errorf("--wxapi-addr: %w", err)
		}
		compatSrv = &http.Server{
			Handler:           compat,
			ReadHeaderTimeout: httpSrv.ReadHeaderTimeout,
			ReadTimeout:       time.Minute, // a 10 MiB upload from a slow client
			WriteTimeout:      2 * time.Minute,
			IdleTimeout:       httpSrv.IdleTimeout,
			ErrorLog:          httpSrv.ErrorLog,
		}
		go func() { errc <- compatSrv.Serve(compatLn) }()
		lc.server("WeChat-compatible API", compatSrv)
		log.Info("WeChat-compatible API served at the root", "wxapi_addr", compatLn.Addr().String())
	}
	go func() { errc <- httpSrv.Serve(httpLn) }()
	lc.server("HTTP", httpSrv)
	go func() { errc <- srv.GRPC().Serve(grpcLn) }()
	log.Info("wxrelay serving", "version", versionString(), "http", httpLn.Addr().String(), "grpc", grpcLn.Addr().String(), "metrics", addrOf(metricsLn),
		"console", strings.TrimRight(cfg.PublicURL, "/")+"/console/", "console_sign_in", "a token from `wxrelay admin-token`, run beside this database",
		"config", cfg)

	// Serve until a signal or a server's failure; the deferred lc.stop
	// then stops everything, in order.
	select {
	case <-ctx.Done():
		log.Info("shutting down", "grace", shutdownGrace.String())
		lc.stop()
		log.Info("stopped")
		return nil
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			log.Error("a server failed; shutting down", "err", err)
			return fmt.Errorf("serve: %w", err)
		}
		return nil
	}
}

// privateListenAddr is where --debug-addr or --metrics-addr listens. An
// address without a host (":6060") means loopback here, unlike the other
// listeners: profiles expose memory contents and metrics name every
// tenant, and neither should be public by accident. everywhere reports an
// explicit unspecified host (0.0.0.0, [::]), which is honoured, with a
// note in the log.
func privateListenAddr(addr string) (listen string, everywhere bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, false // validateServe has refused it already
	}
	if host == "" {
		return net.JoinHostPort("127.0.0.1", port), false
	}
	ip := net.ParseIP(host)
	return addr, ip != nil && ip.IsUnspecified()
}

func migrate(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := newFlagSet("migrate", getenv, stderr)
	cfg, err := fs.parse(args)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	db, err := store.Open(ctx, store.Config{DSN: cfg.DB, Logger: log, MaxConns: cfg.DBMaxConns})
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer db.Close()
	log.Info("database is up to date", "config", cfg)
	return nil
}

func adminToken(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("admin-token", getenv, stderr)
	ttl := new(time.Duration)
	*ttl = 24 * time.Hour
	fs.Func("ttl", fmt.Sprintf("how long the token is valid, at most %s (default 24h)", maxTTLText), durationFlag(ttl))
	initKey := fs.Bool("init", false, "make a new secret key beside a SQLite database that has none yet, for a relay not started yet")
	cfg, err := fs.parse(args)
	if err != nil {
		return err
	}
	if *ttl <= 0 {
		return fmt.Errorf("--ttl must be positive, got %s", *ttl)
	}
	if *ttl > tenant.MaxAdminTokenTTL {
		return fmt.Errorf("--ttl %s is over the maximum of %s: admin tokens cannot be revoked one by one, so issue short ones as they are needed", *ttl, maxTTLText)
	}
	if err := keyExists(cfg, *initKey); err != nil {
		return err
	}
	k, err := loadKeys(cfg)
	if err != nil {
		return err
	}
	// Admin tokens are verified without the store, so none is opened here.
	auth, err := tenant.NewAuthenticator(k.jwt, nil, nil)
	if err != nil {
		return err
	}
	tok, err := auth.IssueAdminToken(*ttl)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}

// logHealthChange logs a change of a tenant's or component's health
// reasons: WARN when it worsens or gains a reason, INFO when it improves.
func logHealthChange(log *slog.Logger, kind, id string, old, new health.Health) {
	var reasons []string
	for _, r := range new.Reasons {
		reasons = append(reasons, string(r.Kind)+": "+r.Message)
	}
	level := slog.LevelInfo
	if new.State > old.State || len(new.Reasons) > len(old.Reasons) {
		level = slog.LevelWarn
	}
	log.Log(context.Background(), level, kind+" health changed", kind, id, "from", old.State.String(), "to", new.State.String(), "reasons", reasons)
}

// commitMetrics measures the ingest writer's group commits: how many pushes
// share one commit, and how long the commit (with its fsync) takes.
func commitMetrics(reg prometheus.Registerer) func(int, time.Duration, error) {
	size := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "wxrelay_ingest_batch_size",
		Help:    "Pushes committed together in one transaction.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 10),
	})
	took := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "wxrelay_ingest_commit_seconds",
		Help:    "Duration of one group commit, fsync included.",
		Buckets: []float64{.0002, .0005, .001, .002, .005, .01, .02, .05, .1, .5, 1, 4},
	})
	failed := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "wxrelay_ingest_commit_failures_total",
		Help: "Group commits that failed; their pushes were answered 500 so that WeChat retries.",
	})
	reg.MustRegister(size, took, failed)
	return func(n int, d time.Duration, err error) {
		if err != nil {
			failed.Inc()
			return
		}
		size.Observe(float64(n))
		took.Observe(d.Seconds())
	}
}

// debugMux serves net/http/pprof's profiles.
func debugMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// pruneCalls deletes the call records older than cutoff.
func pruneCalls(ctx context.Context, s calllog.Store, cutoff time.Time) (int, error) {
	return pace.Run(ctx, func(limit int) (int, error) { return s.PruneCalls(ctx, cutoff, limit) })
}

// addrOf is ln's address, or "" for no listener.
func addrOf(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

// backup writes a consistent copy of the SQLite database named by --db to
// --to, while serve may run on it.
func backup(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("backup", getenv, stderr)
	to := fs.String("to", "", "the backup file to write; it must not exist")
	cfg, err := fs.parse(args)
	if err != nil {
		return err
	}
	if *to == "" {
		return fmt.Errorf("%w: --to FILE is required (see 'wxrelay backup -h')", errBadFlags)
	}
	if dialect, path, _ := store.ParseDSN(cfg.DB); dialect == "sqlite" {
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("backup: the database %s: %w", path, err)
		}
	}
	// No seal key, and no migration: the backup copies what is there.
	db, err := store.Open(ctx, store.Config{DSN: cfg.DB, SkipMigrate: true, MaxConns: cfg.DBMaxConns})
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer db.Close()
	if err := db.Backup(ctx, *to); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	_, err = fmt.Fprintf(stdout, "backed up %s to %s; keep its secret key (the key file beside the database, or WXRELAY_SECRET_KEY) with it, but apart from it\n", cfg.DB, *to)
	return err
}

// auditRetention is how long the audit log is kept: a little over a
// year, long enough for a yearly review of who changed what.
const auditRetention = 400 * 24 * time.Hour
