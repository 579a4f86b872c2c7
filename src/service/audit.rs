//! The audit trail as the API uses it: events stamped with the caller and
//! its request, and the admin-only listing.

use chrono::{DateTime, Utc};

use super::ServiceError;
use crate::auth::Caller;
use crate::model::audit::{AuditEvent, AuditKind, AuditRecord};
use crate::model::TaskId;
use crate::store::{AuditQuery, Store};

/// The largest page of the audit listing.
pub const MAX_AUDIT_PAGE: i64 = 500;

/// Filters of `GET /v2/audit` and `scaffolder audit`.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    /// `eventId:actionType` names (`task:create`).
    pub events: Vec<String>,
    pub task_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub before: Option<i64>,
    pub limit: Option<i64>,
}

/// One page, newest first; `next` is the `before` of the next page.
#[derive(Debug, Clone)]
pub struct AuditPage {
    pub events: Vec<AuditRecord>,
    pub next: Option<i64>,
}

/// An event of `kind` by `caller` in its request.
pub fn event_of(caller: &Caller, kind: AuditKind) -> AuditEvent {
    AuditEvent::succeeded(kind)
        .actor(caller.subject())
        .request(caller.request_id.as_deref())
}

/// The same event, failed with `error`.
pub fn failed_of(caller: &Caller, kind: AuditKind, error: &ServiceError) -> AuditEvent {
    let mut event = AuditEvent::failed(kind, error.to_string())
        .actor(caller.subject())
        .request(caller.request_id.as_deref());
    if let ServiceError::Forbidden(_) = error {
        event = event.meta("denied", true);
    }
    event
}

#[derive(Clone)]
pub struct AuditTrail {
    store: Store,
}

impl AuditTrail {
    pub fn new(store: Store) -> AuditTrail {
        AuditTrail { store }
    }

    /// Records an event that changed nothing else (a read, a refusal).
    pub async fn record(&self, event: &AuditEvent) -> Result<(), ServiceError> {
        self.store.record_audit(event).await?;
        Ok(())
    }

    /// Records the outcome of an operation that changed nothing in the
    /// database, and hands the result back. A refused operation is also a
    /// `permission:deny` event.
    pub async fn outcome<T>(
        &self,
        caller: &Caller,
        kind: AuditKind,
        decorate: impl FnOnce(AuditEvent) -> AuditEvent,
        result: Result<T, ServiceError>,
    ) -> Result<T, ServiceError> {
        let event = match &result {
            Ok(_) => event_of(caller, kind),
            Err(e) => failed_of(caller, kind, e),
        };
        self.record(&decorate(event)).await?;
        if let Err(e @ ServiceError::Forbidden(_)) = &result {
            let denied = failed_of(caller, AuditKind::PermissionDenied, e).meta("operation", kind.name());
            self.record(&denied).await?;
        }
        result
    }

    /// The audit listing: administrators only (configured admins, `access:
    /// all` tokens, anonymous callers where anonymous access is on).
    pub async fn list(&self, caller: &Caller, filter: &AuditFilter) -> Result<AuditPage, ServiceError> {
        let result = self.list_unrecorded(caller, filter).await;
        let count = result.as_ref().map(|p| p.events.len()).unwrap_or(0);
        self.outcome(caller, AuditKind::AuditRead, |e| e.meta("count", count), result)
            .await
    }

    async fn list_unrecorded(&self, caller: &Caller, filter: &AuditFilter) -> Result<AuditPage, ServiceError> {
        if !caller.sees_all {
            return Err(ServiceError::Forbidden(format!(
                "The audit trail is readable by administrators only (auth.admins or a token with access: all); {} is not one",
                caller.subject().unwrap_or("this caller")
            )));
        }
        let limit = filter.limit.unwrap_or(100);
        if !(1..=MAX_AUDIT_PAGE).contains(&limit) {
            return Err(ServiceError::Input(format!(
                "request/query/limit must be between 1 and {MAX_AUDIT_PAGE}"
            )));
        }
        let mut kinds = Vec::new();
        for name in &filter.events {
            kinds.push(AuditKind::parse(name).ok_or_else(|| {
                let known: Vec<String> = AuditKind::ALL.iter().map(|k| k.name()).collect();
                ServiceError::Input(format!(
                    "request/query/event must be one of {}; got '{name}'",
                    known.join(", ")
                ))
            })?);
        }
        let task_id =
            match &filter.task_id {
                None => None,
                Some(raw) => Some(TaskId::parse(raw).ok_or_else(|| {
                    ServiceError::Input(format!("request/query/taskId must be a task id, got '{raw}'"))
                })?),
            };
        let query = AuditQuery {
            actor: filter.actor.clone(),
            kinds,
            task_id,
            since: filter.since,
            until: filter.until,
            before: filter.before,
            limit,
        };
        let events = self.store.list_audit(&query).await?;
        let next = (events.len() as i64 == limit)
            .then(|| events.last().map(|e| e.id))
            .flatten();
        Ok(AuditPage { events, next })
    }
}
