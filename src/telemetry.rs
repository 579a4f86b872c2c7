//! Logs and traces. Logs go to stderr (JSON or pretty); with
//! `telemetry.otlp_endpoint` set, spans also go to an OpenTelemetry collector
//! over OTLP/HTTP (protobuf): one span per HTTP request, per task run and
//! per step (a child of its task).
//!
//! The `request`, `task` and `step` spans carry `request_id`, `task_id`,
//! `step_id` and `action`; the JSON format prints the current span (`span`)
//! and all enclosing ones (`spans`) on every line.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

use crate::config::{LogFormat, LogSettings, TelemetrySettings};

/// Whether spans are exported, so requests bother reading `traceparent`.
static EXPORTING: AtomicBool = AtomicBool::new(false);

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot set up the OTLP exporter for {endpoint}: {reason}")]
    Exporter { endpoint: String, reason: String },
}

/// Flushes and stops the span exporter when dropped; drop it after the
/// async runtime is gone (shutting down blocks until the last batch is sent).
#[must_use = "dropping the guard stops the span export"]
#[derive(Debug, Default)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            EXPORTING.store(false, Ordering::Relaxed);
            if let Err(e) = provider.shutdown() {
                eprintln!("scaffolder: cannot flush the last spans: {e}");
            }
        }
    }
}

/// Installs the global subscriber once, without span export; `RUST_LOG`
/// overrides the configured level.
pub fn init(settings: &LogSettings) {
    install(settings, None);
}

/// Installs the global subscriber once, exporting spans when
/// `telemetry.otlp_endpoint` is set. Call it outside the async runtime.
pub fn init_with_export(log: &LogSettings, telemetry: &TelemetrySettings) -> Result<TelemetryGuard, TelemetryError> {
    let Some(endpoint) = &telemetry.otlp_endpoint else {
        install(log, None);
        return Ok(TelemetryGuard::default());
    };
    let provider = tracer_provider(endpoint, &telemetry.service_name)?;
    if install(log, Some(&provider)) {
        EXPORTING.store(true, Ordering::Relaxed);
    }
    Ok(TelemetryGuard {
        provider: Some(provider),
    })
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

fn tracer_provider(endpoint: &str, service_name: &str) -> Result<SdkTracerProvider, TelemetryError> {
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
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// `false` when a subscriber was already installed (tests install one per process).
fn install(settings: &LogSettings, provider: Option<&SdkTracerProvider>) -> bool {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.level));
    let format = match settings.format {
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Pretty => fmt::layer().with_writer(std::io::stderr).boxed(),
    };
    let export = provider.map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("scaffolder")));
    tracing_subscriber::registry()
        .with(filter)
        .with(format)
        .with(export)
        .try_init()
        .is_ok()
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

/// Names the exported span of `span` (an exported span's name is fixed
/// once it started, so `otel.name` cannot be recorded late).
pub fn rename_span(span: &tracing::Span, name: String) {
    if EXPORTING.load(Ordering::Relaxed) {
        span.context().span().update_name(name);
    }
}

/// Makes `span` a child of the caller's trace when the request carries a
/// W3C `traceparent` and spans are exported.
pub fn continue_remote_trace(span: &tracing::Span, headers: &actix_web::http::header::HeaderMap) {
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
