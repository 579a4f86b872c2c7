//! Domain types shared by the store, the engine and the HTTP layer.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(pub Uuid);

impl TaskId {
    pub fn new() -> TaskId {
        TaskId(Uuid::new_v4())
    }

    /// Task ids in URLs that are not UUIDs name no task (Backstage on PostgreSQL
    /// answers 500 here; a missing task is the honest answer).
    pub fn parse(raw: &str) -> Option<TaskId> {
        Uuid::parse_str(raw).ok().map(TaskId)
    }
}

impl Default for TaskId {
    fn default() -> Self {
        TaskId::new()
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Open,
    Processing,
    Completed,
    Failed,
    Cancelled,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Open => "open",
            TaskStatus::Processing => "processing",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<TaskStatus> {
        Some(match raw {
            "open" => TaskStatus::Open,
            "processing" => TaskStatus::Processing,
            "completed" => TaskStatus::Completed,
            "failed" => TaskStatus::Failed,
            "cancelled" => TaskStatus::Cancelled,
            _ => return None,
        })
    }

    pub fn is_finished(self) -> bool {
        matches!(self, TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled)
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Log,
    Completion,
    Cancelled,
    Recovered,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Log => "log",
            EventType::Completion => "completion",
            EventType::Cancelled => "cancelled",
            EventType::Recovered => "recovered",
        }
    }

    pub fn parse(raw: &str) -> Option<EventType> {
        Some(match raw {
            "log" => EventType::Log,
            "completion" => EventType::Completion,
            "cancelled" => EventType::Cancelled,
            "recovered" => EventType::Recovered,
            _ => return None,
        })
    }
}

/// Status a step reports in its log events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    Processing,
    Completed,
    Failed,
    Skipped,
    Cancelled,
}

/// Timestamps as Backstage writes them: ISO-8601, milliseconds, `Z`.
pub fn serialize_ts<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&ts.to_rfc3339_opts(SecondsFormat::Millis, true))
}

pub fn serialize_opt_ts<S: Serializer>(ts: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match ts {
        Some(ts) => serialize_ts(ts, s),
        None => s.serialize_none(),
    }
}

/// A task as the API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub id: TaskId,
    pub spec: Value,
    pub status: TaskStatus,
    #[serde(serialize_with = "serialize_ts")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "serialize_opt_ts")]
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

/// One event of a task's log, in Backstage's wire shape.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskEvent {
    pub id: i64,
    pub is_task_recoverable: bool,
    pub task_id: TaskId,
    pub body: Value,
    #[serde(rename = "type")]
    pub event_type: EventType,
    #[serde(serialize_with = "serialize_ts")]
    pub created_at: DateTime<Utc>,
}

/// An event to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_type: EventType,
    pub body: Value,
}

impl NewEvent {
    pub fn log(body: Value) -> NewEvent {
        NewEvent {
            event_type: EventType::Log,
            body,
        }
    }
}
