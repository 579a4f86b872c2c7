// Package httpapi holds the HTTP handlers and middleware of the service.
package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/soft-yt/${{ values.name }}/backend/internal/metrics"
	"github.com/soft-yt/${{ values.name }}/backend/internal/telemetry"
)

// Readiness tells /readyz whether the process should receive traffic. It
// starts not ready; main marks it ready once serving and not ready again
// when shutdown begins.
type Readiness struct{ ready atomic.Bool }

// Set marks the process ready (true) or not (false).
func (r *Readiness) Set(ready bool) { r.ready.Store(ready) }

// Ready reports the current state.
func (r *Readiness) Ready() bool { return r.ready.Load() }

// Options configures the router.
type Options struct {
	Service   string
	Version   string
	Logger    *slog.Logger
	Metrics   *metrics.Registry
	Readiness *Readiness
	// Tracer exports a server span per request (nil: no export).
	Tracer *telemetry.Exporter
	// Now is the clock (time.Now when nil); tests fix it.
	Now func() time.Time
}

// HelloResponse is the body of GET /api/hello.
type HelloResponse struct {
	Message string    `json:"message"`
	Service string    `json:"service"`
	Version string    `json:"version"`
	Time    time.Time `json:"time"`
}

// ErrorResponse is the body of every error answer.
type ErrorResponse struct {
	Error string `json:"error"`
}

// MaxNameLength bounds the ?name= parameter of /api/hello.
const MaxNameLength = 64

// NewRouter returns the service's handler with all routes, logging,
// panic recovery and metrics.
func NewRouter(o Options) http.Handler {
	if o.Now == nil {
		o.Now = time.Now
	}
	mux := http.NewServeMux()
	route := func(pattern, name string, h http.HandlerFunc) {
		mux.Handle(pattern, withRoute(name, o.Metrics.Instrument(name, h)))
	}
	route("GET /healthz", "/healthz", healthz)
	route("GET /readyz", "/readyz", readyz(o.Readiness))
	route("GET /api/hello", "/api/hello", hello(o))
	mux.Handle("GET /metrics", withRoute("/metrics", o.Metrics.Handler()))
	return accessLog(o.Logger, o.Tracer, recoverer(o.Logger, mux))
}

// routeInfo is filled in by the matched route, for the access log and the
// span (the route pattern, not the path, names a span).
type routeInfo struct{ route string }

type routeKey struct{}

func withRoute(name string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if info, ok := r.Context().Value(routeKey{}).(*routeInfo); ok {
			info.route = name
		}
		next.ServeHTTP(w, r)
	})
}

func healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

func readyz(r *Readiness) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if r == nil || !r.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	}
}

func hello(o Options) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimSpace(r.URL.Query().Get("name"))
		if name == "" {
			name = "world"
		}
		if utf8.RuneCountInString(name) > MaxNameLength {
			writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: "name is longer than 64 characters"})
			return
		}
		writeJSON(w, http.StatusOK, HelloResponse{
			Message: "Hello, " + name + "!",
			Service: o.Service,
			Version: o.Version,
			Time:    o.Now().UTC(),
		})
	}
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

type loggingWriter struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (l *loggingWriter) WriteHeader(code int) {
	if l.status == 0 {
		l.status = code
	}
	l.ResponseWriter.WriteHeader(code)
}

func (l *loggingWriter) Write(b []byte) (int, error) {
	if l.status == 0 {
		l.status = http.StatusOK
	}
	n, err := l.ResponseWriter.Write(b)
	l.bytes += n
	return n, err
}

func (l *loggingWriter) Unwrap() http.ResponseWriter { return l.ResponseWriter }

// accessLog writes one JSON log line per request, with its W3C trace and
// span ids (trace.go), and exports the request's server span when the
// trace is sampled; probes and scrapes are logged at debug level and not
// traced, so they do not drown the rest. Handlers log with the request's
// context, and telemetry.LogHandler adds the same ids to their lines.
func accessLog(logger *slog.Logger, tracer *telemetry.Exporter, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		incoming := r.Header.Get("traceparent")
		trace := childOf(incoming)
		w.Header().Set("traceparent", trace.header())
		info := &routeInfo{}
		ctx := telemetry.ContextWithSpan(r.Context(), telemetry.SpanContext{
			TraceID: trace.traceID, SpanID: trace.spanID, Sampled: trace.sampled,
		})
		ctx = context.WithValue(ctx, routeKey{}, info)
		r = r.WithContext(ctx)
		lw := &loggingWriter{ResponseWriter: w}
		next.ServeHTTP(lw, r)
		if lw.status == 0 {
			lw.status = http.StatusOK
		}
		end := time.Now()
		level := slog.LevelInfo
		probe := false
		switch r.URL.Path {
		case "/healthz", "/readyz", "/metrics":
			level = slog.LevelDebug
			probe = true
		}
		logger.LogAttrs(ctx, level, "request",
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.String("route", info.route),
			slog.Int("status", lw.status),
			slog.Int("bytes", lw.bytes),
			slog.Duration("duration", end.Sub(start)),
			slog.String("remote", r.RemoteAddr),
			slog.String("user_agent", r.UserAgent()),
			slog.String("trace_id", trace.traceID),
			slog.String("span_id", trace.spanID),
		)
		if trace.sampled && !probe {
			parent, _ := parseTraceparent(incoming)
			tracer.Export(serverSpan(r, trace, parent.spanID, info.route, lw.status, start, end))
		}
	})
}

// serverSpan is the request's span with the stable HTTP semantic
// conventions' attributes.
func serverSpan(r *http.Request, trace traceContext, parentSpanID, route string, status int, start, end time.Time) telemetry.Span {
	name := r.Method
	if route != "" {
		name += " " + route
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	attrs := []telemetry.Attr{
		telemetry.String("http.request.method", r.Method),
		telemetry.String("url.path", r.URL.Path),
		telemetry.String("url.scheme", scheme),
		telemetry.Int("http.response.status_code", status),
		telemetry.String("network.protocol.version", strings.TrimPrefix(r.Proto, "HTTP/")),
	}
	if route != "" {
		attrs = append(attrs, telemetry.String("http.route", route))
	}
	if host, _, err := net.SplitHostPort(r.Host); err == nil {
		attrs = append(attrs, telemetry.String("server.address", host))
	} else if r.Host != "" {
		attrs = append(attrs, telemetry.String("server.address", r.Host))
	}
	if client, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		attrs = append(attrs, telemetry.String("client.address", client))
	}
	if ua := r.UserAgent(); ua != "" {
		attrs = append(attrs, telemetry.String("user_agent.original", ua))
	}
	code := telemetry.StatusUnset
	if status >= 500 {
		code = telemetry.StatusError
	}
	return telemetry.Span{
		TraceID:      trace.traceID,
		SpanID:       trace.spanID,
		ParentSpanID: parentSpanID,
		Name:         name,
		Kind:         telemetry.KindServer,
		Start:        start,
		End:          end,
		Attributes:   attrs,
		Status:       code,
	}
}

// recoverer turns a panic in a handler into a 500 and an error log line.
func recoverer(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				logger.ErrorContext(r.Context(), "handler panicked", slog.Any("panic", v), slog.String("path", r.URL.Path))
				writeJSON(w, http.StatusInternalServerError, ErrorResponse{Error: "internal error"})
			}
		}()
		next.ServeHTTP(w, r)
	})
}
