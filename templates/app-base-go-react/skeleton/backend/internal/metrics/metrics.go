// Package metrics keeps the service's Prometheus metrics and writes them in
// the Prometheus text exposition format (version 0.0.4), without any
// dependency: request counters, a request duration histogram, an in-flight
// gauge and Go runtime gauges.
package metrics

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ContentType is the media type of the text exposition format.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// DefaultBuckets are the upper bounds (seconds) of the duration histogram.
var DefaultBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

type requestKey struct {
	method, route, code string
}

type routeKey struct {
	method, route string
}

type histogram struct {
	counts []uint64 // per bucket, not cumulative
	sum    float64
	count  uint64
}

// Registry holds the metrics of one process. The zero value is not usable;
// create one with New.
type Registry struct {
	service, version string
	buckets          []float64
	start            time.Time
	inFlight         atomic.Int64

	mu        sync.Mutex
	requests  map[requestKey]uint64
	durations map[routeKey]*histogram
}

// New returns an empty registry for the given service and version.
func New(service, version string) *Registry {
	return &Registry{
		service:   service,
		version:   version,
		buckets:   DefaultBuckets,
		start:     time.Now(),
		requests:  make(map[requestKey]uint64),
		durations: make(map[routeKey]*histogram),
	}
}

// Observe records one finished request.
func (r *Registry) Observe(method, route string, code int, elapsed time.Duration) {
	seconds := elapsed.Seconds()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests[requestKey{method, route, strconv.Itoa(code)}]++
	key := routeKey{method, route}
	h := r.durations[key]
	if h == nil {
		h = &histogram{counts: make([]uint64, len(r.buckets))}
		r.durations[key] = h
	}
	for i, le := range r.buckets {
		if seconds <= le {
			h.counts[i]++
			break
		}
	}
	h.sum += seconds
	h.count++
}

// Instrument wraps next so that every request is counted under route (a
// fixed route pattern, never the raw path, to keep label cardinality bounded).
func (r *Registry) Instrument(route string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.inFlight.Add(1)
		defer r.inFlight.Add(-1)
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		start := time.Now()
		next.ServeHTTP(rec, req)
		r.Observe(req.Method, route, rec.status, time.Since(start))
	})
}

// Handler serves the metrics at GET /metrics.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", ContentType)
		w.Header().Set("Cache-Control", "no-store")
		_ = r.Write(w)
	})
}

// Write writes every metric in the text exposition format.
func (r *Registry) Write(out io.Writer) error {
	w := bufio.NewWriter(out)

	r.mu.Lock()
	reqKeys := make([]requestKey, 0, len(r.requests))
	for k := range r.requests {
		reqKeys = append(reqKeys, k)
	}
	sort.Slice(reqKeys, func(i, j int) bool {
		a, b := reqKeys[i], reqKeys[j]
		if a.route != b.route {
			return a.route < b.route
		}
		if a.method != b.method {
			return a.method < b.method
		}
		return a.code < b.code
	})
	reqValues := make([]uint64, len(reqKeys))
	for i, k := range reqKeys {
		reqValues[i] = r.requests[k]
	}
	durKeys := make([]routeKey, 0, len(r.durations))
	for k := range r.durations {
		durKeys = append(durKeys, k)
	}
	sort.Slice(durKeys, func(i, j int) bool {
		a, b := durKeys[i], durKeys[j]
		if a.route != b.route {
			return a.route < b.route
		}
		return a.method < b.method
	})
	durValues := make([]histogram, len(durKeys))
	for i, k := range durKeys {
		h := r.durations[k]
		durValues[i] = histogram{counts: append([]uint64(nil), h.counts...), sum: h.sum, count: h.count}
	}
	r.mu.Unlock()

	header(w, "http_requests_total", "counter", "HTTP requests served, by method, route and status code.")
	for i, k := range reqKeys {
		sample(w, "http_requests_total", labels("method", k.method, "route", k.route, "code", k.code), float64(reqValues[i]))
	}

	header(w, "http_request_duration_seconds", "histogram", "Time spent serving HTTP requests, by method and route.")
	for i, k := range durKeys {
		h := durValues[i]
		var cumulative uint64
		for b, le := range r.buckets {
			cumulative += h.counts[b]
			sample(w, "http_request_duration_seconds_bucket",
				labels("method", k.method, "route", k.route, "le", formatFloat(le)), float64(cumulative))
		}
		sample(w, "http_request_duration_seconds_bucket", labels("method", k.method, "route", k.route, "le", "+Inf"), float64(h.count))
		sample(w, "http_request_duration_seconds_sum", labels("method", k.method, "route", k.route), h.sum)
		sample(w, "http_request_duration_seconds_count", labels("method", k.method, "route", k.route), float64(h.count))
	}

	header(w, "http_requests_in_flight", "gauge", "HTTP requests being served right now.")
	sample(w, "http_requests_in_flight", "", float64(r.inFlight.Load()))

	header(w, "app_build_info", "gauge", "Build information; the value is always 1.")
	sample(w, "app_build_info", labels("service", r.service, "version", r.version, "goversion", runtime.Version()), 1)

	header(w, "process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch, in seconds.")
	sample(w, "process_start_time_seconds", "", float64(r.start.UnixNano())/1e9)

	writeRuntime(w)
	return w.Flush()
}

func writeRuntime(w *bufio.Writer) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)

	header(w, "go_goroutines", "gauge", "Number of goroutines that currently exist.")
	sample(w, "go_goroutines", "", float64(runtime.NumGoroutine()))
	header(w, "go_gomaxprocs", "gauge", "Value of GOMAXPROCS.")
	sample(w, "go_gomaxprocs", "", float64(runtime.GOMAXPROCS(0)))
	header(w, "go_memstats_alloc_bytes", "gauge", "Bytes of allocated heap objects.")
	sample(w, "go_memstats_alloc_bytes", "", float64(ms.Alloc))
	header(w, "go_memstats_heap_inuse_bytes", "gauge", "Bytes in in-use heap spans.")
	sample(w, "go_memstats_heap_inuse_bytes", "", float64(ms.HeapInuse))
	header(w, "go_memstats_sys_bytes", "gauge", "Bytes of memory obtained from the OS.")
	sample(w, "go_memstats_sys_bytes", "", float64(ms.Sys))
	header(w, "go_memstats_gc_cycles_total", "counter", "Completed GC cycles.")
	sample(w, "go_memstats_gc_cycles_total", "", float64(ms.NumGC))
	header(w, "go_memstats_gc_pause_seconds_total", "counter", "Total time spent in GC stop-the-world pauses.")
	sample(w, "go_memstats_gc_pause_seconds_total", "", float64(ms.PauseTotalNs)/1e9)
}

func header(w *bufio.Writer, name, kind, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, escapeHelp(help), name, kind)
}

func sample(w *bufio.Writer, name, labels string, value float64) {
	fmt.Fprintf(w, "%s%s %s\n", name, labels, formatFloat(value))
}

// labels renders name/value pairs as {a="x",b="y"}.
func labels(pairs ...string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(pairs); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(pairs[i])
		b.WriteString(`="`)
		b.WriteString(escapeLabel(pairs[i+1]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

func escapeLabel(v string) string { return labelEscaper.Replace(v) }
func escapeHelp(v string) string  { return helpEscaper.Replace(v) }

func formatFloat(v float64) string {
	return strconv.FormatFloat(v, 'g', -1, 64)
}

type statusRecorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wroteHeader {
		s.status = code
		s.wroteHeader = true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wroteHeader = true
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
