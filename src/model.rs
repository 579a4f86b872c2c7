//! Domain types shared by the store, the engine and the HTTP layer.

pub mod approval;
pub mod audit;

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

/// The status a step reports in its log events (`body.status`), and how a
/// begun step ended. The one type for step states: the runner writes it, the
/// metrics label it, the command line's progress view reads it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    Processing,
    Completed,
    Failed,
    /// Its `if` was false, an earlier step failed, or a dry-run skipped its action.
    Skipped,
    Cancelled,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Processing => "processing",
            StepStatus::Completed => "completed",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
            StepStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<StepStatus> {
        Some(match raw {
            "processing" => StepStatus::Processing,
            "completed" => StepStatus::Completed,
            "failed" => StepStatus::Failed,
            "skipped" => StepStatus::Skipped,
            "cancelled" => StepStatus::Cancelled,
            _ => return None,
        })
    }
}

/// The body of a `log` event, in Backstage's key order: `message`, then
/// `stepId` and `status` when the line belongs to a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogBody {
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StepStatus>,
}

/// How a new attempt of a task starts (`recovered` events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RecoverStrategy {
    /// A retry (Backstage's word for it).
    None,
    /// A takeover that resumes from the first unfinished step.
    Resume,
    /// A takeover of a template that asked to start over.
    StartOver,
}

/// The error of a failed run, as its `completion` event carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunError {
    pub name: String,
    pub message: String,
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

    fn typed(event_type: EventType, body: &impl Serialize) -> NewEvent {
        NewEvent {
            event_type,
            // Plain structs of strings always serialize.
            body: serde_json::to_value(body).unwrap_or(Value::Null),
        }
    }

    /// A log line of the task, outside any step.
    pub fn message(message: impl Into<String>) -> NewEvent {
        NewEvent::typed(
            EventType::Log,
            &LogBody {
                message: message.into(),
                step_id: None,
                status: None,
            },
        )
    }

    /// A log line of a step.
    pub fn step_log(step_id: &str, message: impl Into<String>) -> NewEvent {
        NewEvent::typed(
            EventType::Log,
            &LogBody {
                message: message.into(),
                step_id: Some(step_id.to_owned()),
                status: None,
            },
        )
    }

    /// A step changes status (the Create page moves it).
    pub fn step_status(step_id: &str, status: StepStatus, message: impl Into<String>) -> NewEvent {
        NewEvent::typed(
            EventType::Log,
            &LogBody {
                message: message.into(),
                step_id: Some(step_id.to_owned()),
                status: Some(status),
            },
        )
    }

    /// The `cancelled` event of a run cancelled in `step_id`.
    pub fn cancelled_in(step_id: &str) -> NewEvent {
        NewEvent::typed(
            EventType::Cancelled,
            &LogBody {
                message: format!("Step {step_id} has been cancelled."),
                step_id: Some(step_id.to_owned()),
                status: Some(StepStatus::Cancelled),
            },
        )
    }

    /// A `cancelled` event outside any step (a task cancelled before it ran).
    pub fn cancelled(message: impl Into<String>) -> NewEvent {
        NewEvent::typed(
            EventType::Cancelled,
            &LogBody {
                message: message.into(),
                step_id: None,
                status: None,
            },
        )
    }

    /// The `recovered` event that starts a new attempt. Backstage's retry
    /// writes `{"recoverStrategy":"none"}` alone; a takeover says why too.
    pub fn recovered(strategy: RecoverStrategy, message: Option<String>) -> NewEvent {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct RecoveredBody {
            #[serde(skip_serializing_if = "Option::is_none")]
            message: Option<String>,
            recover_strategy: RecoverStrategy,
        }
        NewEvent::typed(
            EventType::Recovered,
            &RecoveredBody {
                message,
                recover_strategy: strategy,
            },
        )
    }

    /// The `completion` event: `Run completed with status: …`, with the
    /// error of a failed run or the output of a completed one.
    pub fn completion(status: TaskStatus, error: Option<&RunError>, output: Option<&Value>) -> NewEvent {
        #[derive(Serialize)]
        struct CompletionBody<'a> {
            message: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            error: Option<&'a RunError>,
            #[serde(skip_serializing_if = "Option::is_none")]
            output: Option<&'a Value>,
        }
        NewEvent::typed(
            EventType::Completion,
            &CompletionBody {
                message: format!("Run completed with status: {status}"),
                error,
                output,
            },
        )
    }
}

/// Where one repository of a fleet update stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum UpdateStatus {
    /// Not started yet.
    Pending,
    Running,
    /// The change merged cleanly and was proposed (pull request or branch).
    Opened,
    /// The change was proposed with conflict markers in some files.
    Conflicts,
    /// The repository already has everything the template version brings.
    UpToDate,
    /// The same change is already proposed (an earlier run): nothing pushed.
    Proposed,
    /// A dry run computed the change without pushing it.
    Planned,
    Failed,
    Cancelled,
}

impl UpdateStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateStatus::Pending => "pending",
            UpdateStatus::Running => "running",
            UpdateStatus::Opened => "opened",
            UpdateStatus::Conflicts => "conflicts",
            UpdateStatus::UpToDate => "upToDate",
            UpdateStatus::Proposed => "proposed",
            UpdateStatus::Planned => "planned",
            UpdateStatus::Failed => "failed",
            UpdateStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<UpdateStatus> {
        [
            UpdateStatus::Pending,
            UpdateStatus::Running,
            UpdateStatus::Opened,
            UpdateStatus::Conflicts,
            UpdateStatus::UpToDate,
            UpdateStatus::Proposed,
            UpdateStatus::Planned,
            UpdateStatus::Failed,
            UpdateStatus::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }

    /// Finished for good: a retry leaves it alone.
    pub fn is_done(self) -> bool {
        matches!(
            self,
            UpdateStatus::Opened
                | UpdateStatus::Conflicts
                | UpdateStatus::UpToDate
                | UpdateStatus::Proposed
                | UpdateStatus::Planned
        )
    }
}

/// Where a fleet update run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UpdateRunStatus {
    Running,
    /// Every repository was tried (some may have failed).
    Completed,
    Cancelled,
}

impl UpdateRunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateRunStatus::Running => "running",
            UpdateRunStatus::Completed => "completed",
            UpdateRunStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<UpdateRunStatus> {
        match raw {
            "running" => Some(UpdateRunStatus::Running),
            "completed" => Some(UpdateRunStatus::Completed),
            "cancelled" => Some(UpdateRunStatus::Cancelled),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn typed_bodies_keep_backstage_s_shape_and_key_order() {
        assert_eq!(
            serde_json::to_string(&NewEvent::step_status("fetch", StepStatus::Skipped, "Skipping").body).unwrap(),
            r#"{"message":"Skipping","stepId":"fetch","status":"skipped"}"#
        );
        assert_eq!(NewEvent::message("Starting").body, json!({"message": "Starting"}));
        let error = RunError {
            name: "Error".into(),
            message: "boom".into(),
        };
        assert_eq!(
            serde_json::to_string(&NewEvent::completion(TaskStatus::Failed, Some(&error), None).body).unwrap(),
            r#"{"message":"Run completed with status: failed","error":{"name":"Error","message":"boom"}}"#
        );
        assert_eq!(
            NewEvent::completion(TaskStatus::Completed, None, Some(&json!({}))).body,
            json!({"message": "Run completed with status: completed", "output": {}})
        );
        let cancelled = NewEvent::cancelled_in("wait");
        assert_eq!(cancelled.event_type, EventType::Cancelled);
        assert_eq!(
            serde_json::to_string(&cancelled.body).unwrap(),
            r#"{"message":"Step wait has been cancelled.","stepId":"wait","status":"cancelled"}"#
        );
    }

    #[test]
    fn step_statuses_round_trip() {
        for status in [
            StepStatus::Processing,
            StepStatus::Completed,
            StepStatus::Failed,
            StepStatus::Skipped,
            StepStatus::Cancelled,
        ] {
            assert_eq!(StepStatus::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_value(status).unwrap(), json!(status.as_str()));
        }
    }
}
