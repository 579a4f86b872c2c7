//! The outermost middleware: gives every request an id (`x-request-id`,
//! echoed in the answer), runs it inside a `request` span carrying that id (so
//! every log line of the request has `request_id`, and OTLP gets one server
//! span per request), writes the access log line and records the RED metrics
//! by route pattern.
//!
//! Error bodies are `error::with_request_info`'s business, not this one's.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use tracing::field::Empty;
use tracing::Instrument;

use super::AppState;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id, also in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// An incoming id is kept when it is short and made of URL-safe characters,
/// so it cannot forge log fields or smuggle anything into headers.
fn sane_request_id(raw: &str) -> bool {
    (1..=128).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/' | b'+' | b'='))
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane_request_id(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Probes and scrapes are logged at debug level: they come every few seconds.
fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let id = request_id(req.headers());
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().as_str().to_owned();
    let path = req.path().to_owned();
    // ERROR level so the span, and the id it puts on every log line, exists
    // whatever `log.level` says; spans print nothing themselves.
    let span = tracing::error_span!(
        "request",
        request_id = %id,
        http.request.method = %method,
        url.path = %path,
        http.route = Empty,
        http.response.status_code = Empty,
        otel.kind = "server",
        otel.status_code = Empty,
    );
    crate::telemetry::continue_remote_trace(&span, req.headers());
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.metrics.recorder().clone());

    let result = next.call(req).instrument(span.clone()).await;

    let (status, route) = match &result {
        Ok(res) => (res.status(), res.request().match_pattern()),
        Err(e) => (e.as_response_error().status_code(), None),
    };
    let elapsed = started.elapsed();
    if let Some(metrics) = &metrics {
        metrics.http_request(&method, route.as_deref(), status.as_u16(), elapsed);
    }
    let route_label = route.as_deref().unwrap_or(crate::metrics::UNMATCHED_ROUTE);
    span.record("http.route", route_label);
    span.record("http.response.status_code", status.as_u16());
    crate::telemetry::rename_span(&span, format!("{method} {route_label}"));
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    span.in_scope(|| {
        let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
        if is_probe(&path) {
            tracing::debug!(status = status.as_u16(), elapsed_ms, "request answered");
        } else {
            tracing::info!(status = status.as_u16(), elapsed_ms, "request answered");
        }
    });

    let mut res = result?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incoming_ids_are_kept_only_when_sane() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_static("abc-123_X.y"));
        assert_eq!(request_id(&headers), "abc-123_X.y");
        for bad in ["has space", "quote\"", "", &"x".repeat(129)] {
            let mut headers = HeaderMap::new();
            headers.insert(REQUEST_ID_HEADER, HeaderValue::from_str(bad).unwrap());
            let id = request_id(&headers);
            assert_ne!(id, bad);
            assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        }
        assert!(uuid::Uuid::parse_str(&request_id(&HeaderMap::new())).is_ok());
    }
}
