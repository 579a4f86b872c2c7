package metrics

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func render(t *testing.T, r *Registry) string {
	t.Helper()
	var b strings.Builder
	if err := r.Write(&b); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return b.String()
}

func TestCountersAndHistogram(t *testing.T) {
	r := New("svc", "v1")
	r.Observe("GET", "/api/hello", 200, 3*time.Millisecond)
	r.Observe("GET", "/api/hello", 200, 200*time.Millisecond)
	r.Observe("GET", "/api/hello", 500, 20*time.Second)

	out := render(t, r)
	for _, want := range []string{
		"# TYPE http_requests_total counter",
		`http_requests_total{method="GET",route="/api/hello",code="200"} 2`,
		`http_requests_total{method="GET",route="/api/hello",code="500"} 1`,
		"# TYPE http_request_duration_seconds histogram",
		`http_request_duration_seconds_bucket{method="GET",route="/api/hello",le="0.005"} 1`,
		`http_request_duration_seconds_bucket{method="GET",route="/api/hello",le="0.1"} 1`,
		`http_request_duration_seconds_bucket{method="GET",route="/api/hello",le="0.25"} 2`,
		`http_request_duration_seconds_bucket{method="GET",route="/api/hello",le="10"} 2`,
		`http_request_duration_seconds_bucket{method="GET",route="/api/hello",le="+Inf"} 3`,
		`http_request_duration_seconds_count{method="GET",route="/api/hello"} 3`,
		`http_requests_in_flight 0`,
		"# TYPE go_goroutines gauge",
		"go_memstats_alloc_bytes ",
		`app_build_info{service="svc",version="v1",goversion="`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q\n%s", want, out)
		}
	}
}

func TestExpositionIsWellFormed(t *testing.T) {
	r := New("svc", "v1")
	r.Observe("GET", "/healthz", 200, time.Millisecond)
	sc := bufio.NewScanner(strings.NewReader(render(t, r)))
	typed := map[string]bool{}
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# TYPE ") {
			typed[strings.Fields(line)[2]] = true
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 && !strings.Contains(line, "{") {
			t.Errorf("malformed sample %q", line)
		}
		name := line[:strings.IndexAny(line, "{ ")]
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
		if !typed[name] && !typed[base] {
			t.Errorf("sample %q has no TYPE line before it", line)
		}
	}
}

func TestLabelValuesAreEscaped(t *testing.T) {
	got := labels("route", "a\"b\\c\nd")
	want := `{route="a\"b\\c\nd"}`
	if got != want {
		t.Errorf("labels = %s, want %s", got, want)
	}
}

func TestInstrumentRecordsStatusAndHandlerServesText(t *testing.T) {
	r := New("svc", "v1")
	h := r.Instrument("/teapot", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/teapot", nil))

	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if ct := rec.Header().Get("Content-Type"); ct != ContentType {
		t.Errorf("Content-Type = %q, want %q", ct, ContentType)
	}
	want := `http_requests_total{method="POST",route="/teapot",code="418"} 1`
	if !strings.Contains(rec.Body.String(), want) {
		t.Errorf("metrics lack %q\n%s", want, rec.Body.String())
	}
}
