//! Logs and traces. Logs go to stderr (JSON or pretty); with
//! `telemetry.otlp_endpoint` set and the `otlp` feature built in (the release
//! image has it), spans also go to an OpenTelemetry collector over OTLP/HTTP
//! (protobuf): one span per HTTP request, per task run and
//! per step (a child of its task).
//!
//! The `request`, `task` and `step` spans carry `request_id`, `task_id`,
//! `step_id` and `action`; the JSON format prints the current span (`span`)
//! and all enclosing ones (`spans`) on every line.

#[cfg(feature = "otlp")]
mod otlp;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

use crate::config::{LogFormat, LogSettings, TelemetrySettings};

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot set up the OTLP exporter for {endpoint}: {reason}")]
    Exporter { endpoint: String, reason: String },
    #[error(
        "telemetry.otlp_endpoint is set, but this build has no OTLP exporter: build with `--features otlp` \
         (the release image has it) or unset the setting"
    )]
    NotBuilt,
}

/// Flushes and stops the span exporter when dropped; drop it after the
/// async runtime is gone (shutting down blocks until the last batch is sent).
#[must_use = "dropping the guard stops the span export"]
#[derive(Debug, Default)]
pub struct TelemetryGuard {
    #[cfg(feature = "otlp")]
    exporter: Option<otlp::Exporter>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        // The exporter flushes its last batch as it is dropped.
        #[cfg(feature = "otlp")]
        drop(self.exporter.take());
    }
}

/// Installs the global subscriber once, without span export; `RUST_LOG`
/// overrides the configured level.
pub fn init(settings: &LogSettings) {
    install(settings, None::<fmt::Layer<tracing_subscriber::Registry>>);
}

/// Installs the global subscriber once, exporting spans when
/// `telemetry.otlp_endpoint` is set. Call it outside the async runtime.
pub fn init_with_export(log: &LogSettings, telemetry: &TelemetrySettings) -> Result<TelemetryGuard, TelemetryError> {
    let Some(endpoint) = &telemetry.otlp_endpoint else {
        init(log);
        return Ok(TelemetryGuard::default());
    };
    #[cfg(feature = "otlp")]
    {
        let exporter = otlp::Exporter::new(endpoint, &telemetry.service_name)?;
        if install(log, Some(exporter.layer())) {
            exporter.started();
        }
        Ok(TelemetryGuard {
            exporter: Some(exporter),
        })
    }
    #[cfg(not(feature = "otlp"))]
    {
        let _ = endpoint;
        Err(TelemetryError::NotBuilt)
    }
}

/// `false` when a subscriber was already installed (tests install one per process).
fn install<L>(settings: &LogSettings, export: Option<L>) -> bool
where
    L: Layer<tracing_subscriber::Registry> + Send + Sync + 'static,
{
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
    tracing_subscriber::registry()
        .with(export)
        .with(filter)
        .with(format)
        .try_init()
        .is_ok()
}

/// Names the exported span of `span` (an exported span's name is fixed
/// once it started, so `otel.name` cannot be recorded late). Without span
/// export this does nothing.
pub fn rename_span(span: &tracing::Span, name: String) {
    #[cfg(feature = "otlp")]
    otlp::rename_span(span, name);
    #[cfg(not(feature = "otlp"))]
    let _ = (span, name);
}

/// Makes `span` a child of the caller's trace when the request carries a
/// W3C `traceparent` and spans are exported.
pub fn continue_remote_trace(span: &tracing::Span, headers: &actix_web::http::header::HeaderMap) {
    #[cfg(feature = "otlp")]
    otlp::continue_remote_trace(span, headers);
    #[cfg(not(feature = "otlp"))]
    let _ = (span, headers);
}
