//! `/v2/updates`: fleet updates of the repositories generated from a
//! template (start, show, cancel, retry), and their wire types.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::body::Body;
use super::error::ApiError;
use super::schemas::ErrorBody;
use super::AppState;
use crate::auth::Caller;
use crate::model::{UpdateRunStatus, UpdateStatus};
use crate::service::{StartUpdate, UpdateItemRecord, UpdateRun};

fn default_concurrency() -> usize {
    4
}

/// A fleet update: bring every repository generated from a template (or the
/// ones named) to the template's current version.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartUpdateRequest {
    /// Template entity ref: `template:default/name`, `default/name` or `name`.
    pub template_ref: String,
    /// Repositories to update (`repoUrl`s as templates take them). Absent or
    /// empty: every repository a completed task generated from the template.
    #[serde(default)]
    #[schema(required = false)]
    pub repositories: Vec<String>,
    /// Values for parameters the new version added (or to change), over the
    /// values recorded in each repository's answers file.
    #[serde(default)]
    #[schema(value_type = Object, required = false)]
    pub set: Map<String, Value>,
    /// Compute each repository's change and its diff without pushing anything.
    #[serde(default)]
    #[schema(required = false)]
    pub dry_run: bool,
    /// Repositories updated at once (1 to 16).
    #[serde(default = "default_concurrency")]
    #[schema(required = false, minimum = 1, maximum = 16, default = 4)]
    pub concurrency: usize,
}

/// Counts of a run's repositories by status.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateProgressSchema {
    pub total: usize,
    /// Repositories that reached an end.
    pub done: usize,
    pub opened: usize,
    pub conflicts: usize,
    pub up_to_date: usize,
    pub proposed: usize,
    pub planned: usize,
    pub failed: usize,
    pub cancelled: usize,
    /// "17 of 50: 14 opened, 2 conflicts, 1 up to date".
    pub summary: String,
}

/// One repository of a run.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateItemSchema {
    pub repo_url: String,
    pub status: UpdateStatus,
    /// The version the repository's answers file named.
    pub from_version: Option<String>,
    /// The pull request (GitHub) or the repository and branch (local git host).
    pub proposal: Option<String>,
    /// Files the change touches: `A`, `M` or `D`, a space, the path.
    pub files: Vec<String>,
    /// Files left with conflict markers.
    pub conflicts: Vec<String>,
    /// The body of the pull request.
    pub body: Option<String>,
    /// `git diff` from the default branch to the proposed tree.
    pub diff: Option<String>,
    pub error: Option<String>,
}

/// A fleet update run.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateRunSchema {
    #[schema(format = Uuid)]
    pub id: String,
    pub template_ref: String,
    /// The template version the run updates to (`sha256:…`).
    pub version: String,
    pub status: UpdateRunStatus,
    pub dry_run: bool,
    pub created_by: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    pub progress: UpdateProgressSchema,
    pub repositories: Vec<UpdateItemSchema>,
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

fn item_schema(item: UpdateItemRecord) -> UpdateItemSchema {
    UpdateItemSchema {
        files: strings(&item.files),
        conflicts: strings(&item.conflicts),
        repo_url: item.repo_url,
        status: item.status,
        from_version: item.from_version,
        proposal: item.proposal,
        body: item.body,
        diff: item.diff,
        error: item.error,
    }
}

impl From<UpdateRun> for UpdateRunSchema {
    fn from(run: UpdateRun) -> UpdateRunSchema {
        let p = &run.progress;
        let progress = UpdateProgressSchema {
            total: p.total,
            done: p.done(),
            opened: p.opened,
            conflicts: p.conflicts,
            up_to_date: p.up_to_date,
            proposed: p.proposed,
            planned: p.planned,
            failed: p.failed,
            cancelled: p.cancelled,
            summary: p.summary(),
        };
        UpdateRunSchema {
            id: run.id.to_string(),
            template_ref: run.template_ref,
            version: run.version,
            status: run.status,
            dry_run: run.dry_run,
            created_by: run.created_by,
            created_at: run.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            finished_at: run
                .finished_at
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            progress,
            repositories: run.items.into_iter().map(item_schema).collect(),
        }
    }
}

/// Start a fleet update: every repository generated from the template (task
/// history) is brought to its current version, each on a branch with a pull
/// request (GitHub) or a branch (local git host). The run goes on in the
/// background; follow it with `GET /v2/updates/{runId}`.
#[utoipa::path(
    post, path = "/v2/updates", tag = "updates", operation_id = "startUpdate",
    request_body = StartUpdateRequest,
    responses(
        (status = 202, description = "Run started", body = UpdateRunSchema),
        (status = 400, description = "Malformed request, a template that is not a directory template, or no repository to update", body = ErrorBody),
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
        .start(StartUpdate {
            template_ref: request.template_ref,
            repositories: request.repositories,
            set: request.set,
            dry_run: request.dry_run,
            concurrency: request.concurrency,
            created_by: caller.subject().map(str::to_owned),
        })
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
        (status = 404, description = "No such run", body = ErrorBody),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<WaitQuery>,
) -> Result<HttpResponse, ApiError> {
    let run = match query.wait.filter(|w| *w > 0) {
        Some(seconds) => {
            let limit = std::time::Duration::from_secs(seconds.min(MAX_WAIT_SECONDS));
            state.updates.wait(&path, limit).await?
        }
        None => state.updates.get(&path).await?,
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
pub async fn cancel(state: web::Data<AppState>, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let run = state.updates.cancel(&path).await?;
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
pub async fn retry(state: web::Data<AppState>, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let run = state.updates.retry(&path).await?;
    Ok(HttpResponse::Accepted().json(UpdateRunSchema::from(run)))
}
