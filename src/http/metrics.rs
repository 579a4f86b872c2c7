//! `GET /metrics`: Prometheus scrapes this. Outside the plugin mount and,
//! like `/readyz`, open unless `telemetry.metrics_token` is set.

use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, HttpRequest, HttpResponse};

use super::error::ApiError;
use super::schemas::ErrorBody;
use super::AppState;
use crate::auth::AuthError;

/// Compares without an early exit, so timing does not reveal the token.
fn same_token(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len() && given.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// Prometheus metrics of this process (HTTP, tasks, steps, event watchers)
/// and of the shared queue, in Prometheus' text exposition format.
#[utoipa::path(
    get, path = "/metrics", tag = "health", operation_id = "metrics",
    responses(
        (status = 200, description = "Metrics in the text exposition format 0.0.4", content_type = "text/plain", body = String),
        (status = 401, description = "`telemetry.metrics_token` is set and the request lacks `Authorization: Bearer <token>`", body = ErrorBody),
    )
)]
pub async fn metrics(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    if let Some(expected) = &state.settings.telemetry.metrics_token {
        let given = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthenticated(AuthError::Missing))?;
        if !same_token(given.trim().as_bytes(), expected.expose().as_bytes()) {
            return Err(ApiError::Unauthenticated(AuthError::invalid("invalid metrics token")));
        }
    }
    Ok(HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(state.metrics.render().await))
}
