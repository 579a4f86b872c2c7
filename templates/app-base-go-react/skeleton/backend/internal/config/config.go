// Package config reads the service configuration from the environment.
package config

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Config is the whole runtime configuration of the service.
type Config struct {
	// ServiceName is reported in logs, metrics and API answers.
	ServiceName string
	// Version is the build version (commit SHA in CI builds).
	Version string
	// Addr is the listen address of the HTTP server, e.g. ":8080".
	Addr string
	// LogLevel is the minimum level of the JSON logs.
	LogLevel slog.Level
	// ShutdownTimeout is how long in-flight requests get after SIGTERM.
	ShutdownTimeout time.Duration
	// ShutdownDelay keeps serving (not ready) for a while after SIGTERM so
	// that load balancers stop sending traffic first.
	ShutdownDelay time.Duration
}

// Defaults used when a variable is unset or empty.
const (
	DefaultServiceName     = "${{ values.name }}"
	DefaultPort            = 8080
	DefaultShutdownTimeout = 20 * time.Second
	DefaultShutdownDelay   = 5 * time.Second
)

// Load builds a Config from environment lookups (os.Getenv in production).
//
//	PORT               listen port (default 8080)
//	LOG_LEVEL          debug, info, warn or error (default info)
//	SHUTDOWN_TIMEOUT   Go duration (default 20s)
//	SHUTDOWN_DELAY     Go duration (default 5s)
//	SERVICE_NAME       default "${{ values.name }}"
//	VERSION            default "dev"
func Load(getenv func(string) string) (Config, error) {
	cfg := Config{
		ServiceName:     orDefault(getenv("SERVICE_NAME"), DefaultServiceName),
		Version:         orDefault(getenv("VERSION"), "dev"),
		Addr:            fmt.Sprintf(":%d", DefaultPort),
		LogLevel:        slog.LevelInfo,
		ShutdownTimeout: DefaultShutdownTimeout,
		ShutdownDelay:   DefaultShutdownDelay,
	}

	if v := strings.TrimSpace(getenv("PORT")); v != "" {
		port, err := strconv.Atoi(v)
		if err != nil || port < 1 || port > 65535 {
			return Config{}, fmt.Errorf("PORT: %q is not a port number (1-65535)", v)
		}
		cfg.Addr = fmt.Sprintf(":%d", port)
	}
	if v := strings.TrimSpace(getenv("LOG_LEVEL")); v != "" {
		if err := cfg.LogLevel.UnmarshalText([]byte(v)); err != nil {
			return Config{}, fmt.Errorf("LOG_LEVEL: %q is not one of debug, info, warn, error", v)
		}
	}
	var err error
	if cfg.ShutdownTimeout, err = duration(getenv, "SHUTDOWN_TIMEOUT", cfg.ShutdownTimeout); err != nil {
		return Config{}, err
	}
	if cfg.ShutdownDelay, err = duration(getenv, "SHUTDOWN_DELAY", cfg.ShutdownDelay); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func duration(getenv func(string) string, key string, def time.Duration) (time.Duration, error) {
	v := strings.TrimSpace(getenv(key))
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s: %q is not a non-negative duration such as 10s", key, v)
	}
	return d, nil
}

func orDefault(v, def string) string {
	if v = strings.TrimSpace(v); v != "" {
		return v
	}
	return def
}
