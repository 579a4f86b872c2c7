//! `/v2/updates`: fleet updates of the repositories generated from a
//! template (start, show, cancel, retry).

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::body::Body;
use super::error::ApiError;
use super::schemas::{ErrorBody, StartUpdateRequest, UpdateRunSchema};
use super::AppState;
use crate::auth::Caller;
use crate::service::StartUpdate;

/// Start a fleet update: every repository generated from the template (task
/// history) is brought to its current version, each on a branch with a pull
/// request (GitHub) or a branch (local git host). The run goes on in the
/// background; follow it with `GET /v2/updates/{runId}`.
#[utoipa::path(
    post, path = "/v2/updates", tag = "updates", operation_id = "startUpdate",
    request_body = StartUpdateRequest,
    responses(
        (status = 202, description = "Run started", body = UpdateRunSchema),
        (status = 400, description = "Malformed request, a template from the catalog, or no repository to update", body = ErrorBody),
        (status = 403, description = "The caller does not see every task (only admins and `access: all` tokens start fleet updates)", body = ErrorBody),
        (status = 404, description = "Unknown template", body = ErrorBody),
    )
)]
pub async fn start(
    state: web::Data<AppState>,
    caller: Caller,
    body: Body<StartUpdateRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.0;
    let run = state
        .updates
        .start(
            &caller,
            StartUpdate {
                template_ref: request.template_ref,
                repositories: request.repositories,
                set: request.set,
                dry_run: request.dry_run,
                concurrency: request.concurrency,
                created_by: caller.subject().map(str::to_owned),
            },
        )
        .await?;
    Ok(HttpResponse::Accepted().json(UpdateRunSchema::from(run)))
}

/// How long `GET /v2/updates/{runId}?wait=` may hold a request.
const MAX_WAIT_SECONDS: u64 = 30;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// Hold the answer until something in the run changes or it ends, at
    /// most this many seconds (up to 30): followers long-poll with it.
    #[param(minimum = 0, maximum = 30)]
    pub wait: Option<u64>,
}

/// A fleet update run: its progress and every repository's outcome.
#[utoipa::path(
    get, path = "/v2/updates/{runId}", tag = "updates", operation_id = "getUpdate",
    params(("runId" = String, Path, description = "Update run id"), WaitQuery),
    responses(
        (status = 200, description = "The run", body = UpdateRunSchema),
        (status = 400, description = "Malformed query (`wait` is a whole number of seconds)", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<WaitQuery>,
) -> Result<HttpResponse, ApiError> {
    let run = match query.wait.filter(|w| *w > 0) {
        Some(seconds) => {
            let limit = std::time::Duration::from_secs(seconds.min(MAX_WAIT_SECONDS));
            state.updates.wait(&caller, &path, limit).await?
        }
        None => state.updates.get(&caller, &path).await?,
    };
    Ok(HttpResponse::Ok().json(UpdateRunSchema::from(run)))
}

/// Cancel a running fleet update: repositories not started are cancelled,
/// the ones in flight stop. An ended run is answered as it is.
#[utoipa::path(
    post, path = "/v2/updates/{runId}/cancel", tag = "updates", operation_id = "cancelUpdate",
    params(("runId" = String, Path, description = "Update run id")),
    responses(
        (status = 200, description = "Cancellation requested (or the run had ended)", body = UpdateRunSchema),
        (status = 404, description = "No such run", body = ErrorBody),
    )
)]
pub async fn cancel(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let run = state.updates.cancel(&caller, &path).await?;
    Ok(HttpResponse::Ok().json(UpdateRunSchema::from(run)))
}

/// Run an ended fleet update again: its failed and cancelled repositories
/// are updated to the template's current version.
#[utoipa::path(
    post, path = "/v2/updates/{runId}/retry", tag = "updates", operation_id = "retryUpdate",
    params(("runId" = String, Path, description = "Update run id")),
    responses(
        (status = 202, description = "Run restarted", body = UpdateRunSchema),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run is still running", body = ErrorBody),
    )
)]
pub async fn retry(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let run = state.updates.retry(&caller, &path).await?;
    Ok(HttpResponse::Accepted().json(UpdateRunSchema::from(run)))
}
