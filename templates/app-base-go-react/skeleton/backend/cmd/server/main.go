// Command server runs the ${{ values.name }} backend: the HTTP API,
// health and readiness probes and Prometheus metrics.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/soft-yt/${{ values.name }}/backend/internal/config"
	"github.com/soft-yt/${{ values.name }}/backend/internal/httpapi"
	"github.com/soft-yt/${{ values.name }}/backend/internal/metrics"
	"github.com/soft-yt/${{ values.name }}/backend/internal/telemetry"
)

// version is set at build time: -ldflags "-X main.version=<sha>".
var version = ""

func main() {
	if err := run(); err != nil {
		slog.Error("server failed", slog.Any("error", err))
		os.Exit(1)
	}
}

func run() error {
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	if version != "" && os.Getenv("VERSION") == "" {
		cfg.Version = version
	}

	traces, err := telemetry.FromEnv(os.Getenv, cfg.ServiceName, cfg.Version)
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}

	// JSON lines for Loki; records logged with a request's context carry
	// its trace_id and span_id.
	logger := slog.New(telemetry.LogHandler(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: cfg.LogLevel}))).
		With(slog.String("service", cfg.ServiceName), slog.String("version", cfg.Version))
	slog.SetDefault(logger)

	tracer := telemetry.New(traces, logger)
	if traces.Enabled {
		logger.Info("exporting traces over OTLP/HTTP", slog.String("url", traces.URL))
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	ready := &httpapi.Readiness{}
	srv := &http.Server{
		Addr: cfg.Addr,
		Handler: httpapi.NewRouter(httpapi.Options{
			Service:   cfg.ServiceName,
			Version:   cfg.Version,
			Logger:    logger,
			Metrics:   metrics.New(cfg.ServiceName, cfg.Version),
			Readiness: ready,
			Tracer:    tracer,
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	ready.Set(true)
	logger.Info("listening", slog.String("addr", ln.Addr().String()))

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	stop() // a second signal kills the process at once

	// Fail readiness first and keep serving for a moment, so that endpoints
	// and load balancers drop this pod before connections are closed.
	ready.Set(false)
	logger.Info("shutting down", slog.Duration("delay", cfg.ShutdownDelay), slog.Duration("timeout", cfg.ShutdownTimeout))
	time.Sleep(cfg.ShutdownDelay)

	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	shutdownErr := srv.Shutdown(shutdownCtx)
	// The last requests' spans go out before the process exits.
	if err := tracer.Shutdown(shutdownCtx); err != nil {
		logger.Warn("traces not flushed", slog.Any("error", err))
	}
	if sent, dropped, failed := tracer.Stats(); traces.Enabled {
		logger.Info("traces exported", slog.Int64("sent", sent), slog.Int64("dropped", dropped), slog.Int64("failed", failed))
	}
	if shutdownErr != nil {
		return fmt.Errorf("shutdown: %w", shutdownErr)
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	logger.Info("stopped")
	return nil
}
