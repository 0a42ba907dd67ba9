package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/wxrelay/wxrelay/api"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/tenant"
)

// shutdownGrace bounds how long SIGTERM waits for in-flight requests.
const shutdownGrace = 20 * time.Second

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
	secret, err := secretKey(cfg)
	if err != nil {
		return err
	}
	k, err := deriveKeys(secret)
	if err != nil {
		return err
	}

	// Listen before anything slow, so a taken port fails start-up at once.
	httpLn, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("--http-addr: %w", err)
	}
	defer httpLn.Close()
	grpcLn, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("--grpc-addr: %w", err)
	}
	defer grpcLn.Close()

	db, err := store.Open(ctx, store.Config{DSN: cfg.DB, SealKey: k.seal, Logger: log})
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer db.Close()

	tenants := store.NewTenantStore(db)
	auth, err := tenant.NewAuthenticator(k.jwt, tenants, nil)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv, err := api.New(api.Options{
		Logger:    log,
		Auth:      auth,
		Tenants:   tenant.NewService(tenants, auth, cfg.AllowPrivateWebhooks, nil),
		PublicURL: cfg.PublicURL,
		Ready:     db.Ping,
		Registry:  reg,
	})
	if err != nil {
		return err
	}
	defer srv.Close()

	httpSrv := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 2)
	go func() { errc <- httpSrv.Serve(httpLn) }()
	go func() { errc <- srv.GRPC().Serve(grpcLn) }()
	log.Info("wxrelay serving", "version", versionString(), "http", httpLn.Addr().String(), "grpc", grpcLn.Addr().String(), "config", cfg)

	select {
	case <-ctx.Done():
		log.Info("shutting down", "grace", shutdownGrace.String())
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: %w", err)
		}
	}
	// A fresh context: the signal context is already done.
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := httpSrv.Shutdown(sctx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	srv.Shutdown(sctx)
	log.Info("stopped")
	return nil
}

func migrate(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := newFlagSet("migrate", getenv, stderr)
	cfg, err := fs.parse(args)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	db, err := store.Open(ctx, store.Config{DSN: cfg.DB, Logger: log})
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer db.Close()
	log.Info("database is up to date", "config", cfg)
	return nil
}

func adminToken(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("admin-token", getenv, stderr)
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token is valid")
	cfg, err := fs.parse(args)
	if err != nil {
		return err
	}
	if *ttl <= 0 {
		return fmt.Errorf("--ttl must be positive, got %s", *ttl)
	}
	secret, err := secretKey(cfg)
	if err != nil {
		return err
	}
	k, err := deriveKeys(secret)
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
