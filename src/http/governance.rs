//! Approval decisions (`/v2/tasks/{taskId}/approve|reject`) and the audit
//! trail (`/v2/audit`).

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};

use super::body::{Body, OptionalBody};
use super::error::ApiError;
use super::schemas::{ApplyConditionsRequest, AuditList, DecisionRequest, DecisionResponse, ErrorBody};
use super::AppState;
use crate::auth::Caller;
use crate::model::approval::Verdict;
use crate::service::AuditFilter;

async fn decide(
    state: &AppState,
    caller: &Caller,
    id: &str,
    verdict: Verdict,
    body: OptionalBody<DecisionRequest>,
) -> Result<HttpResponse, ApiError> {
    let comment = body.0.and_then(|b| b.comment);
    let answer = state.tasks.decide(caller, id, verdict, comment).await?;
    Ok(HttpResponse::Ok().json(DecisionResponse {
        id: answer.task_id.to_string(),
        step_id: answer.step_id,
        decision: answer.verdict.as_str().to_owned(),
    }))
}

/// Approve the `approval:wait` step a task waits at. The task resumes at
/// that step, which completes.
#[utoipa::path(
    post, path = "/v2/tasks/{taskId}/approve", tag = "approvals", operation_id = "approveTask",
    params(("taskId" = String, Path, description = "Task id")),
    request_body(content = Option<DecisionRequest>, description = "An optional comment"),
    responses(
        (status = 200, description = "Approved; the task is queued again", body = DecisionResponse),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 403, description = "The caller is not among the step's approvers, or created the task and the step does not allow self-approval", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
        (status = 409, description = "The task is not waiting for approval", body = ErrorBody),
    )
)]
pub async fn approve(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: OptionalBody<DecisionRequest>,
) -> Result<HttpResponse, ApiError> {
    decide(&state, &caller, &path, Verdict::Approved, body).await
}

/// Reject the `approval:wait` step a task waits at: the step fails with the
/// comment, and the task goes on as after any failure.
#[utoipa::path(
    post, path = "/v2/tasks/{taskId}/reject", tag = "approvals", operation_id = "rejectTask",
    params(("taskId" = String, Path, description = "Task id")),
    request_body(content = Option<DecisionRequest>, description = "An optional comment (the step's error)"),
    responses(
        (status = 200, description = "Rejected; the task is queued again to fail the step", body = DecisionResponse),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 403, description = "The caller is not among the step's approvers, or created the task and the step does not allow self-approval", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
        (status = 409, description = "The task is not waiting for approval", body = ErrorBody),
    )
)]
pub async fn reject(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: OptionalBody<DecisionRequest>,
) -> Result<HttpResponse, ApiError> {
    decide(&state, &caller, &path, Verdict::Rejected, body).await
}

fn parse_time(key: &str, value: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ApiError::Input(format!("request/query/{key} must be an RFC 3339 time, got '{value}'")))
}

fn parse_audit(pairs: &[(String, String)]) -> Result<AuditFilter, ApiError> {
    let mut filter = AuditFilter::default();
    for (key, value) in pairs {
        if value.contains('\0') {
            return Err(ApiError::Input(format!(
                "request/query/{key} must not contain NUL bytes"
            )));
        }
        match key.as_str() {
            "actor" => filter.actor = Some(value.clone()),
            "event" => filter.events.push(value.clone()),
            "taskId" => filter.task_id = Some(value.clone()),
            "since" => filter.since = Some(parse_time(key, value)?),
            "until" => filter.until = Some(parse_time(key, value)?),
            "before" | "limit" => {
                let n: i64 = value
                    .parse()
                    .ok()
                    .filter(|n: &i64| *n > 0)
                    .ok_or_else(|| ApiError::Input(format!("request/query/{key} must be a positive integer")))?;
                if key == "before" {
                    filter.before = Some(n);
                } else {
                    filter.limit = Some(n);
                }
            }
            _ => {}
        }
    }
    Ok(filter)
}

/// The audit trail, newest first, one page at a time (administrators only).
#[utoipa::path(
    get, path = "/v2/audit", tag = "audit", operation_id = "listAuditEvents",
    params(
        ("actor" = Option<String>, Query, description = "Only events by this user entity ref or token subject"),
        ("event" = Option<Vec<String>>, Query, description = "Only these events (`task:create`, `approval:approve`, …; see the README's catalogue)", explode = true),
        ("taskId" = Option<String>, Query, description = "Only events about this task"),
        ("since" = Option<String>, Query, description = "Only events at or after this RFC 3339 time"),
        ("until" = Option<String>, Query, description = "Only events before this RFC 3339 time"),
        ("before" = Option<i64>, Query, minimum = 1, description = "Keyset: only events older than this id (the `next` of the previous page)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Page size (default 100)"),
    ),
    responses(
        (status = 200, description = "A page of audit events", body = AuditList),
        (status = 400, description = "Invalid filter", body = ErrorBody),
        (status = 403, description = "The caller is not an administrator", body = ErrorBody),
    )
)]
pub async fn audit(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, ApiError> {
    let filter = parse_audit(&query)?;
    let page = state.tasks.audit().list(&caller, &filter).await?;
    Ok(HttpResponse::Ok().json(AuditList {
        events: page.events,
        next: page.next,
    }))
}

/// Backstage's permission integration endpoint for the scaffolder's
/// resource types: the permission backend, asked about a resource this
/// service sent as a `scaffolder-resource:` ref, got a conditional decision
/// from its policy and asks here whether the resource meets it. Open (the
/// permission backend calls with its own service token): the answer only
/// depends on what the request carries. Anything not ours is DENY.
#[utoipa::path(
    post, path = "/.well-known/backstage/permissions/apply-conditions", tag = "permissions",
    operation_id = "applyConditions",
    request_body = ApplyConditionsRequest,
    responses(
        (status = 200, description = "`{items: [{id, result: ALLOW|DENY (or one per ref)}]}`", body = Object),
        (status = 400, description = "Malformed request", body = ErrorBody),
    )
)]
pub async fn apply_conditions(body: Body<ApplyConditionsRequest>) -> HttpResponse {
    let answer = |allowed: bool| serde_json::json!(if allowed { "ALLOW" } else { "DENY" });
    let items: Vec<serde_json::Value> = body
        .0
        .items
        .iter()
        .map(|item| {
            let decide = |r: &serde_json::Value| {
                r.as_str().is_some_and(|r| {
                    crate::auth::permissions::apply_conditions(r, &item.resource_type, &item.conditions)
                })
            };
            let result = match &item.resource_ref {
                serde_json::Value::Array(refs) => {
                    serde_json::Value::Array(refs.iter().map(|r| answer(decide(r))).collect())
                }
                single => answer(decide(single)),
            };
            serde_json::json!({ "id": item.id, "result": result })
        })
        .collect();
    HttpResponse::Ok().json(serde_json::json!({ "items": items }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_filters_are_validated() {
        let pairs = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        let f = parse_audit(&pairs(&[
            ("actor", "user:default/a"),
            ("event", "task:create"),
            ("event", "task:cancel"),
            ("since", "2026-12-06T00:00:00Z"),
            ("before", "10"),
        ]))
        .unwrap();
        assert_eq!(f.events.len(), 2);
        assert_eq!(f.before, Some(10));
        assert!(parse_audit(&pairs(&[("since", "yesterday")])).is_err());
        assert!(parse_audit(&pairs(&[("limit", "0")])).is_err());
        assert!(parse_audit(&pairs(&[("actor", "a\0b")])).is_err());
    }
}
