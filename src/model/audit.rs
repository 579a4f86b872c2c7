//! Audit events: who did what to which task or resource, with what outcome.
//! Shaped like Backstage's auditor events (`eventId`, `severityLevel`,
//! `actor`, `request`, `meta`, `status`), stored by `store` in the same
//! transaction as the change they record and logged as one JSON line.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::TaskId;

/// Backstage's `AuditorServiceEventSeverityLevel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuditSeverity {
    /// Normal usage (reads).
    Low,
    /// Write endpoints.
    Medium,
    /// Changes outside this service: repositories, overlays, approvals.
    High,
    Critical,
}

impl AuditSeverity {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditSeverity::Low => "low",
            AuditSeverity::Medium => "medium",
            AuditSeverity::High => "high",
            AuditSeverity::Critical => "critical",
        }
    }

    pub fn parse(raw: &str) -> Option<AuditSeverity> {
        Some(match raw {
            "low" => AuditSeverity::Low,
            "medium" => AuditSeverity::Medium,
            "high" => AuditSeverity::High,
            "critical" => AuditSeverity::Critical,
            _ => return None,
        })
    }
}

/// How the audited operation ended (Backstage's `status` of a finished event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuditStatus {
    Succeeded,
    Failed,
}

impl AuditStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditStatus::Succeeded => "succeeded",
            AuditStatus::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<AuditStatus> {
        Some(match raw {
            "succeeded" => AuditStatus::Succeeded,
            "failed" => AuditStatus::Failed,
            _ => return None,
        })
    }
}

/// What happened: the event catalogue. The first three ids are Backstage's
/// scaffolder's own (`task` with its `actionType`, `template-parameter-schema`,
/// `action-fetch`); the others are this service's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditKind {
    TaskCreate,
    TaskGet,
    /// `GET …/events` (Backstage's `task` with actionType `events`).
    TaskEvents,
    /// `GET …/eventstream` (actionType `stream`).
    TaskStream,
    TaskList,
    TaskCancel,
    TaskRetry,
    TaskDryRun,
    ParameterSchemaRead,
    ActionList,
    /// A request refused by a permission rule (the operation it asked for
    /// is in `meta.permission`).
    PermissionDenied,
    ApprovalRequested,
    ApprovalGiven,
    ApprovalRefused,
    ApprovalTimedOut,
    RepositoryCreated,
    OverlayRegistered,
    /// Image digests pinned in a stage's overlays (`gitops:image:promote`).
    PromotionMade,
    AuditRead,
}

impl AuditKind {
    pub const ALL: [AuditKind; 19] = [
        AuditKind::TaskCreate,
        AuditKind::TaskGet,
        AuditKind::TaskEvents,
        AuditKind::TaskStream,
        AuditKind::TaskList,
        AuditKind::TaskCancel,
        AuditKind::TaskRetry,
        AuditKind::TaskDryRun,
        AuditKind::ParameterSchemaRead,
        AuditKind::ActionList,
        AuditKind::PermissionDenied,
        AuditKind::ApprovalRequested,
        AuditKind::ApprovalGiven,
        AuditKind::ApprovalRefused,
        AuditKind::ApprovalTimedOut,
        AuditKind::RepositoryCreated,
        AuditKind::OverlayRegistered,
        AuditKind::PromotionMade,
        AuditKind::AuditRead,
    ];

    /// Backstage's `eventId` and `meta.actionType`.
    pub fn ids(self) -> (&'static str, Option<&'static str>) {
        match self {
            AuditKind::TaskCreate => ("task", Some("create")),
            AuditKind::TaskGet => ("task", Some("get")),
            AuditKind::TaskEvents => ("task", Some("events")),
            AuditKind::TaskStream => ("task", Some("stream")),
            AuditKind::TaskList => ("task", Some("list")),
            AuditKind::TaskCancel => ("task", Some("cancel")),
            AuditKind::TaskRetry => ("task", Some("retry")),
            AuditKind::TaskDryRun => ("task", Some("dry-run")),
            AuditKind::ParameterSchemaRead => ("template-parameter-schema", None),
            AuditKind::ActionList => ("action-fetch", None),
            AuditKind::PermissionDenied => ("permission", Some("deny")),
            AuditKind::ApprovalRequested => ("approval", Some("request")),
            AuditKind::ApprovalGiven => ("approval", Some("approve")),
            AuditKind::ApprovalRefused => ("approval", Some("reject")),
            AuditKind::ApprovalTimedOut => ("approval", Some("timeout")),
            AuditKind::RepositoryCreated => ("repository", Some("create")),
            AuditKind::OverlayRegistered => ("overlay", Some("register")),
            AuditKind::PromotionMade => ("promotion", Some("create")),
            AuditKind::AuditRead => ("audit", Some("list")),
        }
    }

    /// The `eventId:actionType` name filters and the CLI use (`task:create`).
    pub fn name(self) -> String {
        match self.ids() {
            (event, Some(action)) => format!("{event}:{action}"),
            (event, None) => event.to_owned(),
        }
    }

    pub fn parse(raw: &str) -> Option<AuditKind> {
        AuditKind::ALL.into_iter().find(|k| k.name() == raw)
    }

    pub fn from_ids(event_id: &str, action_type: Option<&str>) -> Option<AuditKind> {
        AuditKind::ALL.into_iter().find(|k| k.ids() == (event_id, action_type))
    }

    pub fn severity(self) -> AuditSeverity {
        match self {
            AuditKind::TaskGet
            | AuditKind::TaskEvents
            | AuditKind::TaskStream
            | AuditKind::TaskList
            | AuditKind::ParameterSchemaRead
            | AuditKind::ActionList
            | AuditKind::AuditRead => AuditSeverity::Low,
            AuditKind::TaskCreate
            | AuditKind::TaskCancel
            | AuditKind::TaskRetry
            | AuditKind::TaskDryRun
            | AuditKind::ApprovalRequested
            | AuditKind::ApprovalTimedOut
            | AuditKind::PermissionDenied => AuditSeverity::Medium,
            AuditKind::ApprovalGiven
            | AuditKind::ApprovalRefused
            | AuditKind::RepositoryCreated
            | AuditKind::OverlayRegistered
            | AuditKind::PromotionMade => AuditSeverity::High,
        }
    }
}

/// One audit event to record.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub kind: AuditKind,
    pub status: AuditStatus,
    /// The user entity ref or token subject; `None` for anonymous callers
    /// and the service itself (a timeout).
    pub actor: Option<String>,
    pub task_id: Option<TaskId>,
    /// The resource acted on when it is not (only) a task: a template ref,
    /// a repository URL, an overlay path.
    pub target: Option<String>,
    pub request_id: Option<String>,
    /// Ids, refs and counts; never values or secrets.
    pub meta: Map<String, Value>,
    pub error: Option<String>,
}

impl AuditEvent {
    pub fn new(kind: AuditKind, status: AuditStatus) -> AuditEvent {
        AuditEvent {
            kind,
            status,
            actor: None,
            task_id: None,
            target: None,
            request_id: None,
            meta: Map::new(),
            error: None,
        }
    }

    pub fn succeeded(kind: AuditKind) -> AuditEvent {
        AuditEvent::new(kind, AuditStatus::Succeeded)
    }

    pub fn failed(kind: AuditKind, error: impl Into<String>) -> AuditEvent {
        AuditEvent {
            error: Some(error.into()),
            ..AuditEvent::new(kind, AuditStatus::Failed)
        }
    }

    pub fn actor(mut self, actor: Option<&str>) -> AuditEvent {
        self.actor = actor.map(str::to_owned);
        self
    }

    pub fn request(mut self, request_id: Option<&str>) -> AuditEvent {
        self.request_id = request_id.map(str::to_owned);
        self
    }

    pub fn task(mut self, id: TaskId) -> AuditEvent {
        self.task_id = Some(id);
        self
    }

    pub fn target(mut self, target: impl Into<String>) -> AuditEvent {
        self.target = Some(target.into());
        self
    }

    pub fn meta(mut self, key: &str, value: impl Into<Value>) -> AuditEvent {
        self.meta.insert(key.to_owned(), value.into());
        self
    }

    /// `meta` as stored and logged: the event's own, plus `actionType`,
    /// `taskId` and `target` as Backstage's scaffolder puts them there.
    pub fn full_meta(&self) -> Map<String, Value> {
        let mut meta = Map::new();
        if let Some(action) = self.kind.ids().1 {
            meta.insert("actionType".into(), Value::from(action));
        }
        if let Some(id) = self.task_id {
            meta.insert("taskId".into(), Value::from(id.to_string()));
        }
        if let Some(target) = &self.target {
            meta.insert("target".into(), Value::from(target.as_str()));
        }
        for (k, v) in &self.meta {
            meta.insert(k.clone(), v.clone());
        }
        meta
    }

    /// Writes the event as one JSON log line (target `audit`), shaped like
    /// Backstage's default auditor's: `isAuditEvent`, `eventId`,
    /// `severityLevel`, `actor`, `request`, `meta`, `status`, `error`.
    /// Called by the store once the event is committed.
    pub fn log(&self, recorded: &AuditRecord) {
        let line = serde_json::to_string(&recorded.wire()).unwrap_or_default();
        match self.status {
            AuditStatus::Succeeded if self.kind.severity() == AuditSeverity::Low => {
                tracing::debug!(target: "audit", audit = %line, "{}", recorded.message())
            }
            AuditStatus::Succeeded => tracing::info!(target: "audit", audit = %line, "{}", recorded.message()),
            AuditStatus::Failed => tracing::warn!(target: "audit", audit = %line, "{}", recorded.message()),
        }
    }
}

/// A stored audit event, as the endpoint and the CLI show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// The keyset: pass the last one seen as `after` for the next page.
    pub id: i64,
    /// Backstage's `eventId` (`task`, `template-parameter-schema`, …).
    pub event_id: String,
    /// `eventId:actionType` (`task:create`), the name filters use.
    pub event: String,
    pub severity_level: AuditSeverity,
    pub status: AuditStatus,
    /// `actorId` as Backstage's auditor writes it.
    #[schema(value_type = Object)]
    pub actor: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `{"id": <request id>}` of the HTTP request that caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub request: Option<Value>,
    #[schema(value_type = Object)]
    pub meta: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// ISO-8601 with milliseconds.
    pub created_at: String,
}

impl AuditRecord {
    /// The log line's message: `scaffolder.<eventId>` as Backstage's is
    /// `<pluginId>.<eventId>`.
    pub fn message(&self) -> String {
        format!("scaffolder.{}", self.event_id)
    }

    /// The log line's JSON.
    pub fn wire(&self) -> Value {
        let mut out = Map::new();
        out.insert("isAuditEvent".into(), Value::Bool(true));
        out.insert("plugin".into(), Value::from("scaffolder"));
        out.insert("eventId".into(), Value::from(self.event_id.as_str()));
        out.insert("severityLevel".into(), Value::from(self.severity_level.as_str()));
        out.insert("actor".into(), self.actor.clone());
        if let Some(request) = &self.request {
            out.insert("request".into(), request.clone());
        }
        out.insert("meta".into(), self.meta.clone());
        out.insert("status".into(), Value::from(self.status.as_str()));
        if let Some(error) = &self.error {
            out.insert("error".into(), Value::from(error.as_str()));
        }
        out.insert("auditId".into(), Value::from(self.id));
        out.insert("timestamp".into(), Value::from(self.created_at.as_str()));
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_unique_name_that_parses_back() {
        let mut names = std::collections::HashSet::new();
        for kind in AuditKind::ALL {
            assert!(names.insert(kind.name()), "{}", kind.name());
            assert_eq!(AuditKind::parse(&kind.name()), Some(kind));
            let (event, action) = kind.ids();
            assert_eq!(AuditKind::from_ids(event, action), Some(kind));
        }
        assert_eq!(AuditKind::TaskCreate.name(), "task:create");
        assert_eq!(AuditKind::ParameterSchemaRead.name(), "template-parameter-schema");
        assert_eq!(AuditKind::parse("task"), None);
    }

    #[test]
    fn meta_carries_backstage_s_action_type_and_the_task() {
        let id = TaskId::new();
        let event = AuditEvent::succeeded(AuditKind::TaskCancel).task(id).meta("x", 1);
        let meta = event.full_meta();
        assert_eq!(meta["actionType"], "cancel");
        assert_eq!(meta["taskId"], id.to_string());
        assert_eq!(meta["x"], 1);
    }
}
