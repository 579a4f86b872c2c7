use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::audit::Committed;
use super::events::{insert_event, notify};
use super::{Store, StoreError, CANCEL_CHANNEL, TASKS_CHANNEL};
use crate::model::approval::ApprovalState;
use crate::model::audit::AuditEvent;
use crate::model::{NewEvent, RecoverStrategy, RunError, Task, TaskId, TaskStatus};

pub(super) const TASK_COLUMNS: &str = "id, spec::text AS spec, status, created_at, created_by, last_heartbeat_at";

#[derive(sqlx::FromRow)]
pub(super) struct TaskRow {
    id: Uuid,
    spec: String,
    status: String,
    created_at: DateTime<Utc>,
    created_by: Option<String>,
    last_heartbeat_at: Option<DateTime<Utc>>,
}

impl TaskRow {
    pub(super) fn into_task(self) -> Result<Task, StoreError> {
        let status = TaskStatus::parse(&self.status)
            .ok_or_else(|| StoreError::Corrupt(format!("task {} has status {:?}", self.id, self.status)))?;
        let spec = serde_json::from_str(&self.spec)
            .map_err(|e| StoreError::Corrupt(format!("task {} has an unreadable spec: {e}", self.id)))?;
        Ok(Task {
            id: TaskId(self.id),
            spec,
            status,
            created_at: self.created_at,
            last_heartbeat_at: self.last_heartbeat_at,
            created_by: self.created_by,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ClaimRow {
    #[sqlx(flatten)]
    task: TaskRow,
    secrets: Option<String>,
    attempts: i32,
    previous: String,
    previous_owner: Option<String>,
    approval: Option<String>,
    events: i64,
    journaled: bool,
}

impl ClaimRow {
    /// The claimed task, and whether it resumes: it ran before and comes
    /// back other than from an approval gate (a gate continues where it
    /// waited: the decision is already in its log).
    fn into_claimed(self) -> Result<(ClaimedTask, bool), StoreError> {
        let took_over = self.previous == "processing" && self.previous_owner.is_some();
        let approval = parse_approval(self.task.id, self.approval)?;
        let from_gate = !took_over
            && approval
                .as_ref()
                .is_some_and(|a| a.decision.is_some() || self.previous == "processing");
        let resumed = !from_gate && (took_over || self.attempts > 1);
        let claimed = ClaimedTask {
            task: self.task.into_task()?,
            secrets: self.secrets,
            attempts: self.attempts,
            took_over,
            approval,
            events: u64::try_from(self.events).unwrap_or(0),
            journaled: self.journaled,
        };
        Ok((claimed, resumed))
    }
}

fn parse_approval(id: Uuid, raw: Option<String>) -> Result<Option<ApprovalState>, StoreError> {
    raw.map(|raw| {
        serde_json::from_str(&raw)
            .map_err(|e| StoreError::Corrupt(format!("task {id} has an unreadable approval state: {e}")))
    })
    .transpose()
}

/// Columns the task list can be ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    CreatedAt,
    CreatedBy,
    Status,
    Id,
    LastHeartbeatAt,
}

impl SortField {
    pub fn parse(raw: &str) -> Option<SortField> {
        Some(match raw {
            "created_at" | "createdAt" => SortField::CreatedAt,
            "created_by" | "createdBy" => SortField::CreatedBy,
            "status" => SortField::Status,
            "id" => SortField::Id,
            "last_heartbeat_at" | "lastHeartbeatAt" => SortField::LastHeartbeatAt,
            _ => return None,
        })
    }

    fn column(self) -> &'static str {
        match self {
            SortField::CreatedAt => "created_at",
            SortField::CreatedBy => "created_by",
            SortField::Status => "status",
            SortField::Id => "id",
            SortField::LastHeartbeatAt => "last_heartbeat_at",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub created_by: Vec<String>,
    pub status: Vec<TaskStatus>,
    /// `(field, descending)`; empty means newest first.
    pub order: Vec<(SortField, bool)>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// A task this process now holds the lease of.
#[derive(Debug, Clone)]
pub struct ClaimedTask {
    pub task: Task,
    /// As stored: sealed by `crate::secrets::Keyring`.
    pub secrets: Option<String>,
    pub attempts: i32,
    /// Taken over from a replica whose lease expired.
    pub took_over: bool,
    /// The approval gate the task waited at, with its decision once made
    /// (or its deadline passed).
    pub approval: Option<ApprovalState>,
    /// Events the task has (all attempts, the claim's own included).
    pub events: u64,
    /// Whether earlier attempts journaled steps (a fresh task has none:
    /// the journal need not be read).
    pub journaled: bool,
}

/// A task waiting at an approval gate, as a decision sees it.
#[derive(Debug, Clone)]
pub struct WaitingTask {
    pub task: Task,
    pub approval: ApprovalState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The task had not started; it is now cancelled.
    CancelledBeforeStart,
    /// The task is running; its worker has been asked to stop it.
    Requested,
    /// The task had already finished with this status; nothing changed.
    AlreadyFinished(TaskStatus),
    NotFound,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryOutcome {
    Retried,
    /// Only finished tasks can be retried.
    NotFinished(TaskStatus),
    NotFound,
}

fn push_filters(qb: &mut QueryBuilder<'_, Postgres>, query: &ListQuery) {
    qb.push(" WHERE true");
    if !query.created_by.is_empty() {
        qb.push(" AND created_by = ANY(")
            .push_bind(query.created_by.clone())
            .push(")");
    }
    if !query.status.is_empty() {
        let statuses: Vec<String> = query.status.iter().map(|s| s.as_str().to_owned()).collect();
        qb.push(" AND status = ANY(").push_bind(statuses).push(")");
    }
}

impl Store {
    /// Inserts a task under `id` (chosen by the caller: sealed secrets are
    /// bound to it).
    pub async fn create_task(
        &self,
        id: TaskId,
        spec: &Value,
        sealed_secrets: Option<&str>,
        created_by: Option<&str>,
        audit: Option<&AuditEvent>,
    ) -> Result<TaskId, StoreError> {
        self.create_task_with_answers(id, spec, sealed_secrets, created_by, None, audit)
            .await
    }

    /// [`Store::create_task`], recording in the same transaction what the
    /// task was created from (the template version and its answers), so a
    /// worker that claims the task at once finds them.
    pub async fn create_task_with_answers(
        &self,
        id: TaskId,
        spec: &Value,
        sealed_secrets: Option<&str>,
        created_by: Option<&str>,
        answers: Option<&super::updates::NewAnswers<'_>>,
        audit: Option<&AuditEvent>,
    ) -> Result<TaskId, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut audits = Committed::default();
        sqlx::query("INSERT INTO tasks (id, spec, secrets, created_by) VALUES ($1, $2::json, $3, $4)")
            .bind(id.0)
            .bind(spec.to_string())
            .bind(sealed_secrets)
            .bind(created_by)
            .execute(&mut *tx)
            .await?;
        if let Some(answers) = answers {
            super::updates::insert_answers(&mut tx, id, answers).await?;
        }
        notify(&mut tx, TASKS_CHANNEL, &id.to_string()).await?;
        audits.add(&mut tx, audit).await?;
        tx.commit().await?;
        audits.log();
        Ok(id)
    }

    pub async fn get_task(&self, id: TaskId) -> Result<Option<Task>, StoreError> {
        let row: Option<TaskRow> = sqlx::query_as(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.map(TaskRow::into_task).transpose()
    }

    /// One page of tasks and the number of tasks matching the filters.
    pub async fn list_tasks(&self, query: &ListQuery) -> Result<(Vec<Task>, i64), StoreError> {
        let mut qb = QueryBuilder::<Postgres>::new(format!("SELECT {TASK_COLUMNS} FROM tasks"));
        push_filters(&mut qb, query);
        qb.push(" ORDER BY ");
        if query.order.is_empty() {
            qb.push("created_at DESC");
        } else {
            for (i, (field, desc)) in query.order.iter().enumerate() {
                if i > 0 {
                    qb.push(", ");
                }
                qb.push(field.column()).push(if *desc { " DESC" } else { " ASC" });
            }
        }
        // A stable order for equal keys so that pages never overlap.
        qb.push(", id");
        if let Some(limit) = query.limit {
            qb.push(" LIMIT ").push_bind(limit);
        }
        if let Some(offset) = query.offset {
            qb.push(" OFFSET ").push_bind(offset);
        }
        let rows: Vec<TaskRow> = qb.build_query_as().fetch_all(&self.pool).await?;
        let tasks = rows
            .into_iter()
            .map(TaskRow::into_task)
            .collect::<Result<Vec<_>, _>>()?;

        let mut count = QueryBuilder::<Postgres>::new("SELECT count(*) FROM tasks");
        push_filters(&mut count, query);
        let (total,): (i64,) = count.build_query_as().fetch_one(&self.pool).await?;
        Ok((tasks, total))
    }

    /// Leases the next task to `owner`: first a running task whose lease
    /// expired (its worker died; taken over while it has attempts left, and
    /// only when `recover` is on), then the oldest open task. A task that ran
    /// before gets a `recovered` event; with the `startOver` strategy its step
    /// journal is cleared so it runs from the top.
    pub async fn claim_task(
        &self,
        owner: &str,
        lease: Duration,
        recover: bool,
        max_attempts: i32,
    ) -> Result<Option<ClaimedTask>, StoreError> {
        Ok(self
            .claim_tasks(owner, lease, recover, max_attempts, 1)
            .await?
            .into_iter()
            .next())
    }

    /// [`Store::claim_task`] for up to `limit` tasks: takeovers first, then
    /// open tasks oldest first, then gates whose timeout passed, each kind
    /// claimed with one statement for as many as there is room for (a burst
    /// of new tasks is claimed in one round trip, not one per task).
    pub async fn claim_tasks(
        &self,
        owner: &str,
        lease: Duration,
        recover: bool,
        max_attempts: i32,
        limit: usize,
    ) -> Result<Vec<ClaimedTask>, StoreError> {
        // Takeovers first (recovery on), then open tasks, then gates whose
        // timeout passed (the step runs again and fails); oldest first
        // within each; one statement for all of them.
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut rows: Vec<ClaimRow> = sqlx::query_as(
            "WITH next AS ( \
                 SELECT id, status AS previous, lease_owner AS previous_owner FROM tasks \
                 WHERE status = 'open' \
                    OR ($4 AND status = 'processing' AND lease_expires_at < now() AND attempts < $3) \
                    OR (status = 'processing' AND lease_owner IS NULL AND approval_deadline < now()) \
                 ORDER BY CASE WHEN status = 'open' THEN 1 WHEN lease_owner IS NULL THEN 2 ELSE 0 END, created_at \
                 LIMIT $5 FOR UPDATE SKIP LOCKED) \
             UPDATE tasks t SET status = 'processing', lease_owner = $1, \
                 lease_expires_at = now() + make_interval(secs => $2::double precision / 1000), \
                 last_heartbeat_at = now(), attempts = t.attempts + 1 \
             FROM next WHERE t.id = next.id \
             RETURNING t.id, t.spec::text AS spec, t.status, t.created_at, t.created_by, t.last_heartbeat_at, \
                 t.secrets, t.attempts, next.previous, next.previous_owner, t.approval::text AS approval, \
                 (SELECT count(*) FROM task_events e WHERE e.task_id = t.id) AS events, \
                 EXISTS (SELECT 1 FROM task_steps s WHERE s.task_id = t.id) AS journaled",
        )
        .bind(owner)
        .bind(lease_ms)
        .bind(max_attempts)
        .bind(recover)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.sort_by_key(|r| r.task.created_at);
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            claimed.push(self.after_claim(row).await?);
        }
        Ok(claimed)
    }

    /// What a claimed task needs before it runs again: a task that ran
    /// before gets its `recovered` event (and, starting over, loses its
    /// journal and saved workspace), in one transaction. Should this
    /// process die between the claim and this, the task's next claim
    /// writes them.
    async fn after_claim(&self, row: ClaimRow) -> Result<ClaimedTask, StoreError> {
        let (mut claimed, resumed) = row.into_claimed()?;
        if !resumed {
            return Ok(claimed);
        }
        let mut tx = self.pool.begin().await?;
        let task = &claimed.task;
        let start_over = task
            .spec
            .pointer("/EXPERIMENTAL_recovery/EXPERIMENTAL_strategy")
            .and_then(Value::as_str)
            == Some("startOver");
        if start_over {
            sqlx::query("DELETE FROM task_steps WHERE task_id = $1")
                .bind(task.id.0)
                .execute(&mut *tx)
                .await?;
            forget_workspace(&mut tx, task.id).await?;
        }
        let how = if start_over {
            "restarts from the first step"
        } else {
            "resumes from its first unfinished step"
        };
        let why = if claimed.took_over {
            "its previous worker stopped renewing its lease"
        } else {
            "its previous worker released it"
        };
        insert_event(
            &mut tx,
            task.id,
            &NewEvent::recovered(
                if start_over {
                    RecoverStrategy::StartOver
                } else {
                    RecoverStrategy::Resume
                },
                Some(format!(
                    "Task {} was recovered ({why}) and {how}, attempt {}",
                    task.id, claimed.attempts
                )),
            ),
        )
        .await?;
        tx.commit().await?;
        if start_over {
            claimed.journaled = false;
        }
        claimed.events += 1;
        Ok(claimed)
    }

    /// Gives a task back without finishing it (graceful shutdown): it is open
    /// again at once and the next claim resumes it from its journal.
    pub async fn release_task(&self, id: TaskId, owner: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let released = sqlx::query(
            "UPDATE tasks SET status = 'open', lease_owner = NULL, lease_expires_at = NULL \
             WHERE id = $1 AND lease_owner = $2 AND status = 'processing'",
        )
        .bind(id.0)
        .bind(owner)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        notify(&mut tx, TASKS_CHANNEL, &id.to_string()).await?;
        tx.commit().await?;
        Ok(released > 0)
    }

    /// Fails running tasks nobody will finish: lease expired and either
    /// recovery is off, the task used up its attempts, or the lease expired
    /// more than `stale_after` ago. Each gets a completion event saying why.
    pub async fn fail_abandoned_tasks(
        &self,
        recover: bool,
        max_attempts: i32,
        stale_after: Duration,
    ) -> Result<Vec<TaskId>, StoreError> {
        let stale_ms = i64::try_from(stale_after.as_millis()).unwrap_or(i64::MAX);
        let mut tx = self.pool.begin().await?;
        let rows: Vec<(Uuid, i32)> = sqlx::query_as(
            "UPDATE tasks SET status = 'failed', lease_owner = NULL, lease_expires_at = NULL, secrets = NULL \
             WHERE id IN ( \
                 SELECT id FROM tasks WHERE status = 'processing' AND lease_expires_at < now() \
                   AND (NOT $1 OR attempts >= $2 \
                        OR lease_expires_at < now() - make_interval(secs => $3::double precision / 1000)) \
                 FOR UPDATE SKIP LOCKED) \
             RETURNING id, attempts",
        )
        .bind(recover)
        .bind(max_attempts)
        .bind(stale_ms)
        .fetch_all(&mut *tx)
        .await?;
        let mut failed = Vec::with_capacity(rows.len());
        for (id, attempts) in rows {
            let id = TaskId(id);
            let reason = if !recover {
                "its worker stopped renewing its lease and recovery is disabled".to_owned()
            } else if attempts >= max_attempts {
                format!("its worker stopped renewing its lease after {attempts} attempts")
            } else {
                "its worker stopped renewing its lease and no worker took it over in time".to_owned()
            };
            insert_event(
                &mut tx,
                id,
                &NewEvent::completion(
                    TaskStatus::Failed,
                    Some(&RunError {
                        name: "Error".into(),
                        message: format!("Task {id} was abandoned: {reason}"),
                    }),
                    None,
                ),
            )
            .await?;
            failed.push(id);
        }
        tx.commit().await?;
        Ok(failed)
    }

    /// Renews the lease. `Ok(None)` means the lease is no longer ours (taken
    /// over, or the task was finished elsewhere); `Ok(Some(true))` means
    /// cancellation was requested.
    pub async fn heartbeat(&self, id: TaskId, owner: &str, lease: Duration) -> Result<Option<bool>, StoreError> {
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        let row: Option<(bool,)> = sqlx::query_as(
            "UPDATE tasks SET last_heartbeat_at = now(), \
                 lease_expires_at = now() + make_interval(secs => $3::double precision / 1000) \
             WHERE id = $1 AND lease_owner = $2 AND status = 'processing' \
             RETURNING cancel_requested",
        )
        .bind(id.0)
        .bind(owner)
        .bind(lease_ms)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(c,)| c))
    }

    /// Ends a run: writes the final events and the status in one transaction,
    /// releases the lease and wipes the secrets. Returns false when the lease
    /// was no longer ours (nothing is written then).
    pub async fn finish_task(
        &self,
        id: TaskId,
        owner: &str,
        status: TaskStatus,
        events: &[NewEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE tasks SET status = $3, lease_owner = NULL, lease_expires_at = NULL, secrets = NULL, \
                 cancel_requested = false, last_heartbeat_at = now() \
             WHERE id = $1 AND lease_owner = $2 AND status = 'processing'",
        )
        .bind(id.0)
        .bind(owner)
        .bind(status.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        // A completed task is never resumed: its saved workspace goes now.
        // Failed and cancelled tasks keep theirs for a retry, until
        // `worker.workspace_retention_hours` (see `purge_saved_workspaces`).
        if status == TaskStatus::Completed {
            forget_workspace(&mut tx, id).await?;
        }
        for event in events {
            insert_event(&mut tx, id, event).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    pub async fn cancel_task(&self, id: TaskId, audit: Option<&AuditEvent>) -> Result<CancelOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row: Option<(String, bool)> = sqlx::query_as(
            "SELECT status, (lease_owner IS NULL AND approval IS NOT NULL) AS waiting FROM tasks WHERE id = $1 FOR UPDATE",
        )
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((status, waiting)) = row else {
            return Ok(CancelOutcome::NotFound);
        };
        let status = TaskStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("task {id} has status {status:?}")))?;
        let outcome = match status {
            TaskStatus::Open => {
                sqlx::query("UPDATE tasks SET status = 'cancelled', secrets = NULL WHERE id = $1")
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await?;
                let message = format!("Task {id} was cancelled before it started.");
                insert_event(&mut tx, id, &NewEvent::cancelled(message)).await?;
                insert_event(&mut tx, id, &NewEvent::completion(TaskStatus::Cancelled, None, None)).await?;
                CancelOutcome::CancelledBeforeStart
            }
            // Nobody runs a task waiting for approval: it ends here.
            TaskStatus::Processing if waiting => {
                sqlx::query(
                    "UPDATE tasks SET status = 'cancelled', secrets = NULL, approval_deadline = NULL, \
                         last_heartbeat_at = now() WHERE id = $1",
                )
                .bind(id.0)
                .execute(&mut *tx)
                .await?;
                let message = format!("Task {id} was cancelled while it waited for approval.");
                insert_event(&mut tx, id, &NewEvent::cancelled(message)).await?;
                insert_event(&mut tx, id, &NewEvent::completion(TaskStatus::Cancelled, None, None)).await?;
                CancelOutcome::CancelledBeforeStart
            }
            TaskStatus::Processing => {
                sqlx::query("UPDATE tasks SET cancel_requested = true WHERE id = $1")
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await?;
                notify(&mut tx, CANCEL_CHANNEL, &id.to_string()).await?;
                CancelOutcome::Requested
            }
            finished => CancelOutcome::AlreadyFinished(finished),
        };
        let mut audits = Committed::default();
        if let Some(audit) = audit {
            let audit = match &outcome {
                CancelOutcome::AlreadyFinished(status) => audit.clone().meta("alreadyFinished", status.as_str()),
                _ => audit.clone(),
            };
            audits.add(&mut tx, Some(&audit)).await?;
        }
        tx.commit().await?;
        audits.log();
        Ok(outcome)
    }

    /// Re-opens a finished task: the previous run's `completion` and
    /// `cancelled` events are removed and a `recovered` event starts the new
    /// run, as Backstage does.
    pub async fn retry_task(
        &self,
        id: TaskId,
        sealed_secrets: Option<&str>,
        audit: Option<&AuditEvent>,
    ) -> Result<RetryOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row: Option<(String,)> = sqlx::query_as("SELECT status FROM tasks WHERE id = $1 FOR UPDATE")
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await?;
        let Some((status,)) = row else {
            return Ok(RetryOutcome::NotFound);
        };
        let status = TaskStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("task {id} has status {status:?}")))?;
        if !status.is_finished() {
            return Ok(RetryOutcome::NotFinished(status));
        }
        let spec: Option<(String,)> = sqlx::query_as(
            "SELECT spec #>> '{EXPERIMENTAL_recovery,EXPERIMENTAL_strategy}' FROM tasks \
             WHERE id = $1 AND spec #>> '{EXPERIMENTAL_recovery,EXPERIMENTAL_strategy}' IS NOT NULL",
        )
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await?;
        // Retry resumes from the first unfinished step, unless the template
        // asks to start over.
        if spec.is_some_and(|(strategy,)| strategy == "startOver") {
            sqlx::query("DELETE FROM task_steps WHERE task_id = $1")
                .bind(id.0)
                .execute(&mut *tx)
                .await?;
            forget_workspace(&mut tx, id).await?;
        }
        sqlx::query("DELETE FROM task_events WHERE task_id = $1 AND event_type IN ('completion', 'cancelled')")
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE tasks SET status = 'open', secrets = $2, cancel_requested = false, approval = NULL, \
                 approval_deadline = NULL, lease_owner = NULL, lease_expires_at = NULL, last_heartbeat_at = now(), \
                 attempts = 0 \
             WHERE id = $1",
        )
        .bind(id.0)
        .bind(sealed_secrets)
        .execute(&mut *tx)
        .await?;
        insert_event(
            &mut tx,
            id,
            // Backstage's body for a retry, byte for byte.
            &NewEvent::recovered(RecoverStrategy::None, None),
        )
        .await?;
        notify(&mut tx, TASKS_CHANNEL, &id.to_string()).await?;
        let mut audits = Committed::default();
        audits.add(&mut tx, audit).await?;
        tx.commit().await?;
        audits.log();
        Ok(RetryOutcome::Retried)
    }
}

impl Store {
    /// Every task that still holds secrets, with the stored (sealed) text.
    pub async fn stored_secrets(&self) -> Result<Vec<(TaskId, String)>, StoreError> {
        let rows: Vec<(Uuid, String)> =
            sqlx::query_as("SELECT id, secrets FROM tasks WHERE secrets IS NOT NULL ORDER BY created_at")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(id, s)| (TaskId(id), s)).collect())
    }

    /// Swaps a task's stored secrets if they are still `old` (a task that
    /// ended or was retried meanwhile keeps what it has).
    pub async fn replace_secrets(&self, id: TaskId, old: &str, new: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE tasks SET secrets = $3 WHERE id = $1 AND secrets = $2")
            .bind(id.0)
            .bind(old)
            .bind(new)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(done > 0)
    }
}

/// Deletes a task's saved workspace (manifest and blobs) inside `tx`.
async fn forget_workspace(tx: &mut sqlx::Transaction<'_, Postgres>, id: TaskId) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM task_workspaces WHERE task_id = $1")
        .bind(id.0)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM task_workspace_blobs WHERE task_id = $1")
        .bind(id.0)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
