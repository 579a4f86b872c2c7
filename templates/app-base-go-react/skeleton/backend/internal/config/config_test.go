package config

import (
	"log/slog"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadDefaults(t *testing.T) {
	cfg, err := Load(env(nil))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.Addr != ":8080" {
		t.Errorf("Addr = %q, want :8080", cfg.Addr)
	}
	if cfg.LogLevel != slog.LevelInfo {
		t.Errorf("LogLevel = %v, want info", cfg.LogLevel)
	}
	if cfg.ShutdownTimeout != DefaultShutdownTimeout || cfg.ShutdownDelay != DefaultShutdownDelay {
		t.Errorf("shutdown = %v/%v, want defaults", cfg.ShutdownTimeout, cfg.ShutdownDelay)
	}
	if cfg.ServiceName != DefaultServiceName || cfg.Version != "dev" {
		t.Errorf("name/version = %q/%q", cfg.ServiceName, cfg.Version)
	}
}

func TestLoadFromEnvironment(t *testing.T) {
	cfg, err := Load(env(map[string]string{
		"PORT":             "9090",
		"LOG_LEVEL":        "debug",
		"SHUTDOWN_TIMEOUT": "3s",
		"SHUTDOWN_DELAY":   "0s",
		"SERVICE_NAME":     "svc",
		"VERSION":          "abc123",
	}))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := Config{
		ServiceName:     "svc",
		Version:         "abc123",
		Addr:            ":9090",
		LogLevel:        slog.LevelDebug,
		ShutdownTimeout: 3 * time.Second,
		ShutdownDelay:   0,
	}
	if cfg != want {
		t.Errorf("Load = %+v, want %+v", cfg, want)
	}
}

func TestLoadRejectsInvalidValues(t *testing.T) {
	cases := map[string]map[string]string{
		"port not a number": {"PORT": "http"},
		"port out of range": {"PORT": "70000"},
		"unknown log level": {"LOG_LEVEL": "loud"},
		"bad timeout":       {"SHUTDOWN_TIMEOUT": "soon"},
		"negative delay":    {"SHUTDOWN_DELAY": "-1s"},
	}
	for name, vars := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Load(env(vars)); err == nil {
				t.Fatalf("Load(%v) succeeded, want an error", vars)
			}
		})
	}
}
