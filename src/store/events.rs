use chrono::{DateTime, Utc};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::{Store, StoreError, EVENTS_CHANNEL};
use crate::model::{EventType, NewEvent, TaskEvent, TaskId};

#[derive(sqlx::FromRow)]
struct EventRow {
    id: i64,
    task_id: Uuid,
    event_type: String,
    body: String,
    created_at: DateTime<Utc>,
    recoverable: bool,
}

impl EventRow {
    fn into_event(self) -> Result<TaskEvent, StoreError> {
        let event_type = EventType::parse(&self.event_type)
            .ok_or_else(|| StoreError::Corrupt(format!("event {} has type {:?}", self.id, self.event_type)))?;
        let body = serde_json::from_str(&self.body)
            .map_err(|e| StoreError::Corrupt(format!("event {} has an unreadable body: {e}", self.id)))?;
        Ok(TaskEvent {
            id: self.id,
            is_task_recoverable: self.recoverable,
            task_id: TaskId(self.task_id),
            body,
            event_type,
            created_at: self.created_at,
        })
    }
}

/// A task is recoverable when its template asks to start over after a crash.
pub(super) const RECOVERABLE_SQL: &str =
    "coalesce(t.spec #>> '{EXPERIMENTAL_recovery,EXPERIMENTAL_strategy}' = 'startOver', false)";

impl Store {
    /// Appends one event and wakes everyone watching the task.
    pub async fn append_event(&self, task_id: TaskId, event: &NewEvent) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let id = insert_event(&mut tx, task_id, event).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Appends events of a running task, in their order, only while `owner`
    /// holds its lease, so a replica that lost the task cannot write into its
    /// log. `Ok(None)` when the lease is gone (nothing landed).
    ///
    /// One statement (insert, one notification) in its own transaction,
    /// committed without waiting for the WAL flush (`synchronous_commit =
    /// off` for this transaction only): a running task writes dozens of log
    /// events, and waiting for a disk flush per line dominated the cost of a
    /// short task. Nothing is lost but log lines of the last fraction of a
    /// second before a PostgreSQL crash: every later synchronous commit (step
    /// journal, lease, final status) flushes the WAL up to itself first, so
    /// the journal and the task's state never get ahead of the log they follow.
    pub async fn append_events_as(
        &self,
        task_id: TaskId,
        owner: &str,
        events: &[NewEvent],
    ) -> Result<Option<u64>, StoreError> {
        if events.is_empty() {
            return Ok(Some(0));
        }
        let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        let bodies: Vec<String> = events.iter().map(|e| e.body.to_string()).collect();
        let row: Option<(i64,)> = sqlx::query_as(
            "WITH ins AS ( \
                 INSERT INTO task_events (task_id, event_type, body) \
                 SELECT $1, e.event_type, e.body::json \
                 FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS e(event_type, body, ord) \
                 WHERE EXISTS ( \
                     SELECT 1 FROM tasks WHERE id = $1 AND lease_owner = $4 AND status = 'processing') \
                 ORDER BY e.ord \
                 RETURNING id) \
             SELECT c.n FROM (SELECT count(*) AS n FROM ins) c, \
                 LATERAL (SELECT pg_notify($5, $1::text), set_config('synchronous_commit', 'off', true)) AS side \
             WHERE c.n > 0",
        )
        .bind(task_id.0)
        .bind(&types)
        .bind(&bodies)
        .bind(owner)
        .bind(EVENTS_CHANNEL)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(n,)| u64::try_from(n).unwrap_or(0)))
    }

    /// Events of a task with `id > after`; the `completion` event is always
    /// included so that a watcher of a finished task never waits (Backstage's rule).
    pub async fn list_events(&self, task_id: TaskId, after: Option<i64>) -> Result<Vec<TaskEvent>, StoreError> {
        let sql = format!(
            "SELECT e.id, e.task_id, e.event_type, e.body::text AS body, e.created_at, {RECOVERABLE_SQL} AS recoverable \
             FROM task_events e JOIN tasks t ON t.id = e.task_id \
             WHERE e.task_id = $1 AND ($2::bigint IS NULL OR e.id > $2 OR e.event_type = 'completion') \
             ORDER BY e.id"
        );
        let rows: Vec<EventRow> = sqlx::query_as(&sql)
            .bind(task_id.0)
            .bind(after)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(EventRow::into_event).collect()
    }
}

pub(super) async fn insert_event(
    tx: &mut Transaction<'_, Postgres>,
    task_id: TaskId,
    event: &NewEvent,
) -> Result<i64, StoreError> {
    let (id,): (i64,) =
        sqlx::query_as("INSERT INTO task_events (task_id, event_type, body) VALUES ($1, $2, $3::json) RETURNING id")
            .bind(task_id.0)
            .bind(event.event_type.as_str())
            .bind(event.body.to_string())
            .fetch_one(&mut **tx)
            .await?;
    notify(tx, EVENTS_CHANNEL, &task_id.to_string()).await?;
    Ok(id)
}

/// Delivered when the transaction commits.
pub(super) async fn notify(tx: &mut Transaction<'_, Postgres>, channel: &str, payload: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(payload)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
