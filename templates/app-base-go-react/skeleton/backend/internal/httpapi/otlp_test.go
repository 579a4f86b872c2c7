package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/soft-yt/${{ values.name }}/backend/internal/metrics"
	"github.com/soft-yt/${{ values.name }}/backend/internal/telemetry"
)

// An in-test OTLP/HTTP collector receives the server span of a request
// that came with a traceparent: same trace, the caller's span as parent,
// the span id the response and the log line carry, and the HTTP semantic
// conventions' attributes.
func TestRequestSpansAreExportedToTheCollector(t *testing.T) {
	received := make(chan []byte, 10)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Authorization") != "Bearer t0ken" {
			t.Errorf("collector got %s %s (authorization %q)", r.Method, r.URL.Path, r.Header.Get("Authorization"))
		}
		received <- body
		_, _ = w.Write([]byte("{}"))
	}))
	defer collector.Close()

	cfg, err := telemetry.FromEnv(func(k string) string {
		return map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": collector.URL,
			"OTEL_EXPORTER_OTLP_HEADERS":  "Authorization=Bearer%20t0ken",
			"OTEL_SERVICE_NAME":           "svc-backend",
		}[k]
	}, "svc", "test")
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	logger := slog.New(telemetry.LogHandler(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	tracer := telemetry.New(cfg, logger)
	h := NewRouter(Options{
		Service: "svc", Version: "test", Logger: logger, Metrics: metrics.New("svc", "test"),
		Readiness: &Readiness{}, Tracer: tracer,
	})

	const trace, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req := httptest.NewRequest(http.MethodGet, "http://svc.example/api/hello?name=otel", nil)
	req.Header.Set("traceparent", "00-"+trace+"-"+parent+"-01")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	mine, ok := parseTraceparent(rec.Header().Get("traceparent"))
	if !ok || mine.traceID != trace {
		t.Fatalf("response traceparent %q", rec.Header().Get("traceparent"))
	}
	// A probe is not traced; an unsampled request is not exported.
	do(h, http.MethodGet, "/healthz")
	unsampled := httptest.NewRequest(http.MethodGet, "/api/hello", nil)
	unsampled.Header.Set("traceparent", "00-"+strings.Repeat("a", 32)+"-"+parent+"-00")
	h.ServeHTTP(httptest.NewRecorder(), unsampled)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tracer.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	close(received)
	var spans []map[string]any
	for body := range received {
		var req struct {
			ResourceSpans []struct {
				Resource struct {
					Attributes []map[string]any `json:"attributes"`
				} `json:"resource"`
				ScopeSpans []struct {
					Spans []map[string]any `json:"spans"`
				} `json:"scopeSpans"`
			} `json:"resourceSpans"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			t.Fatalf("collector body %s: %v", body, err)
		}
		res, _ := json.Marshal(req.ResourceSpans[0].Resource.Attributes)
		if !strings.Contains(string(res), `"stringValue":"svc-backend"`) {
			t.Errorf("resource %s lacks service.name svc-backend", res)
		}
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				spans = append(spans, ss.Spans...)
			}
		}
	}
	if len(spans) != 1 {
		t.Fatalf("exported %d spans, want 1 (the sampled /api/hello): %v", len(spans), spans)
	}
	s := spans[0]
	if s["traceId"] != trace || s["parentSpanId"] != parent || s["spanId"] != mine.spanID {
		t.Fatalf("span ids %v/%v/%v, want trace %s, parent %s, span %s", s["traceId"], s["parentSpanId"], s["spanId"], trace, parent, mine.spanID)
	}
	if s["name"] != "GET /api/hello" || s["kind"] != float64(2) {
		t.Fatalf("span %v: want the server span GET /api/hello", s)
	}
	attrs := map[string]any{}
	for _, a := range s["attributes"].([]any) {
		kv := a.(map[string]any)
		for _, v := range kv["value"].(map[string]any) {
			attrs[kv["key"].(string)] = v
		}
	}
	for k, v := range map[string]string{
		"http.request.method": "GET", "http.route": "/api/hello", "url.path": "/api/hello",
		"http.response.status_code": "200", "url.scheme": "http", "server.address": "svc.example",
	} {
		if attrs[k] != v {
			t.Errorf("attribute %s = %v, want %s", k, attrs[k], v)
		}
	}

	// The log line of that request carries the same trace and span ids.
	found := false
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var line map[string]any
		if json.Unmarshal([]byte(l), &line) != nil || line["msg"] != "request" || line["path"] != "/api/hello" {
			continue
		}
		if line["trace_id"] == trace {
			found = true
			if line["span_id"] != mine.spanID || line["route"] != "/api/hello" {
				t.Errorf("log line %v: want span_id %s and route /api/hello", line, mine.spanID)
			}
		}
	}
	if !found {
		t.Fatalf("no request log line with trace_id %s in:\n%s", trace, logs.String())
	}
}

// Lines a handler logs with the request's context get the request's ids.
func TestHandlerLogsCarryTheTraceID(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(telemetry.LogHandler(slog.NewJSONHandler(&logs, nil)))
	h := accessLog(logger, nil, recoverer(logger, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		logger.InfoContext(r.Context(), "inside")
		panic("boom")
	})))
	req := httptest.NewRequest(http.MethodGet, "/api/x", nil)
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", rec.Code)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 lines (inside, panic, request):\n%s", logs.String())
	}
	for _, l := range lines {
		var line map[string]any
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatal(err)
		}
		if line["trace_id"] != "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Errorf("line %v lacks the trace id", line)
		}
	}
}
