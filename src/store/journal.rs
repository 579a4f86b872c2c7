use std::collections::HashMap;

use serde_json::Value;

use super::{Store, StoreError};
use crate::model::TaskId;

impl Store {
    /// Records a finished step's outputs, if `owner` still holds the lease
    /// (a replica that lost its lease must not write).
    pub async fn record_step(&self, id: TaskId, owner: &str, key: &str, output: &Value) -> Result<bool, StoreError> {
        let written = sqlx::query(
            "INSERT INTO task_steps (task_id, step_key, output) \
             SELECT $1, $3, $4::json WHERE EXISTS ( \
                 SELECT 1 FROM tasks WHERE id = $1 AND lease_owner = $2 AND status = 'processing') \
             ON CONFLICT (task_id, step_key) DO UPDATE SET output = EXCLUDED.output, finished_at = now()",
        )
        .bind(id.0)
        .bind(owner)
        .bind(key)
        .bind(output.to_string())
        .execute(&self.pool)
        .await?
        .rows_affected();
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
}
