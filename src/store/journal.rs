use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use uuid::Uuid;

use super::{Store, StoreError};
use crate::model::TaskId;

/// A saved workspace manifest, as written by [`Store::record_step`].
#[derive(Debug, Clone)]
pub struct SavedManifest {
    /// Sealed manifest bytes (the engine knows the format).
    pub manifest: Vec<u8>,
    pub bytes: i64,
    pub files: i32,
}

/// The workspace that goes with a journal entry.
#[derive(Debug, Clone, Copy)]
pub struct WorkspaceRecord<'a> {
    pub manifest: &'a [u8],
    pub bytes: i64,
    pub files: i32,
}

/// The lease check every write of a running task carries.
const LEASE_HELD: &str = "EXISTS (SELECT 1 FROM tasks WHERE id = $1 AND lease_owner = $2 AND status = 'processing')";

impl Store {
    /// Records a finished step's outputs, and with them the workspace the
    /// step left, in one transaction, if `owner` still holds the lease (a
    /// replica that lost its lease must not write). The journal and the
    /// workspace never disagree: both land or neither does.
    pub async fn record_step(
        &self,
        id: TaskId,
        owner: &str,
        key: &str,
        output: &Value,
        workspace: Option<WorkspaceRecord<'_>>,
    ) -> Result<bool, StoreError> {
        // One statement (its own transaction): the entry, and the manifest
        // only when the entry landed.
        let (manifest, bytes, files) = match workspace {
            Some(w) => (Some(w.manifest), Some(w.bytes), Some(w.files)),
            None => (None, None, None),
        };
        let (written,): (i64,) = sqlx::query_as(&format!(
            "WITH step AS ( \
                 INSERT INTO task_steps (task_id, step_key, output) \
                 SELECT $1, $3, $4::json WHERE {LEASE_HELD} \
                 ON CONFLICT (task_id, step_key) DO UPDATE SET output = EXCLUDED.output, finished_at = now() \
                 RETURNING 1), \
             ws AS ( \
                 INSERT INTO task_workspaces (task_id, manifest, bytes, files) \
                 SELECT $1, $5, $6, $7 WHERE $5::bytea IS NOT NULL AND EXISTS (SELECT 1 FROM step) \
                 ON CONFLICT (task_id) DO UPDATE SET manifest = EXCLUDED.manifest, bytes = EXCLUDED.bytes, \
                     files = EXCLUDED.files, saved_at = now()) \
             SELECT count(*) FROM step"
        ))
        .bind(id.0)
        .bind(owner)
        .bind(key)
        .bind(output.to_string())
        .bind(manifest)
        .bind(bytes)
        .bind(files)
        .fetch_one(&self.pool)
        .await?;
        Ok(written > 0)
    }

    /// Outputs of the steps a previous attempt finished.
    pub async fn step_journal(&self, id: TaskId) -> Result<HashMap<String, Value>, StoreError> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT step_key, output::text FROM task_steps WHERE task_id = $1")
                .bind(id.0)
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(key, output)| {
                serde_json::from_str(&output)
                    .map(|v| (key.clone(), v))
                    .map_err(|e| StoreError::Corrupt(format!("journal entry {key} of task {id}: {e}")))
            })
            .collect()
    }

    /// The workspace manifest saved with the latest journal entry.
    pub async fn workspace_manifest(&self, id: TaskId) -> Result<Option<SavedManifest>, StoreError> {
        let row: Option<(Vec<u8>, i64, i32)> =
            sqlx::query_as("SELECT manifest, bytes, files FROM task_workspaces WHERE task_id = $1")
                .bind(id.0)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(manifest, bytes, files)| SavedManifest { manifest, bytes, files }))
    }

    /// Stores sealed file contents under their keys, if `owner` still holds
    /// the lease. Returns false (nothing written) when it does not.
    pub async fn put_workspace_blobs(
        &self,
        id: TaskId,
        owner: &str,
        blobs: &[(Uuid, Vec<u8>)],
    ) -> Result<bool, StoreError> {
        if blobs.is_empty() {
            return Ok(true);
        }
        let keys: Vec<Uuid> = blobs.iter().map(|(k, _)| *k).collect();
        let data: Vec<&[u8]> = blobs.iter().map(|(_, d)| d.as_slice()).collect();
        let written = sqlx::query(&format!(
            "INSERT INTO task_workspace_blobs (task_id, blob_key, data) \
             SELECT $1, k, d FROM UNNEST($3::uuid[], $4::bytea[]) AS b(k, d) WHERE {LEASE_HELD} \
             ON CONFLICT (task_id, blob_key) DO NOTHING"
        ))
        .bind(id.0)
        .bind(owner)
        .bind(&keys)
        .bind(&data)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(written > 0)
    }

    /// Sealed contents of the given blobs (those that exist).
    pub async fn workspace_blobs(&self, id: TaskId, keys: &[Uuid]) -> Result<Vec<(Uuid, Vec<u8>)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT blob_key, data FROM task_workspace_blobs WHERE task_id = $1 AND blob_key = ANY($2)")
                .bind(id.0)
                .bind(keys)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Drops blobs no manifest refers to any more.
    pub async fn delete_workspace_blobs(&self, id: TaskId, keys: &[Uuid]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        sqlx::query("DELETE FROM task_workspace_blobs WHERE task_id = $1 AND blob_key = ANY($2)")
            .bind(id.0)
            .bind(keys)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Bytes stored for a task's saved workspace (sealed blobs and manifest).
    pub async fn workspace_stored_bytes(&self, id: TaskId) -> Result<i64, StoreError> {
        let (bytes,): (i64,) = sqlx::query_as(
            "SELECT coalesce((SELECT sum(octet_length(data)) FROM task_workspace_blobs WHERE task_id = $1), 0)::bigint \
                  + coalesce((SELECT octet_length(manifest) FROM task_workspaces WHERE task_id = $1), 0)::bigint",
        )
        .bind(id.0)
        .fetch_one(&self.pool)
        .await?;
        Ok(bytes)
    }

    /// Deletes saved workspaces nobody will resume: those of completed tasks
    /// (normally gone already, unless a replica died in between) and those
    /// of failed or cancelled tasks that ended more than `retention` ago,
    /// together with their journal, so that a later retry starts over
    /// instead of resuming on files that are gone. Returns the task count.
    pub async fn purge_saved_workspaces(&self, retention: Duration) -> Result<u64, StoreError> {
        let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let mut tx = self.pool.begin().await?;
        let expired: Vec<(Uuid,)> = sqlx::query_as(
            "SELECT t.id FROM tasks t \
             WHERE (EXISTS (SELECT 1 FROM task_workspaces w WHERE w.task_id = t.id) \
                    OR EXISTS (SELECT 1 FROM task_workspace_blobs b WHERE b.task_id = t.id)) \
               AND (t.status = 'completed' \
                    OR (t.status IN ('failed', 'cancelled') \
                        AND t.last_heartbeat_at < now() - make_interval(secs => $1::double precision / 1000))) \
             FOR UPDATE OF t SKIP LOCKED",
        )
        .bind(retention_ms)
        .fetch_all(&mut *tx)
        .await?;
        let ids: Vec<Uuid> = expired.into_iter().map(|(id,)| id).collect();
        if ids.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        sqlx::query(
            "DELETE FROM task_steps s USING tasks t \
             WHERE s.task_id = t.id AND t.id = ANY($1) AND t.status <> 'completed'",
        )
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM task_workspaces WHERE task_id = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM task_workspace_blobs WHERE task_id = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(ids.len() as u64)
    }
}
