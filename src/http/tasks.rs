//! `/v2/tasks`: create, list, get, cancel, retry.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::json;

use super::body::{Body, OptionalBody};
use super::error::ApiError;
use super::schemas::{
    CancelResponse, CreateTaskRequest, ErrorBody, RetryRequest, TaskIdResponse, TaskList, TaskSchema, ValidationErrors,
};
use super::AppState;
use crate::auth::Caller;
use crate::model::TaskStatus;
use crate::service::{CancelOutcome, ListQuery, SortField};

/// Start a task from a template.
#[utoipa::path(
    post, path = "/v2/tasks", tag = "tasks", operation_id = "createTask",
    request_body = CreateTaskRequest,
    responses(
        (status = 201, description = "Task created", body = TaskIdResponse),
        (status = 400, description = "Malformed request, or parameter values or secrets that fail the template's schemas (`spec.parameters`, `spec.secrets.schema`)", body = ValidationErrors),
        (status = 404, description = "Unknown template", body = ErrorBody),
        (status = 413, description = "Request body too large", body = ErrorBody),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: Body<CreateTaskRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = state.tasks.create(&caller, body.0.into()).await?;
    Ok(HttpResponse::Created().json(json!({ "id": id })))
}

#[derive(Debug, Default)]
struct ListParams {
    query: ListQuery,
}

fn parse_list(pairs: &[(String, String)]) -> Result<ListParams, ApiError> {
    let mut query = ListQuery::default();
    for (key, value) in pairs {
        match key.as_str() {
            // No entity ref holds a NUL byte, and PostgreSQL text cannot: refuse
            // rather than fail in the database (dropping it would widen the filter).
            "createdBy" if value.contains('\0') => {
                return Err(ApiError::Input(
                    "request/query/createdBy must not contain NUL bytes".into(),
                ))
            }
            "createdBy" => query.created_by.push(value.clone()),
            "status" => query.status.push(TaskStatus::parse(value).ok_or_else(|| {
                ApiError::Input(format!(
                    "request/query/status must be one of open, processing, completed, failed, cancelled; got '{value}'"
                ))
            })?),
            "order" => {
                let (dir, field) = value.split_once(':').unwrap_or(("desc", value.as_str()));
                let desc = match dir {
                    "desc" => true,
                    "asc" => false,
                    _ => {
                        return Err(ApiError::Input(format!(
                            "request/query/order must look like 'desc:created_at', got '{value}'"
                        )))
                    }
                };
                let field = SortField::parse(field)
                    .ok_or_else(|| ApiError::Input(format!("request/query/order cannot sort by '{field}'")))?;
                query.order.push((field, desc));
            }
            "limit" | "offset" => {
                let n: i64 =
                    value.parse().ok().filter(|n: &i64| *n >= 0).ok_or_else(|| {
                        ApiError::Input(format!("request/query/{key} must be a non-negative integer"))
                    })?;
                if key == "limit" {
                    query.limit = Some(n);
                } else {
                    query.offset = Some(n);
                }
            }
            _ => {}
        }
    }
    Ok(ListParams { query })
}

#[derive(Serialize)]
struct TaskListBody<'a> {
    tasks: &'a [crate::model::Task],
    #[serde(rename = "totalTasks")]
    total_tasks: i64,
}

/// List tasks, newest first unless `order` says otherwise.
#[utoipa::path(
    get, path = "/v2/tasks", tag = "tasks", operation_id = "listTasks",
    params(
        ("createdBy" = Option<Vec<String>>, Query, description = "Only tasks created by these entity refs", explode = true),
        ("status" = Option<Vec<TaskStatus>>, Query, description = "Only tasks with these statuses", explode = true),
        ("order" = Option<Vec<String>>, Query, description = "Sort keys like `desc:created_at`", explode = true),
        ("limit" = Option<i64>, Query, minimum = 0, description = "Page size"),
        ("offset" = Option<i64>, Query, minimum = 0, description = "Tasks to skip"),
    ),
    responses(
        (status = 200, description = "A page of tasks", body = TaskList),
        (status = 400, description = "Invalid query", body = ErrorBody),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, ApiError> {
    let params = parse_list(&query)?;
    let (tasks, total) = state.tasks.list(&caller, &params.query).await?;
    Ok(HttpResponse::Ok().json(TaskListBody {
        tasks: &tasks,
        total_tasks: total,
    }))
}

/// One task.
#[utoipa::path(
    get, path = "/v2/tasks/{taskId}", tag = "tasks", operation_id = "getTask",
    params(("taskId" = String, Path, description = "Task id")),
    responses(
        (status = 200, description = "The task", body = TaskSchema),
        (status = 404, description = "No such task", body = ErrorBody),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let task = state.tasks.get(&caller, &path).await?;
    Ok(HttpResponse::Ok().json(task))
}

/// Cancel a task. Cancelling a finished task changes nothing; the answer
/// carries the status it kept.
#[utoipa::path(
    post, path = "/v2/tasks/{taskId}/cancel", tag = "tasks", operation_id = "cancelTask",
    params(("taskId" = String, Path, description = "Task id")),
    responses(
        (status = 200, description = "Cancellation requested or done; `status` is `cancelled`, or the final status of a task that had already finished", body = CancelResponse),
        (status = 404, description = "No such task", body = ErrorBody),
    )
)]
pub async fn cancel(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let outcome = state.tasks.cancel(&caller, &path).await?;
    let body = match outcome {
        CancelOutcome::CancelledBeforeStart | CancelOutcome::Requested => json!({ "status": "cancelled" }),
        CancelOutcome::AlreadyFinished(status) => json!({
            "status": status,
            "message": format!("Task {} already finished with status {status}; nothing was changed", path.as_str()),
        }),
        CancelOutcome::NotFound => return Err(ApiError::NotFound(format!("No task with id '{path}' found"))),
    };
    Ok(HttpResponse::Ok().json(body))
}

/// Run a finished task again; the same id is kept and its event log goes on
/// with a `recovered` event.
#[utoipa::path(
    post, path = "/v2/tasks/{taskId}/retry", tag = "tasks", operation_id = "retryTask",
    params(("taskId" = String, Path, description = "Task id")),
    request_body(content = Option<RetryRequest>, description = "Optional new secrets"),
    responses(
        (status = 201, description = "Task re-opened", body = TaskIdResponse),
        (status = 400, description = "Malformed body, or secrets that fail the template's `spec.secrets.schema` (then the body is `{errors}` as for invalid values)", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
        (status = 409, description = "The task has not finished", body = ErrorBody),
    )
)]
pub async fn retry(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: OptionalBody<RetryRequest>,
) -> Result<HttpResponse, ApiError> {
    let secrets = body.0.and_then(|r| r.secrets).map(|s| s.0);
    let id = state.tasks.retry(&caller, &path, secrets).await?;
    Ok(HttpResponse::Created().json(json!({ "id": id })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_query_is_validated() {
        let pairs = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        let p = parse_list(&pairs(&[
            ("createdBy", "user:default/a"),
            ("createdBy", "user:default/b"),
            ("limit", "2"),
            ("order", "asc:created_at"),
        ]))
        .unwrap();
        assert_eq!(p.query.created_by.len(), 2);
        assert_eq!(p.query.limit, Some(2));
        assert_eq!(p.query.order, vec![(SortField::CreatedAt, false)]);
        assert!(parse_list(&pairs(&[("limit", "-1")])).is_err());
        assert!(parse_list(&pairs(&[("status", "weird")])).is_err());
        assert!(parse_list(&pairs(&[("order", "sideways:created_at")])).is_err());
    }
}
