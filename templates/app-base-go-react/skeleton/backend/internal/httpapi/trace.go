package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
)

// W3C Trace Context (https://www.w3.org/TR/trace-context/): every request
// carries a trace id, the caller's when its traceparent header is valid,
// else a new one. The access log writes it as trace_id, so Loki can link a
// log line to its trace in Tempo, and the response returns it in
// traceparent so callers can find the line.
type traceContext struct {
	traceID string // 32 lowercase hex digits, not all zero
	spanID  string // 16 lowercase hex digits, not all zero
	sampled bool
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	zero := true
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			if c != '0' {
				zero = false
			}
		case c >= 'a' && c <= 'f':
			zero = false
		default:
			return false
		}
	}
	return !zero
}

// parseTraceparent reads a traceparent header of version 00 (or a later
// version, whose first four fields keep their meaning).
func parseTraceparent(h string) (traceContext, bool) {
	parts := strings.Split(strings.TrimSpace(h), "-")
	if len(parts) < 4 || len(parts[0]) != 2 || parts[0] == "ff" {
		return traceContext{}, false
	}
	if parts[0] == "00" && len(parts) != 4 {
		return traceContext{}, false
	}
	version, flags := parts[0], parts[3]
	if _, err := hex.DecodeString(version); err != nil || strings.ToLower(version) != version {
		return traceContext{}, false
	}
	if !isHex(parts[1], 32) || !isHex(parts[2], 16) || len(flags) != 2 {
		return traceContext{}, false
	}
	b, err := hex.DecodeString(flags)
	if err != nil || strings.ToLower(flags) != flags {
		return traceContext{}, false
	}
	return traceContext{traceID: parts[1], spanID: parts[2], sampled: b[0]&1 == 1}, true
}

func randomHex(n int) string {
	for {
		b := make([]byte, n/2)
		if _, err := rand.Read(b); err != nil {
			continue
		}
		if s := hex.EncodeToString(b); isHex(s, n) {
			return s
		}
	}
}

// childOf is this request's span: the caller's trace (or a new one) with a
// span id of its own. The caller's sampling decision is kept; a new trace
// is sampled (the SDK's default, parent-based always-on).
func childOf(header string) traceContext {
	parent, ok := parseTraceparent(header)
	if !ok {
		return traceContext{traceID: randomHex(32), spanID: randomHex(16), sampled: true}
	}
	return traceContext{traceID: parent.traceID, spanID: randomHex(16), sampled: parent.sampled}
}

func (t traceContext) header() string {
	flags := "00"
	if t.sampled {
		flags = "01"
	}
	return "00-" + t.traceID + "-" + t.spanID + "-" + flags
}
