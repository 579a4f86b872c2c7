//! `POST /v2/dry-run`.

use actix_web::{web, HttpResponse};

use super::body::Body;
use super::error::ApiError;
use super::schemas::{DryRunRequestSchema, DryRunResponse, ErrorBody, ValidationErrors};
use super::AppState;

/// Run a template without side effects: every action that supports dry-run
/// runs in a scratch workspace; others are skipped with faked outputs.
#[utoipa::path(
    post, path = "/v2/dry-run", tag = "templates", operation_id = "dryRun",
    request_body = DryRunRequestSchema,
    responses(
        (status = 200, description = "The log, the files the template produced, its output and its steps", body = DryRunResponse),
        (status = 400, description = "Malformed request, not a template, invalid values or secrets (`spec.secrets.schema`), or a step failed with an input error", body = ValidationErrors),
        (status = 403, description = "A `directoryContents` path leads outside the template's directory (`NotAllowedError`)", body = ErrorBody),
        (status = 404, description = "A step uses an action that is not installed", body = ErrorBody),
        (status = 500, description = "A step failed", body = ErrorBody),
    )
)]
pub async fn dry_run(
    state: web::Data<AppState>,
    caller: crate::auth::Caller,
    body: Body<DryRunRequestSchema>,
) -> Result<HttpResponse, ApiError> {
    match state.dry_run.run_for(&caller, &state.tasks, body.0.try_into()?).await? {
        Ok(result) => Ok(HttpResponse::Ok().json(result)),
        Err(failure) => Err(ApiError::Step {
            name: failure.name,
            message: failure.message,
        }),
    }
}
