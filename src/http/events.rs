//! Following a task: long-poll `events` and the SSE `eventstream`.

use std::convert::Infallible;
use std::time::Duration;

use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::ApiError;
use super::schemas::{ErrorBody, EventSchema, TaskEventFrame};
use super::AppState;
use crate::auth::Caller;
use crate::model::audit::AuditKind;
use crate::model::TaskEvent;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AfterQuery {
    /// Only events with an id greater than this (the `completion` event is always included).
    #[param(minimum = 0)]
    after: Option<String>,
}

fn parse_after(raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    match raw {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ApiError::Input(format!("request/query/after must be an integer, got '{s}'"))),
    }
}

/// A task's events after `after`; waits (long poll, 30 s by default) while
/// there are none yet.
#[utoipa::path(
    get, path = "/v2/tasks/{taskId}/events", tag = "tasks", operation_id = "listTaskEvents",
    params(("taskId" = String, Path, description = "Task id"), AfterQuery),
    responses(
        (status = 200, description = "Events, oldest first; `[]` when none arrived before the wait ended", body = Vec<EventSchema>),
        (status = 400, description = "Invalid `after`", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
    )
)]
pub async fn events(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<AfterQuery>,
) -> Result<HttpResponse, ApiError> {
    let after = parse_after(query.after.as_deref())?;
    let task = state.tasks.get_as(&caller, &path, AuditKind::TaskEvents).await?;
    let mut watch = state.events.watch(task.id, after);
    let _waiting = state.metrics.recorder().long_poll_watcher();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(state.settings.server.long_poll_seconds);
    let events = watch
        .next_batch(Some(deadline))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok().json(events))
}

fn sse_frame(event: &TaskEvent) -> Bytes {
    let data = serde_json::to_string(event).unwrap_or_else(|_| "{}".into());
    Bytes::from(format!(
        "event: {}\nid: {}\ndata: {}\n\n",
        event.event_type.as_str(),
        event.id,
        data
    ))
}

/// Server-sent events: one `event: <type>` / `id:` / `data: <event>` frame
/// per event, a keep-alive comment every 15 s, closed after `completion`.
/// Resumes from `Last-Event-ID` or `?after=`.
#[utoipa::path(
    get, path = "/v2/tasks/{taskId}/eventstream", tag = "tasks", operation_id = "streamTaskEvents",
    params(
        ("taskId" = String, Path, description = "Task id"),
        AfterQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id (takes precedence over `after`)"),
    ),
    responses(
        (status = 200, description = "`text/event-stream`: frames `event: <type>\\nid: <id>\\ndata: <TaskEvent JSON>\\n\\n`", content_type = "text/event-stream", body = TaskEventFrame),
        (status = 400, description = "Invalid `after`", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
        (status = 429, description = "The client already holds `limits.sse_streams_per_client` open streams", body = ErrorBody),
    )
)]
pub async fn eventstream(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<AfterQuery>,
) -> Result<HttpResponse, ApiError> {
    let last_event_id = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let after = match last_event_id {
        Some(id) => parse_after(Some(&id))?,
        None => parse_after(query.after.as_deref())?,
    };
    let task = state.tasks.get_as(&caller, &path, AuditKind::TaskStream).await?;
    let client = match caller.subject() {
        Some(subject) => subject.to_owned(),
        None => req.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default(),
    };
    // Held by the streaming task: the slot is freed when the stream ends.
    let permit = state.streams.acquire(&client)?;
    let mut watch = state.events.watch(task.id, after);
    let keepalive = Duration::from_secs(state.settings.server.sse_keepalive_seconds);

    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let task_id = task.id;
    // Counted from here until the stream ends or the client goes away.
    let open = state.metrics.recorder().sse_client();
    let stream_task = async move {
        let _open = open;
        let _permit = permit;
        loop {
            let deadline = tokio::time::Instant::now() + keepalive;
            let batch = tokio::select! {
                // The client went away: stop watching.
                _ = tx.closed() => return,
                b = watch.next_batch(Some(deadline)) => b,
            };
            match batch {
                Ok(events) if events.is_empty() => {
                    if tx.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() {
                        return;
                    }
                }
                Ok(events) => {
                    for event in &events {
                        if tx.send(sse_frame(event)).await.is_err() {
                            return;
                        }
                    }
                    if watch.is_done() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(task_id = %task_id, error = %e, "event stream cannot read events; closing");
                    return;
                }
            }
        }
    };
    // The stream outlives the handler; it keeps the request's span (and id).
    tokio::spawn(tracing::Instrument::instrument(stream_task, tracing::Span::current()));
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|o| o.map(Ok::<_, Infallible>)));
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream))
}
