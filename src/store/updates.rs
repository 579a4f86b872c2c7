//! Template versions, the answers of each task, and fleet update runs.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{Store, StoreError};
use crate::model::{TaskId, UpdateRunStatus, UpdateStatus};

/// What a task was created from, written with the task.
#[derive(Debug, Clone, Copy)]
pub struct NewAnswers<'a> {
    pub template_ref: &'a str,
    pub version: &'a str,
    /// The version's archive: stored once per digest.
    pub archive: &'a [u8],
    pub repo_url: Option<&'a str>,
    /// The answers file's text.
    pub answers: &'a str,
}

/// A fleet update run as stored.
#[derive(Debug, Clone)]
pub struct UpdateRunRecord {
    pub id: Uuid,
    pub template_ref: String,
    pub version: String,
    pub options: Value,
    pub status: UpdateRunStatus,
    pub cancel_requested: bool,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// One repository of a run as stored.
#[derive(Debug, Clone)]
pub struct UpdateItemRecord {
    pub repo_url: String,
    pub status: UpdateStatus,
    pub from_version: Option<String>,
    pub proposal: Option<String>,
    pub files: Value,
    pub conflicts: Value,
    pub diff: Option<String>,
    pub body: Option<String>,
    pub error: Option<String>,
}

#[derive(sqlx::FromRow)]
struct RunRow {
    id: Uuid,
    template_ref: String,
    version: String,
    options: sqlx::types::Json<Value>,
    status: String,
    cancel_requested: bool,
    created_by: Option<String>,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    repo_url: String,
    status: String,
    from_version: Option<String>,
    proposal: Option<String>,
    files: sqlx::types::Json<Value>,
    conflicts: sqlx::types::Json<Value>,
    diff: Option<String>,
    body: Option<String>,
    error: Option<String>,
}

impl TryFrom<RunRow> for UpdateRunRecord {
    type Error = StoreError;
    fn try_from(row: RunRow) -> Result<UpdateRunRecord, StoreError> {
        let status = UpdateRunStatus::parse(&row.status)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown update run status {:?}", row.status)))?;
        Ok(UpdateRunRecord {
            id: row.id,
            template_ref: row.template_ref,
            version: row.version,
            options: row.options.0,
            status,
            cancel_requested: row.cancel_requested,
            created_by: row.created_by,
            created_at: row.created_at,
            finished_at: row.finished_at,
        })
    }
}

impl TryFrom<ItemRow> for UpdateItemRecord {
    type Error = StoreError;
    fn try_from(row: ItemRow) -> Result<UpdateItemRecord, StoreError> {
        let status = UpdateStatus::parse(&row.status)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown update status {:?}", row.status)))?;
        Ok(UpdateItemRecord {
            repo_url: row.repo_url,
            status,
            from_version: row.from_version,
            proposal: row.proposal,
            files: row.files.0,
            conflicts: row.conflicts.0,
            diff: row.diff,
            body: row.body,
            error: row.error,
        })
    }
}

const RUN_COLUMNS: &str =
    "id, template_ref, version, options, status, cancel_requested, created_by, created_at, finished_at";
const ITEM_COLUMNS: &str = "repo_url, status, from_version, proposal, files, conflicts, diff, body, error";

impl Store {
    /// Stores a template version unless its digest is already there.
    pub async fn ensure_template_version(
        &self,
        digest: &str,
        template_ref: &str,
        archive: &[u8],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        ensure_version(&mut tx, digest, template_ref, archive).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The archive of a stored template version.
    pub async fn template_version(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row: Option<(Vec<u8>,)> = sqlx::query_as("SELECT archive FROM template_versions WHERE digest = $1")
            .bind(digest)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(archive,)| archive))
    }

    /// The answers file of a task, if it was created from a versioned template.
    pub async fn task_answers(&self, id: TaskId) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT answers FROM task_answers WHERE task_id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(answers,)| answers))
    }

    /// The repositories completed tasks generated from `template_ref`, in the
    /// order they were first generated.
    pub async fn generated_repositories(&self, template_ref: &str) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT a.repo_url FROM task_answers a JOIN tasks t ON t.id = a.task_id \
             WHERE a.template_ref = $1 AND a.repo_url IS NOT NULL AND t.status = 'completed' \
             GROUP BY a.repo_url ORDER BY min(t.created_at), a.repo_url",
        )
        .bind(template_ref)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(r,)| r).collect())
    }

    /// A new run with one pending item per repository, in one transaction.
    pub async fn create_update_run(
        &self,
        id: Uuid,
        template_ref: &str,
        version: &str,
        options: &Value,
        created_by: Option<&str>,
        repositories: &[String],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO update_runs (id, template_ref, version, options, status, created_by) \
             VALUES ($1, $2, $3, $4::json, $5, $6)",
        )
        .bind(id)
        .bind(template_ref)
        .bind(version)
        .bind(options.to_string())
        .bind(UpdateRunStatus::Running.as_str())
        .bind(created_by)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO update_items (run_id, repo_url, status, position) \
             SELECT $1, r.url, $3, r.n FROM unnest($2::text[]) WITH ORDINALITY AS r(url, n) \
             ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(repositories)
        .bind(UpdateStatus::Pending.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn update_run(&self, id: Uuid) -> Result<Option<UpdateRunRecord>, StoreError> {
        let row: Option<RunRow> = sqlx::query_as(&format!("SELECT {RUN_COLUMNS} FROM update_runs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(UpdateRunRecord::try_from).transpose()
    }

    /// The items of a run, in the order their repositories were generated.
    pub async fn update_items(&self, id: Uuid) -> Result<Vec<UpdateItemRecord>, StoreError> {
        let rows: Vec<ItemRow> = sqlx::query_as(&format!(
            "SELECT {ITEM_COLUMNS} FROM update_items WHERE run_id = $1 ORDER BY position"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(UpdateItemRecord::try_from).collect()
    }

    /// Writes where one repository of a run stands.
    pub async fn record_update_item(&self, run: Uuid, item: &UpdateItemRecord) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE update_items SET status = $3, from_version = $4, proposal = $5, files = $6::json, \
             conflicts = $7::json, diff = $8, body = $9, error = $10, updated_at = now() \
             WHERE run_id = $1 AND repo_url = $2",
        )
        .bind(run)
        .bind(&item.repo_url)
        .bind(item.status.as_str())
        .bind(&item.from_version)
        .bind(&item.proposal)
        .bind(item.files.to_string())
        .bind(item.conflicts.to_string())
        .bind(&item.diff)
        .bind(&item.body)
        .bind(&item.error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Ends a run: `cancelled` when a cancel was asked for, else `completed`.
    /// Items still pending (never started) are marked cancelled.
    pub async fn finish_update_run(&self, id: Uuid) -> Result<UpdateRunStatus, StoreError> {
        let mut tx = self.pool.begin().await?;
        let (cancel,): (bool,) = sqlx::query_as("SELECT cancel_requested FROM update_runs WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let status = if cancel {
            UpdateRunStatus::Cancelled
        } else {
            UpdateRunStatus::Completed
        };
        sqlx::query("UPDATE update_items SET status = $2, updated_at = now() WHERE run_id = $1 AND status IN ($3, $4)")
            .bind(id)
            .bind(UpdateStatus::Cancelled.as_str())
            .bind(UpdateStatus::Pending.as_str())
            .bind(UpdateStatus::Running.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE update_runs SET status = $2, finished_at = now() WHERE id = $1")
            .bind(id)
            .bind(status.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(status)
    }

    /// Asks a running run to stop; `false` when there is no such run or it
    /// already ended.
    pub async fn cancel_update_run(&self, id: Uuid) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE update_runs SET cancel_requested = true WHERE id = $1 AND status = $2")
            .bind(id)
            .bind(UpdateRunStatus::Running.as_str())
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(done == 1)
    }

    /// Whether a cancel was asked for.
    pub async fn update_cancel_requested(&self, id: Uuid) -> Result<bool, StoreError> {
        let row: Option<(bool,)> = sqlx::query_as("SELECT cancel_requested FROM update_runs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map_or(true, |(c,)| c))
    }

    /// Starts an ended run again: the items that did not finish for good
    /// (failed, cancelled) become pending. Returns them; `None` when the run
    /// does not exist or is still running.
    pub async fn retry_update_run(&self, id: Uuid) -> Result<Option<Vec<String>>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let started = sqlx::query(
            "UPDATE update_runs SET status = $2, cancel_requested = false, finished_at = NULL \
             WHERE id = $1 AND status <> $2",
        )
        .bind(id)
        .bind(UpdateRunStatus::Running.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if started == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let rows: Vec<(String,)> = sqlx::query_as(
            "UPDATE update_items SET status = $2, error = NULL, updated_at = now() \
             WHERE run_id = $1 AND status IN ($3, $4) RETURNING repo_url",
        )
        .bind(id)
        .bind(UpdateStatus::Pending.as_str())
        .bind(UpdateStatus::Failed.as_str())
        .bind(UpdateStatus::Cancelled.as_str())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(rows.into_iter().map(|(r,)| r).collect()))
    }
}

/// Inserts a version unless its digest exists (the archive is sent only then).
pub(super) async fn ensure_version(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    digest: &str,
    template_ref: &str,
    archive: &[u8],
) -> Result<(), StoreError> {
    let known: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM template_versions WHERE digest = $1")
        .bind(digest)
        .fetch_optional(&mut **tx)
        .await?;
    if known.is_none() {
        sqlx::query(
            "INSERT INTO template_versions (digest, template_ref, archive) VALUES ($1, $2, $3) \
             ON CONFLICT (digest) DO NOTHING",
        )
        .bind(digest)
        .bind(template_ref)
        .bind(archive)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Records what a task was created from, in the task's transaction.
pub(super) async fn insert_answers(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    id: TaskId,
    answers: &NewAnswers<'_>,
) -> Result<(), StoreError> {
    ensure_version(tx, answers.version, answers.template_ref, answers.archive).await?;
    sqlx::query(
        "INSERT INTO task_answers (task_id, template_ref, version, repo_url, answers) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id.0)
    .bind(answers.template_ref)
    .bind(answers.version)
    .bind(answers.repo_url)
    .bind(answers.answers)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
