package telemetry

import (
	"context"
	"log/slog"
)

// SpanContext identifies the current span of a request.
type SpanContext struct {
	TraceID, SpanID string
	Sampled         bool
}

type spanKey struct{}

// ContextWithSpan returns ctx carrying sc.
func ContextWithSpan(ctx context.Context, sc SpanContext) context.Context {
	return context.WithValue(ctx, spanKey{}, sc)
}

// SpanFromContext returns the span ctx carries, if any.
func SpanFromContext(ctx context.Context) (SpanContext, bool) {
	sc, ok := ctx.Value(spanKey{}).(SpanContext)
	return sc, ok
}

// LogHandler adds trace_id and span_id to every record logged with a
// context that carries a span (slog's *Context methods), unless the record
// already has them, so that Loki can find a line's trace in Tempo.
func LogHandler(next slog.Handler) slog.Handler { return logHandler{next} }

type logHandler struct{ next slog.Handler }

func (h logHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h logHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc, ok := SpanFromContext(ctx); ok {
		has := false
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "trace_id" {
				has = true
				return false
			}
			return true
		})
		if !has {
			r = r.Clone()
			r.AddAttrs(slog.String("trace_id", sc.TraceID), slog.String("span_id", sc.SpanID))
		}
	}
	return h.next.Handle(ctx, r)
}

func (h logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return logHandler{h.next.WithAttrs(attrs)}
}

func (h logHandler) WithGroup(name string) slog.Handler {
	return logHandler{h.next.WithGroup(name)}
}
