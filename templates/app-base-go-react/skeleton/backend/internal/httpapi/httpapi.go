// Package httpapi holds the HTTP handlers and middleware of the service.
package httpapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/soft-yt/${{ values.name }}/backend/internal/metrics"
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
		mux.Handle(pattern, o.Metrics.Instrument(name, h))
	}
	route("GET /healthz", "/healthz", healthz)
	route("GET /readyz", "/readyz", readyz(o.Readiness))
	route("GET /api/hello", "/api/hello", hello(o))
	mux.Handle("GET /metrics", o.Metrics.Handler())
	return recoverer(o.Logger, accessLog(o.Logger, mux))
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
// span ids (trace.go); probes and scrapes are logged at debug level so they
// do not drown the rest.
func accessLog(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		trace := childOf(r.Header.Get("traceparent"))
		w.Header().Set("traceparent", trace.header())
		lw := &loggingWriter{ResponseWriter: w}
		next.ServeHTTP(lw, r)
		if lw.status == 0 {
			lw.status = http.StatusOK
		}
		level := slog.LevelInfo
		switch r.URL.Path {
		case "/healthz", "/readyz", "/metrics":
			level = slog.LevelDebug
		}
		logger.LogAttrs(r.Context(), level, "request",
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", lw.status),
			slog.Int("bytes", lw.bytes),
			slog.Duration("duration", time.Since(start)),
			slog.String("remote", r.RemoteAddr),
			slog.String("user_agent", r.UserAgent()),
			slog.String("trace_id", trace.traceID),
			slog.String("span_id", trace.spanID),
		)
	})
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
