//! The audit trail (`audit_events`): inserted inside the transaction of the
//! change it records, logged once that transaction commits, read newest
//! first with keyset paging.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use sqlx::{Postgres, QueryBuilder, Transaction};
use uuid::Uuid;

use super::{Store, StoreError};
use crate::model::audit::{AuditEvent, AuditKind, AuditRecord, AuditSeverity, AuditStatus};
use crate::model::TaskId;

/// Filters of the audit list; all optional, combined with AND.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub kinds: Vec<AuditKind>,
    pub task_id: Option<TaskId>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Keyset: only events older than this id (the last id of the previous page).
    pub before: Option<i64>,
    pub limit: i64,
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: i64,
    event_id: String,
    action_type: Option<String>,
    severity: String,
    status: String,
    actor: Option<String>,
    task_id: Option<Uuid>,
    target: Option<String>,
    request_id: Option<String>,
    meta: String,
    error: Option<String>,
    created_at: DateTime<Utc>,
}

impl AuditRow {
    fn into_record(self) -> Result<AuditRecord, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("audit event {} has {what}", self.id));
        let severity_level = AuditSeverity::parse(&self.severity).ok_or_else(|| corrupt("an unknown severity"))?;
        let status = AuditStatus::parse(&self.status).ok_or_else(|| corrupt("an unknown status"))?;
        let meta: Value = serde_json::from_str(&self.meta).map_err(|_| corrupt("unreadable meta"))?;
        let event = match &self.action_type {
            Some(action) => format!("{}:{action}", self.event_id),
            None => self.event_id.clone(),
        };
        Ok(AuditRecord {
            id: self.id,
            event_id: self.event_id,
            event,
            severity_level,
            status,
            actor: json!({ "actorId": self.actor }),
            task_id: self.task_id.map(|id| id.to_string()),
            target: self.target,
            request: self.request_id.map(|id| json!({ "id": id })),
            meta,
            error: self.error,
            created_at: self.created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        })
    }
}

const AUDIT_COLUMNS: &str = "id, event_id, action_type, severity, status, actor, task_id, target, request_id, \
                             meta::text AS meta, error, created_at";

/// The insert of one event, with its values bound (`sql`: one of the two
/// statements below).
fn audit_insert<'q>(
    sql: &'q str,
    event: &AuditEvent,
) -> sqlx::query::QueryAs<'q, Postgres, AuditRow, sqlx::postgres::PgArguments> {
    let (event_id, action_type) = event.kind.ids();
    // PostgreSQL text holds no NUL; a refused request may carry one (a task
    // id of `%00`): it is recorded as U+FFFD rather than lost.
    let clean = |v: Option<&str>| v.map(|v| v.replace('\0', "\u{FFFD}"));
    let meta = Value::Object(event.full_meta())
        .to_string()
        .replace("\\u0000", "\\ufffd");
    sqlx::query_as(sql)
        .bind(event_id)
        .bind(action_type)
        .bind(event.kind.severity().as_str())
        .bind(event.status.as_str())
        .bind(clean(event.actor.as_deref()))
        .bind(event.task_id.map(|id| id.0))
        .bind(clean(event.target.as_deref()))
        .bind(clean(event.request_id.as_deref()))
        .bind(meta)
        .bind(clean(event.error.as_deref()))
}

const AUDIT_VALUES: &str = "INSERT INTO audit_events (event_id, action_type, severity, status, actor, task_id, \
                            target, request_id, meta, error) \
                            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::json, $10)";

/// In the transaction of the change it records.
static INSERT_IN_TX: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("{AUDIT_VALUES} RETURNING {AUDIT_COLUMNS}"));

/// On its own: one statement, committed without waiting for the WAL flush
/// (the event records a read or a refusal; nothing else depends on it).
static INSERT_ALONE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH ins AS ({AUDIT_VALUES} RETURNING {AUDIT_COLUMNS}) \
         SELECT ins.* FROM ins, LATERAL (SELECT set_config('synchronous_commit', 'off', true)) AS side"
    )
});

/// Inserts `event` in `tx`; the caller logs the returned record after commit
/// (see [`Store::record_audit`]).
pub(super) async fn insert_audit(
    tx: &mut Transaction<'_, Postgres>,
    event: &AuditEvent,
) -> Result<AuditRecord, StoreError> {
    let row = audit_insert(&INSERT_IN_TX, event).fetch_one(&mut **tx).await?;
    row.into_record()
}

/// Audit events written in a transaction, logged once it committed.
#[derive(Default)]
pub(super) struct Committed(Vec<(AuditEvent, AuditRecord)>);

impl Committed {
    pub(super) async fn add(
        &mut self,
        tx: &mut Transaction<'_, Postgres>,
        event: Option<&AuditEvent>,
    ) -> Result<(), StoreError> {
        if let Some(event) = event {
            let record = insert_audit(tx, event).await?;
            self.0.push((event.clone(), record));
        }
        Ok(())
    }

    pub(super) fn log(self) {
        for (event, record) in self.0 {
            event.log(&record);
        }
    }
}

impl Store {
    /// Records an event on its own (reads, refusals, dry-runs: nothing else
    /// changed). One round trip, committed without waiting for the WAL flush:
    /// such an event is on the path of every read and dry-run, and a flush
    /// per request cost more than the request. A PostgreSQL crash can lose
    /// the last fraction of a second of such events, never an event of a
    /// change (those commit with the change); the auditor log line is
    /// written either way.
    pub async fn record_audit(&self, event: &AuditEvent) -> Result<AuditRecord, StoreError> {
        let record = audit_insert(&INSERT_ALONE, event)
            .fetch_one(&self.pool)
            .await?
            .into_record()?;
        event.log(&record);
        Ok(record)
    }

    /// One page of audit events, newest first.
    pub async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let mut qb = QueryBuilder::<Postgres>::new(format!("SELECT {AUDIT_COLUMNS} FROM audit_events WHERE true"));
        if let Some(actor) = &query.actor {
            qb.push(" AND actor = ").push_bind(actor.clone());
        }
        if !query.kinds.is_empty() {
            qb.push(" AND (");
            for (i, kind) in query.kinds.iter().enumerate() {
                if i > 0 {
                    qb.push(" OR ");
                }
                let (event_id, action_type) = kind.ids();
                qb.push("(event_id = ").push_bind(event_id);
                match action_type {
                    Some(action) => qb.push(" AND action_type = ").push_bind(action),
                    None => qb.push(" AND action_type IS NULL"),
                };
                qb.push(")");
            }
            qb.push(")");
        }
        if let Some(task) = query.task_id {
            qb.push(" AND task_id = ").push_bind(task.0);
        }
        if let Some(since) = query.since {
            qb.push(" AND created_at >= ").push_bind(since);
        }
        if let Some(until) = query.until {
            qb.push(" AND created_at < ").push_bind(until);
        }
        if let Some(before) = query.before {
            qb.push(" AND id < ").push_bind(before);
        }
        qb.push(" ORDER BY id DESC LIMIT ").push_bind(query.limit);
        let rows: Vec<AuditRow> = qb.build_query_as().fetch_all(&self.pool).await?;
        rows.into_iter().map(AuditRow::into_record).collect()
    }
}
