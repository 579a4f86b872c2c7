//! The tasks of one template with their outcome: what the promotion
//! history is read from (every promotion is a task of the built-in
//! promotion template).

use serde_json::Value;

use super::tasks::{TaskRow, TASK_COLUMNS};
use super::{Store, StoreError};
use crate::model::Task;

#[derive(sqlx::FromRow)]
struct TaskWithCompletion {
    #[sqlx(flatten)]
    task: TaskRow,
    completion: Option<String>,
}

impl Store {
    /// Tasks created from `template_ref` (newest first, at most `limit`),
    /// limited to `created_by` when given, each with the body of its
    /// `completion` event once it has finished.
    pub async fn tasks_of_template(
        &self,
        template_ref: &str,
        created_by: Option<&str>,
        limit: i64,
    ) -> Result<Vec<(Task, Option<Value>)>, StoreError> {
        let rows: Vec<TaskWithCompletion> = sqlx::query_as(&format!(
            "SELECT {TASK_COLUMNS}, \
               (SELECT e.body::text FROM task_events e \
                 WHERE e.task_id = tasks.id AND e.event_type = 'completion' \
                 ORDER BY e.id DESC LIMIT 1) AS completion \
             FROM tasks \
             WHERE spec->'templateInfo'->>'entityRef' = $1 AND ($2::text IS NULL OR created_by = $2) \
             ORDER BY created_at DESC, id LIMIT $3"
        ))
        .bind(template_ref)
        .bind(created_by)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                let completion = row
                    .completion
                    .map(|body| {
                        serde_json::from_str(&body)
                            .map_err(|e| StoreError::Corrupt(format!("a completion event is unreadable: {e}")))
                    })
                    .transpose()?;
                Ok((row.task.into_task()?, completion))
            })
            .collect()
    }
}
