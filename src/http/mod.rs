//! Thin actix-web handlers: extract, call one service function, map the
//! result. No SQL and no business rules live here.

pub mod auth;
mod body;
pub mod content_type;
mod dry_run;
pub mod error;
mod events;
mod governance;
mod health;
mod meta;
mod metrics;
pub mod observe;
pub mod openapi;
mod promotions;
pub mod schemas;
mod tasks;
pub mod updates;

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;

use crate::actions::ActionRegistry;
use crate::auth::Authenticator;
use crate::config::{CorsSettings, Settings};
use crate::engine::WorkerHealth;
use crate::service::{DryRunService, EventHub, MetricsService, TaskService};

pub struct AppState {
    pub settings: Settings,
    pub tasks: TaskService,
    pub dry_run: DryRunService,
    pub events: Arc<EventHub>,
    pub actions: ActionRegistry,
    /// The in-process worker's health and the age after which it counts as stuck.
    pub worker_health: Option<(Arc<WorkerHealth>, Duration)>,
    /// Turns `Authorization` headers into callers.
    pub auth: Arc<Authenticator>,
    /// Open event streams per client (`limits.sse_streams_per_client`).
    pub streams: Arc<crate::service::StreamLimiter>,
    /// Where requests, tasks and watchers are counted; renders `/metrics`.
    pub metrics: MetricsService,
    /// `POST /v2/autocomplete/{provider}/{resource}`.
    pub autocomplete: crate::service::AutocompleteService,
    /// `/v2/updates`: fleet updates of generated repositories.
    pub updates: crate::service::UpdateService,
    /// `/v2/promotions`.
    pub promotions: crate::service::PromotionService,
}

/// The CORS middleware for `server.cors` (Backstage's `backend.cors`):
/// preflights are answered before authentication, and every answer (event
/// streams and errors included) carries the CORS headers.
pub fn cors(settings: &CorsSettings) -> actix_cors::Cors {
    let mut cors = actix_cors::Cors::default();
    if settings.origins.iter().any(|o| o == "*") {
        cors = cors.allow_any_origin();
    } else {
        for origin in &settings.origins {
            cors = cors.allowed_origin(origin.trim_end_matches('/'));
        }
    }
    let methods: Vec<actix_web::http::Method> = settings
        .methods
        .iter()
        .filter_map(|m| actix_web::http::Method::from_bytes(m.trim().to_ascii_uppercase().as_bytes()).ok())
        .collect();
    cors = cors.allowed_methods(methods);
    if settings.headers.is_empty() {
        cors = cors.allow_any_header();
    } else {
        let headers: Vec<actix_web::http::header::HeaderName> = settings
            .headers
            .iter()
            .filter_map(|h| actix_web::http::header::HeaderName::from_bytes(h.trim().as_bytes()).ok())
            .collect();
        cors = cors.allowed_headers(headers);
    }
    if settings.credentials {
        cors = cors.supports_credentials();
    }
    cors.max_age(settings.max_age_seconds)
}

/// Routes under `/api/scaffolder` plus the health and metrics endpoints.
pub fn configure(cfg: &mut web::ServiceConfig, body_limit: usize) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(body_limit)
            .content_type_required(true)
            .error_handler(error::json_error),
    )
    .app_data(web::PayloadConfig::new(body_limit))
    .app_data(web::QueryConfig::default().error_handler(error::query_error))
    .app_data(web::PathConfig::default().error_handler(error::path_error))
    .route("/healthz", web::get().to(health::healthz))
    .route("/readyz", web::get().to(health::readyz))
    .route("/metrics", web::get().to(metrics::metrics))
    .service(
        web::scope(error::MOUNT)
            .route("/openapi.json", web::get().to(openapi::serve))
            .route("/v2/tasks", web::post().to(tasks::create))
            .route("/v2/tasks", web::get().to(tasks::list))
            .route("/v2/tasks/{taskId}", web::get().to(tasks::get))
            .route("/v2/tasks/{taskId}/cancel", web::post().to(tasks::cancel))
            .route("/v2/tasks/{taskId}/retry", web::post().to(tasks::retry))
            .route("/v2/tasks/{taskId}/approve", web::post().to(governance::approve))
            .route("/v2/tasks/{taskId}/reject", web::post().to(governance::reject))
            .route("/v2/audit", web::get().to(governance::audit))
            .route(
                "/.well-known/backstage/permissions/apply-conditions",
                web::post().to(governance::apply_conditions),
            )
            .route("/v2/tasks/{taskId}/events", web::get().to(events::events))
            .route("/v2/tasks/{taskId}/eventstream", web::get().to(events::eventstream))
            .route(
                "/v2/templates/{namespace}/{kind}/{name}/parameter-schema",
                web::get().to(meta::parameter_schema),
            )
            .route("/v2/promotions", web::post().to(promotions::create))
            .route("/v2/promotions", web::get().to(promotions::list))
            .route("/v2/dry-run", web::post().to(dry_run::dry_run))
            .route("/v2/updates", web::post().to(updates::start))
            .route("/v2/updates/{runId}", web::get().to(updates::get))
            .route("/v2/updates/{runId}/cancel", web::post().to(updates::cancel))
            .route("/v2/updates/{runId}/retry", web::post().to(updates::retry))
            .route("/v2/actions", web::get().to(meta::actions))
            .route("/v2/templating-extensions", web::get().to(meta::templating_extensions))
            .route(
                "/v2/autocomplete/{provider}/{resource}",
                web::post().to(meta::autocomplete),
            )
            .default_service(web::to(meta::not_found)),
    );
}
