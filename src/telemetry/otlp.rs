//! The OTLP/HTTP span exporter (feature `otlp`).

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;

use super::TelemetryError;

/// Whether spans are exported, so requests bother reading `traceparent`.
/// Process-wide because the subscriber it describes is.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// The tracer provider; dropping it flushes the last batch.
#[derive(Debug)]
pub(super) struct Exporter {
    provider: SdkTracerProvider,
}

impl Exporter {
    pub(super) fn new(endpoint: &str, service_name: &str) -> Result<Exporter, TelemetryError> {
        // The blocking client runs on the batch processor's own thread, so
        // exporting never needs (or blocks) the async runtime.
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(traces_url(endpoint))
            .build()
            .map_err(|e| TelemetryError::Exporter {
                endpoint: endpoint.to_owned(),
                reason: e.to_string(),
            })?;
        let resource = Resource::builder().with_service_name(service_name.to_owned()).build();
        Ok(Exporter {
            provider: SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(resource)
                .build(),
        })
    }

    /// The subscriber layer that hands spans to this exporter.
    pub(super) fn layer(&self) -> impl Layer<tracing_subscriber::Registry> + Send + Sync + 'static {
        tracing_opentelemetry::layer().with_tracer(self.provider.tracer("scaffolder"))
    }

    /// Called once the layer is installed: requests start reading `traceparent`.
    pub(super) fn started(&self) {
        EXPORTING.store(true, Ordering::Relaxed);
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        EXPORTING.store(false, Ordering::Relaxed);
        if let Err(e) = self.provider.shutdown() {
            eprintln!("scaffolder: cannot flush the last spans: {e}");
        }
    }
}

/// `<endpoint>/v1/traces`, as `OTEL_EXPORTER_OTLP_ENDPOINT` is read; a URL
/// already ending in `/v1/traces` is taken as it is.
fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}

struct Headers<'a>(&'a actix_web::http::header::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

pub(super) fn rename_span(span: &tracing::Span, name: String) {
    if EXPORTING.load(Ordering::Relaxed) {
        span.context().span().update_name(name);
    }
}

pub(super) fn continue_remote_trace(span: &tracing::Span, headers: &actix_web::http::header::HeaderMap) {
    if !EXPORTING.load(Ordering::Relaxed) || !headers.contains_key("traceparent") {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    // Fails only when the span is disabled or already started; then it keeps its own trace.
    let _ = span.set_parent(parent);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_path_is_added_once() {
        assert_eq!(traces_url("http://c:4318"), "http://c:4318/v1/traces");
        assert_eq!(traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(traces_url("http://c:4318/v1/traces"), "http://c:4318/v1/traces");
    }
}
