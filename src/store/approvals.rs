//! Approval gates in the store: a running task parks at a gate (its lease
//! released, status still `processing`), and a decision re-opens it, each in
//! one transaction with its log lines and audit event.

use uuid::Uuid;

use super::audit::Committed;
use super::events::{insert_event, notify};
use super::tasks::WaitingTask;
use super::{Store, StoreError, TASKS_CHANNEL};
use crate::model::approval::ApprovalState;
use crate::model::audit::AuditEvent;
use crate::model::{NewEvent, TaskId};

impl Store {
    /// Parks a task `owner` runs at an approval gate: it keeps status
    /// `processing` but holds no lease and no worker, until a decision
    /// re-opens it or a worker claims it after `approval.deadline`. `false`:
    /// the lease was no longer ours (nothing written).
    pub async fn park_for_approval(
        &self,
        id: TaskId,
        owner: &str,
        approval: &ApprovalState,
        events: &[NewEvent],
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let state = serde_json::to_string(approval)
            .map_err(|e| StoreError::Corrupt(format!("approval state of task {id} cannot be written: {e}")))?;
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE tasks SET approval = $3::json, approval_deadline = $4, lease_owner = NULL, \
                 lease_expires_at = NULL, last_heartbeat_at = now() \
             WHERE id = $1 AND lease_owner = $2 AND status = 'processing'",
        )
        .bind(id.0)
        .bind(owner)
        .bind(state)
        .bind(approval.deadline)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        for event in events {
            insert_event(&mut tx, id, event).await?;
        }
        let mut audits = Committed::default();
        audits.add(&mut tx, Some(audit)).await?;
        tx.commit().await?;
        audits.log();
        Ok(true)
    }

    /// The task and its gate, when it waits for a decision now.
    pub async fn waiting_task(&self, id: TaskId) -> Result<Option<WaitingTask>, StoreError> {
        let row: Option<(Option<String>,)> = sqlx::query_as(
            "SELECT approval::text FROM tasks WHERE id = $1 AND status = 'processing' AND lease_owner IS NULL",
        )
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        let Some((Some(raw),)) = row else {
            return Ok(None);
        };
        let approval: ApprovalState = serde_json::from_str(&raw)
            .map_err(|e| StoreError::Corrupt(format!("task {id} has an unreadable approval state: {e}")))?;
        if approval.decision.is_some() {
            return Ok(None);
        }
        let Some(task) = self.get_task(id).await? else {
            return Ok(None);
        };
        Ok(Some(WaitingTask { task, approval }))
    }

    /// Records a decision on a waiting task and re-opens it for a worker,
    /// with its log lines and audit event, if it still waits undecided at
    /// the same step. `false`: someone decided first, or it stopped waiting.
    pub async fn decide_approval(
        &self,
        id: TaskId,
        decided: &ApprovalState,
        events: &[NewEvent],
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let state = serde_json::to_string(decided)
            .map_err(|e| StoreError::Corrupt(format!("approval state of task {id} cannot be written: {e}")))?;
        let mut tx = self.pool.begin().await?;
        let updated: Option<(Uuid,)> = sqlx::query_as(
            "UPDATE tasks SET approval = $2::json, approval_deadline = NULL, status = 'open' \
             WHERE id = $1 AND status = 'processing' AND lease_owner IS NULL AND approval IS NOT NULL \
               AND approval->'decision' IS NULL AND approval->'gate'->>'stepId' = $3 \
             RETURNING id",
        )
        .bind(id.0)
        .bind(state)
        .bind(&decided.gate.step_id)
        .fetch_optional(&mut *tx)
        .await?;
        if updated.is_none() {
            tx.rollback().await?;
            return Ok(false);
        }
        for event in events {
            insert_event(&mut tx, id, event).await?;
        }
        notify(&mut tx, TASKS_CHANNEL, &id.to_string()).await?;
        let mut audits = Committed::default();
        audits.add(&mut tx, Some(audit)).await?;
        tx.commit().await?;
        audits.log();
        Ok(true)
    }

    /// Records audit events of a run (a repository created, an overlay
    /// registered) while `owner` still holds the task's lease.
    pub async fn record_run_audit(&self, id: TaskId, owner: &str, audit: &AuditEvent) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let held: Option<(Uuid,)> = sqlx::query_as(
            "SELECT id FROM tasks WHERE id = $1 AND lease_owner = $2 AND status = 'processing' FOR SHARE",
        )
        .bind(id.0)
        .bind(owner)
        .fetch_optional(&mut *tx)
        .await?;
        if held.is_none() {
            tx.rollback().await?;
            return Ok(false);
        }
        let mut audits = Committed::default();
        audits.add(&mut tx, Some(audit)).await?;
        tx.commit().await?;
        audits.log();
        Ok(true)
    }
}
