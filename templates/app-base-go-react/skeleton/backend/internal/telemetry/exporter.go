package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// SpanKind is OTLP's span kind.
type SpanKind int

// The kinds this service records.
const (
	KindInternal SpanKind = 1
	KindServer   SpanKind = 2
	KindClient   SpanKind = 3
)

// StatusCode is OTLP's span status.
type StatusCode int

// Unset leaves the status to the backend; Error marks a failed operation.
const (
	StatusUnset StatusCode = 0
	StatusOK    StatusCode = 1
	StatusError StatusCode = 2
)

// Attr is one span attribute: a string or an integer value.
type Attr struct {
	Key string
	str *string
	num *int64
}

// String is a string attribute.
func String(key, value string) Attr { return Attr{Key: key, str: &value} }

// Int is an integer attribute.
func Int(key string, value int) Attr {
	v := int64(value)
	return Attr{Key: key, num: &v}
}

// Span is a finished span.
type Span struct {
	TraceID, SpanID, ParentSpanID string // lowercase hex
	Name                          string
	Kind                          SpanKind
	Start, End                    time.Time
	Attributes                    []Attr
	Status                        StatusCode
}

// Exporter batches finished spans and sends them to the collector from one
// goroutine. Export never blocks: when the bounded queue is full the span
// is dropped and counted. A nil *Exporter (export disabled) accepts and
// drops everything.
type Exporter struct {
	cfg     Config
	client  *http.Client
	logger  *slog.Logger
	queue   chan Span
	stop    chan context.Context
	done    chan struct{}
	closed  atomic.Bool
	once    sync.Once
	dropped atomic.Int64
	sent    atomic.Int64
	failed  atomic.Int64
}

// New starts an exporter for cfg, or returns nil when cfg is not enabled.
// Call Shutdown to send what is left.
func New(cfg Config, logger *slog.Logger) *Exporter {
	if !cfg.Enabled {
		return nil
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if logger == nil {
		logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	e := &Exporter{
		cfg:    cfg,
		client: &http.Client{Timeout: cfg.Timeout},
		logger: logger,
		queue:  make(chan Span, cfg.QueueSize),
		stop:   make(chan context.Context, 1),
		done:   make(chan struct{}),
	}
	go e.run()
	return e
}

// Export queues a finished span (dropped when the queue is full or the
// exporter is shut down).
func (e *Exporter) Export(s Span) {
	if e == nil {
		return
	}
	if e.closed.Load() {
		e.dropped.Add(1)
		return
	}
	select {
	case e.queue <- s:
	default:
		e.dropped.Add(1)
	}
}

// Stats reports spans sent, dropped (queue full or after shutdown) and
// lost in failed exports.
func (e *Exporter) Stats() (sent, dropped, failed int64) {
	if e == nil {
		return 0, 0, 0
	}
	return e.sent.Load(), e.dropped.Load(), e.failed.Load()
}

// Shutdown sends every queued span and stops the exporter; ctx bounds the
// wait (spans still queued when it ends are lost).
func (e *Exporter) Shutdown(ctx context.Context) error {
	if e == nil {
		return nil
	}
	e.once.Do(func() {
		e.closed.Store(true)
		e.stop <- ctx
	})
	select {
	case <-e.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("telemetry: spans not flushed: %w", ctx.Err())
	}
}

func (e *Exporter) run() {
	defer close(e.done)
	ticker := time.NewTicker(e.cfg.Interval)
	defer ticker.Stop()
	batch := make([]Span, 0, e.cfg.BatchSize)
	flush := func(ctx context.Context) {
		if len(batch) == 0 {
			return
		}
		e.send(ctx, batch)
		batch = make([]Span, 0, e.cfg.BatchSize)
	}
	for {
		select {
		case s := <-e.queue:
			batch = append(batch, s)
			if len(batch) >= e.cfg.BatchSize {
				flush(context.Background())
			}
		case <-ticker.C:
			flush(context.Background())
		case ctx := <-e.stop:
			for {
				select {
				case s := <-e.queue:
					batch = append(batch, s)
					if len(batch) >= e.cfg.BatchSize {
						flush(ctx)
					}
				default:
					flush(ctx)
					return
				}
			}
		}
	}
}

func (e *Exporter) send(ctx context.Context, spans []Span) {
	body, err := json.Marshal(e.request(spans))
	if err != nil {
		e.failed.Add(int64(len(spans)))
		e.logger.Warn("telemetry: cannot encode spans", slog.Any("error", err))
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.cfg.URL, bytes.NewReader(body))
	if err != nil {
		e.failed.Add(int64(len(spans)))
		e.logger.Warn("telemetry: cannot build the export request", slog.Any("error", err))
		return
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range e.cfg.Headers {
		req.Header.Set(k, v)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.failed.Add(int64(len(spans)))
		e.logger.Warn("telemetry: export failed", slog.String("url", e.cfg.URL), slog.Int("spans", len(spans)), slog.Any("error", err))
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		e.failed.Add(int64(len(spans)))
		e.logger.Warn("telemetry: the collector refused spans", slog.String("url", e.cfg.URL), slog.Int("status", resp.StatusCode), slog.Int("spans", len(spans)))
		return
	}
	e.sent.Add(int64(len(spans)))
}

// The OTLP/JSON encoding (opentelemetry-proto, JSON mapping: ids in hex,
// 64-bit integers as decimal strings, enums as numbers).
type (
	exportRequest struct {
		ResourceSpans []resourceSpans `json:"resourceSpans"`
	}
	resourceSpans struct {
		Resource   resource     `json:"resource"`
		ScopeSpans []scopeSpans `json:"scopeSpans"`
	}
	resource struct {
		Attributes []keyValue `json:"attributes"`
	}
	scopeSpans struct {
		Scope scope      `json:"scope"`
		Spans []otlpSpan `json:"spans"`
	}
	scope struct {
		Name string `json:"name"`
	}
	otlpSpan struct {
		TraceID           string     `json:"traceId"`
		SpanID            string     `json:"spanId"`
		ParentSpanID      string     `json:"parentSpanId,omitempty"`
		Name              string     `json:"name"`
		Kind              SpanKind   `json:"kind"`
		StartTimeUnixNano string     `json:"startTimeUnixNano"`
		EndTimeUnixNano   string     `json:"endTimeUnixNano"`
		Attributes        []keyValue `json:"attributes,omitempty"`
		Status            status     `json:"status"`
	}
	status struct {
		Code StatusCode `json:"code,omitempty"`
	}
	keyValue struct {
		Key   string   `json:"key"`
		Value anyValue `json:"value"`
	}
	anyValue struct {
		StringValue *string `json:"stringValue,omitempty"`
		IntValue    *string `json:"intValue,omitempty"`
	}
)

// ScopeName names the instrumentation in the exported spans.
const ScopeName = "internal/httpapi"

func (e *Exporter) request(spans []Span) exportRequest {
	keys := make([]string, 0, len(e.cfg.Resource))
	for k := range e.cfg.Resource {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	res := make([]keyValue, 0, len(keys))
	for _, k := range keys {
		v := e.cfg.Resource[k]
		res = append(res, keyValue{Key: k, Value: anyValue{StringValue: &v}})
	}
	out := make([]otlpSpan, 0, len(spans))
	for _, s := range spans {
		attrs := make([]keyValue, 0, len(s.Attributes))
		for _, a := range s.Attributes {
			kv := keyValue{Key: a.Key}
			switch {
			case a.num != nil:
				n := strconv.FormatInt(*a.num, 10)
				kv.Value.IntValue = &n
			case a.str != nil:
				kv.Value.StringValue = a.str
			}
			attrs = append(attrs, kv)
		}
		out = append(out, otlpSpan{
			TraceID:           s.TraceID,
			SpanID:            s.SpanID,
			ParentSpanID:      s.ParentSpanID,
			Name:              s.Name,
			Kind:              s.Kind,
			StartTimeUnixNano: strconv.FormatInt(s.Start.UnixNano(), 10),
			EndTimeUnixNano:   strconv.FormatInt(s.End.UnixNano(), 10),
			Attributes:        attrs,
			Status:            status{Code: s.Status},
		})
	}
	return exportRequest{ResourceSpans: []resourceSpans{{
		Resource:   resource{Attributes: res},
		ScopeSpans: []scopeSpans{{Scope: scope{Name: ScopeName}, Spans: out}},
	}}}
}
