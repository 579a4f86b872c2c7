package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/soft-yt/${{ values.name }}/backend/internal/metrics"
)

var fixedTime = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func newTestRouter(t *testing.T, logs io.Writer) (http.Handler, *Readiness) {
	t.Helper()
	if logs == nil {
		logs = io.Discard
	}
	ready := &Readiness{}
	h := NewRouter(Options{
		Service:   "svc",
		Version:   "test",
		Logger:    slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics:   metrics.New("svc", "test"),
		Readiness: ready,
		Now:       func() time.Time { return fixedTime },
	})
	return h, ready
}

func do(h http.Handler, method, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

func TestHealthz(t *testing.T) {
	h, _ := newTestRouter(t, nil)
	rec := do(h, http.MethodGet, "/healthz")
	if rec.Code != http.StatusOK || rec.Body.String() != "ok\n" {
		t.Fatalf("GET /healthz = %d %q, want 200 ok", rec.Code, rec.Body.String())
	}
}

func TestReadyzFollowsReadiness(t *testing.T) {
	h, ready := newTestRouter(t, nil)
	if rec := do(h, http.MethodGet, "/readyz"); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("GET /readyz before ready = %d, want 503", rec.Code)
	}
	ready.Set(true)
	if rec := do(h, http.MethodGet, "/readyz"); rec.Code != http.StatusOK {
		t.Fatalf("GET /readyz when ready = %d, want 200", rec.Code)
	}
	ready.Set(false)
	if rec := do(h, http.MethodGet, "/readyz"); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("GET /readyz when shutting down = %d, want 503", rec.Code)
	}
}

func TestHello(t *testing.T) {
	h, _ := newTestRouter(t, nil)
	cases := []struct {
		target, message string
	}{
		{"/api/hello", "Hello, world!"},
		{"/api/hello?name=Ada", "Hello, Ada!"},
		{"/api/hello?name=%20%20", "Hello, world!"},
	}
	for _, c := range cases {
		rec := do(h, http.MethodGet, c.target)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s = %d, want 200", c.target, rec.Code)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
		var body HelloResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("body %q: %v", rec.Body.String(), err)
		}
		want := HelloResponse{Message: c.message, Service: "svc", Version: "test", Time: fixedTime}
		if body != want {
			t.Errorf("GET %s = %+v, want %+v", c.target, body, want)
		}
	}
}

func TestHelloRejectsLongNames(t *testing.T) {
	h, _ := newTestRouter(t, nil)
	rec := do(h, http.MethodGet, "/api/hello?name="+strings.Repeat("x", MaxNameLength+1))
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("status = %d, want 400", rec.Code)
	}
	var body ErrorResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error == "" {
		t.Fatalf("body %q is not an error answer (%v)", rec.Body.String(), err)
	}
}

func TestMethodAndPathErrors(t *testing.T) {
	h, _ := newTestRouter(t, nil)
	if rec := do(h, http.MethodPost, "/api/hello"); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /api/hello = %d, want 405", rec.Code)
	}
	if rec := do(h, http.MethodGet, "/nope"); rec.Code != http.StatusNotFound {
		t.Errorf("GET /nope = %d, want 404", rec.Code)
	}
}

func TestMetricsCountRequests(t *testing.T) {
	h, _ := newTestRouter(t, nil)
	do(h, http.MethodGet, "/api/hello")
	do(h, http.MethodGet, "/api/hello")
	rec := do(h, http.MethodGet, "/metrics")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics = %d", rec.Code)
	}
	want := `http_requests_total{method="GET",route="/api/hello",code="200"} 2`
	if !strings.Contains(rec.Body.String(), want) {
		t.Errorf("metrics lack %q", want)
	}
}

func TestAccessLogIsJSON(t *testing.T) {
	var logs bytes.Buffer
	h, _ := newTestRouter(t, &logs)
	do(h, http.MethodGet, "/api/hello?name=x")
	var line map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(logs.Bytes()), &line); err != nil {
		t.Fatalf("log line %q is not JSON: %v", logs.String(), err)
	}
	if line["msg"] != "request" || line["path"] != "/api/hello" || line["status"] != float64(200) {
		t.Errorf("unexpected log line %v", line)
	}
}

func TestPanicsBecome500(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	h := recoverer(logger, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	rec := do(h, http.MethodGet, "/")
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500", rec.Code)
	}
	if !strings.Contains(logs.String(), "handler panicked") {
		t.Errorf("panic not logged: %s", logs.String())
	}
}
