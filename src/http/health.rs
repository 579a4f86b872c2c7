use actix_web::{web, HttpResponse};
use serde_json::json;

use super::schemas::HealthStatus;
use super::AppState;

/// The process is alive.
#[utoipa::path(
    get, path = "/healthz", tag = "health", operation_id = "healthz",
    responses((status = 200, description = "Alive", body = HealthStatus))
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Ready: the database answers and the task worker loop is alive.
#[utoipa::path(
    get, path = "/readyz", tag = "health", operation_id = "readyz",
    responses(
        (status = 200, description = "Ready", body = HealthStatus),
        (status = 503, description = "Not ready; `message` says why", body = HealthStatus),
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if let Err(e) = state.tasks.store().ping().await {
        return HttpResponse::ServiceUnavailable()
            .json(json!({ "status": "unavailable", "message": format!("database unreachable: {e}") }));
    }
    if let Some((health, window)) = &state.worker_health {
        if !health.is_healthy(*window) {
            return HttpResponse::ServiceUnavailable()
                .json(json!({ "status": "unavailable", "message": "task worker is not running or cannot reach the database" }));
        }
    }
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}
