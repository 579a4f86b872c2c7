package telemetry

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestFromEnv(t *testing.T) {
	cfg, err := FromEnv(env(map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
		"OTEL_EXPORTER_OTLP_HEADERS":  "authorization=Bearer%20t0ken, x-scope-orgid=team-a",
		"OTEL_SERVICE_NAME":           "shop-backend",
		"OTEL_RESOURCE_ATTRIBUTES":    "k8s.cluster.name=yc-prod,deployment.environment.name=prod",
	}), "shop", "v1")
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Enabled || cfg.URL != "http://collector:4318/v1/traces" {
		t.Fatalf("enabled %v url %q", cfg.Enabled, cfg.URL)
	}
	if cfg.Headers["authorization"] != "Bearer t0ken" || cfg.Headers["x-scope-orgid"] != "team-a" {
		t.Fatalf("headers %v", cfg.Headers)
	}
	want := map[string]string{
		"service.name": "shop-backend", "service.version": "v1", "k8s.cluster.name": "yc-prod",
		"deployment.environment.name": "prod", "telemetry.sdk.language": "go",
	}
	for k, v := range want {
		if cfg.Resource[k] != v {
			t.Errorf("resource %s = %q, want %q", k, cfg.Resource[k], v)
		}
	}

	// The traces endpoint is used as it is.
	cfg, _ = FromEnv(env(map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT":        "http://ignored:4318",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://tempo.example/otlp/v1/traces",
	}), "shop", "v1")
	if cfg.URL != "https://tempo.example/otlp/v1/traces" || cfg.Resource["service.name"] != "shop" {
		t.Fatalf("url %q resource %v", cfg.URL, cfg.Resource)
	}

	// No endpoint, or the exporter switched off: nothing is exported.
	for _, m := range []map[string]string{
		{},
		{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"},
	} {
		cfg, err := FromEnv(env(m), "shop", "v1")
		if err != nil || cfg.Enabled {
			t.Errorf("%v: enabled %v, err %v; want disabled", m, cfg.Enabled, err)
		}
		if New(cfg, nil) != nil {
			t.Errorf("%v: New returned an exporter", m)
		}
	}

	// Bad values are refused with the variable's name.
	for key, m := range map[string]map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": {"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"},
		"OTEL_EXPORTER_OTLP_HEADERS":  {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_HEADERS": "novalue"},
		"OTEL_TRACES_EXPORTER":        {"OTEL_TRACES_EXPORTER": "zipkin"},
		"OTEL_EXPORTER_OTLP_PROTOCOL": {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
		"OTEL_RESOURCE_ATTRIBUTES":    {"OTEL_RESOURCE_ATTRIBUTES": "a=%zz"},
	} {
		if _, err := FromEnv(env(m), "shop", "v1"); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%v: err %v, want one naming %s", m, err, key)
		}
	}
}

// collector is an OTLP/HTTP receiver: every request's decoded body on
// got; with hold set, each request waits for a value on it first.
type collector struct {
	*httptest.Server
	got     chan map[string]any
	arrived chan struct{}
	hold    chan struct{}
}

func newCollector(t *testing.T, hold bool) *collector {
	c := &collector{got: make(chan map[string]any, 100), arrived: make(chan struct{}, 100)}
	if hold {
		c.hold = make(chan struct{})
	}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.arrived <- struct{}{}
		if c.hold != nil {
			<-c.hold
		}
		var body map[string]any
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &body) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		c.got <- body
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{}"))
	}))
	t.Cleanup(c.Close)
	return c
}

func spansOf(body map[string]any) []map[string]any {
	var out []map[string]any
	for _, rs := range body["resourceSpans"].([]any) {
		for _, ss := range rs.(map[string]any)["scopeSpans"].([]any) {
			for _, s := range ss.(map[string]any)["spans"].([]any) {
				out = append(out, s.(map[string]any))
			}
		}
	}
	return out
}

func span(i int) Span {
	id := strings.Repeat("0", 15) + string(rune('1'+i))
	return Span{
		TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: id, Name: "GET /x", Kind: KindServer,
		Start: time.Unix(1, 0), End: time.Unix(2, 0), Attributes: []Attr{Int("http.response.status_code", 200)},
	}
}

func TestBatchesAreSentOnShutdown(t *testing.T) {
	c := newCollector(t, false)
	cfg, _ := FromEnv(env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": c.URL}), "svc", "v1")
	cfg.BatchSize = 2
	cfg.Interval = time.Hour // only size and shutdown send
	e := New(cfg, nil)
	for i := 0; i < 5; i++ {
		e.Export(span(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	close(c.got)
	var sizes []int
	total := 0
	for body := range c.got {
		n := len(spansOf(body))
		sizes = append(sizes, n)
		total += n
	}
	if total != 5 || len(sizes) != 3 {
		t.Fatalf("batches %v: want 5 spans in batches of at most 2", sizes)
	}
	if sent, dropped, failed := e.Stats(); sent != 5 || dropped != 0 || failed != 0 {
		t.Fatalf("stats sent=%d dropped=%d failed=%d", sent, dropped, failed)
	}
	// After shutdown spans are dropped, not queued.
	e.Export(span(6))
	if _, dropped, _ := e.Stats(); dropped != 1 {
		t.Fatalf("dropped = %d after shutdown, want 1", dropped)
	}
}

func TestTheQueueIsBounded(t *testing.T) {
	c := newCollector(t, true)
	cfg, _ := FromEnv(env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": c.URL}), "svc", "v1")
	cfg.BatchSize = 1
	cfg.QueueSize = 2
	cfg.Interval = time.Hour
	e := New(cfg, nil)
	e.Export(span(0))
	<-c.arrived // the worker is sending span 0 and waits for the collector
	e.Export(span(1))
	e.Export(span(2)) // the queue is full now
	e.Export(span(3))
	if _, dropped, _ := e.Stats(); dropped != 1 {
		t.Fatalf("dropped = %d, want 1", dropped)
	}
	go func() {
		for range 3 {
			c.hold <- struct{}{}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if sent, _, _ := e.Stats(); sent != 3 {
		t.Fatalf("sent = %d, want 3", sent)
	}
}

func TestTheEncodingIsOTLPJSON(t *testing.T) {
	c := newCollector(t, false)
	cfg, _ := FromEnv(env(map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": c.URL,
	}), "svc", "v1")
	e := New(cfg, nil)
	s := span(0)
	s.ParentSpanID = "00f067aa0ba902b7"
	s.Status = StatusError
	s.Attributes = append(s.Attributes, String("http.route", "/x"))
	e.Export(s)
	if err := e.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	body := <-c.got
	got := spansOf(body)[0]
	enc, _ := json.Marshal(got)
	for _, want := range []string{
		`"traceId":"4bf92f3577b34da6a3ce929d0e0e4736"`, `"parentSpanId":"00f067aa0ba902b7"`,
		`"kind":2`, `"startTimeUnixNano":"1000000000"`, `"endTimeUnixNano":"2000000000"`,
		`{"key":"http.response.status_code","value":{"intValue":"200"}}`,
		`{"key":"http.route","value":{"stringValue":"/x"}}`, `"status":{"code":2}`,
	} {
		if !strings.Contains(string(enc), want) {
			t.Errorf("span %s lacks %s", enc, want)
		}
	}
	res, _ := json.Marshal(body["resourceSpans"].([]any)[0].(map[string]any)["resource"])
	if !strings.Contains(string(res), `{"key":"service.name","value":{"stringValue":"svc"}}`) {
		t.Errorf("resource %s lacks service.name", res)
	}
}

func TestFailedExportsAreCounted(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	cfg, _ := FromEnv(env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL}), "svc", "v1")
	e := New(cfg, nil)
	e.Export(span(0))
	if err := e.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if sent, _, failed := e.Stats(); sent != 0 || failed != 1 {
		t.Fatalf("sent=%d failed=%d, want 0 and 1", sent, failed)
	}
}
