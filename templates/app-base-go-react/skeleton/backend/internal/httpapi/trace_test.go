package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParseTraceparent(t *testing.T) {
	const trace, span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	cases := []struct {
		header  string
		ok      bool
		sampled bool
	}{
		{"00-" + trace + "-" + span + "-01", true, true},
		{"00-" + trace + "-" + span + "-00", true, false},
		{"01-" + trace + "-" + span + "-01-future", true, true},
		{"00-" + trace + "-" + span + "-01-extra", false, false},
		{"ff-" + trace + "-" + span + "-01", false, false},
		{"00-" + strings.Repeat("0", 32) + "-" + span + "-01", false, false},
		{"00-" + trace + "-" + strings.Repeat("0", 16) + "-01", false, false},
		{"00-" + strings.ToUpper(trace) + "-" + span + "-01", false, false},
		{"00-" + trace[:31] + "-" + span + "-01", false, false},
		{"", false, false},
		{"garbage", false, false},
	}
	for _, c := range cases {
		got, ok := parseTraceparent(c.header)
		if ok != c.ok || (ok && (got.traceID != trace || got.spanID != span || got.sampled != c.sampled)) {
			t.Errorf("parseTraceparent(%q) = %+v, %v; want ok=%v sampled=%v", c.header, got, ok, c.ok, c.sampled)
		}
	}
}

func TestRequestsCarryATraceIDIntoTheLogAndTheResponse(t *testing.T) {
	var logs bytes.Buffer
	h, _ := newTestRouter(t, &logs)
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"

	req := httptest.NewRequest(http.MethodGet, "/api/hello", nil)
	req.Header.Set("traceparent", "00-"+trace+"-00f067aa0ba902b7-01")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	got, ok := parseTraceparent(rec.Header().Get("traceparent"))
	if !ok || got.traceID != trace || got.spanID == "00f067aa0ba902b7" || !got.sampled {
		t.Fatalf("response traceparent %q: want the caller's trace, a new span, sampled", rec.Header().Get("traceparent"))
	}
	var line map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if strings.Contains(l, `"msg":"request"`) {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatalf("log line %q: %v", l, err)
			}
		}
	}
	if line["trace_id"] != trace || line["span_id"] != got.spanID {
		t.Fatalf("access log %v: want trace_id %s and span_id %s", line, trace, got.spanID)
	}

	// Without a valid traceparent the request starts a trace of its own.
	rec = do(h, http.MethodGet, "/api/hello")
	fresh, ok := parseTraceparent(rec.Header().Get("traceparent"))
	if !ok || fresh.traceID == trace {
		t.Fatalf("response traceparent %q: want a new valid trace", rec.Header().Get("traceparent"))
	}
}
