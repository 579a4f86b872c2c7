// Package telemetry exports the service's traces over OTLP/HTTP (JSON) to
// the cluster's OpenTelemetry collector, which passes them on to Tempo, and
// puts the trace and span ids into every JSON log line written with a
// request's context, so that Loki can link a line to its trace.
//
// It is a small standard-library exporter rather than the OpenTelemetry Go
// SDK so that the service stays free of module dependencies; it reads the
// SDK's environment variables, so swapping the SDK in later changes no
// deployment (see the repository README).
package telemetry

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Config says where and how spans are exported.
type Config struct {
	// Enabled is false when no endpoint is set or OTEL_TRACES_EXPORTER=none.
	Enabled bool
	// URL is the full OTLP/HTTP traces URL (…/v1/traces).
	URL string
	// Headers are sent with every export (OTEL_EXPORTER_OTLP_HEADERS).
	Headers map[string]string
	// Resource describes the service (service.name, service.version and
	// OTEL_RESOURCE_ATTRIBUTES).
	Resource map[string]string
	// QueueSize bounds the spans waiting for export; more are dropped.
	QueueSize int
	// BatchSize is the most spans sent in one request.
	BatchSize int
	// Interval is the longest a span waits before its batch is sent.
	Interval time.Duration
	// Timeout bounds one export request.
	Timeout time.Duration
}

// Defaults of the batching, as the SDK's batch span processor.
const (
	DefaultQueueSize = 2048
	DefaultBatchSize = 512
	DefaultInterval  = 5 * time.Second
	DefaultTimeout   = 10 * time.Second
)

// FromEnv reads the OpenTelemetry SDK's variables:
//
//	OTEL_EXPORTER_OTLP_ENDPOINT         base URL; traces go to <base>/v1/traces
//	OTEL_EXPORTER_OTLP_TRACES_ENDPOINT  the traces URL itself (wins)
//	OTEL_EXPORTER_OTLP_HEADERS          key=value,key2=value2 (values percent-encoded)
//	OTEL_EXPORTER_OTLP_PROTOCOL         http/json or http/protobuf (both are sent as JSON); grpc is refused
//	OTEL_TRACES_EXPORTER                otlp (default) or none
//	OTEL_SERVICE_NAME                   service.name (default: serviceName)
//	OTEL_RESOURCE_ATTRIBUTES            key=value,… added to the resource
//
// Without an endpoint nothing is exported (Enabled is false).
func FromEnv(getenv func(string) string, serviceName, version string) (Config, error) {
	cfg := Config{
		Headers:   map[string]string{},
		Resource:  map[string]string{},
		QueueSize: DefaultQueueSize,
		BatchSize: DefaultBatchSize,
		Interval:  DefaultInterval,
		Timeout:   DefaultTimeout,
	}
	if attrs := strings.TrimSpace(getenv("OTEL_RESOURCE_ATTRIBUTES")); attrs != "" {
		parsed, err := keyValues(attrs)
		if err != nil {
			return Config{}, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
		}
		cfg.Resource = parsed
	}
	cfg.Resource["service.name"] = serviceName
	if name := strings.TrimSpace(getenv("OTEL_SERVICE_NAME")); name != "" {
		cfg.Resource["service.name"] = name
	}
	cfg.Resource["service.version"] = version
	cfg.Resource["telemetry.sdk.language"] = "go"

	switch exporter := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); exporter {
	case "", "otlp":
	case "none":
		return cfg, nil
	default:
		return Config{}, fmt.Errorf("OTEL_TRACES_EXPORTER: %q is not supported (otlp or none)", exporter)
	}
	for _, key := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		switch protocol := strings.TrimSpace(getenv(key)); protocol {
		case "", "http/json", "http/protobuf":
		default:
			return Config{}, fmt.Errorf("%s: %q is not supported: this exporter speaks OTLP/HTTP (JSON) to port 4318", key, protocol)
		}
	}

	endpoint := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
	source := "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	if endpoint == "" {
		base := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_ENDPOINT"))
		if base == "" {
			return cfg, nil
		}
		endpoint = strings.TrimRight(base, "/") + "/v1/traces"
		source = "OTEL_EXPORTER_OTLP_ENDPOINT"
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Config{}, fmt.Errorf("%s: %q is not an http(s) URL", source, endpoint)
	}
	cfg.URL = u.String()
	if headers := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_HEADERS")); headers != "" {
		parsed, err := keyValues(headers)
		if err != nil {
			return Config{}, fmt.Errorf("OTEL_EXPORTER_OTLP_HEADERS: %w", err)
		}
		cfg.Headers = parsed
	}
	cfg.Enabled = true
	return cfg, nil
}

// keyValues parses the W3C-baggage-like lists of the OTEL_* variables:
// key=value pairs separated by commas, values percent-encoded.
func keyValues(list string) (map[string]string, error) {
	out := map[string]string{}
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		key, value, ok := strings.Cut(item, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			return nil, fmt.Errorf("%q is not key=value", item)
		}
		decoded, err := url.PathUnescape(strings.TrimSpace(value))
		if err != nil {
			return nil, fmt.Errorf("the value of %q is not percent-encoded: %w", key, err)
		}
		out[key] = decoded
	}
	return out, nil
}
