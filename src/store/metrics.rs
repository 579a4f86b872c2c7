//! The numbers `/metrics` reads from the database at scrape time.

use super::{Store, StoreError};

/// The queue of tasks no worker has claimed yet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueStats {
    /// Tasks with status `open`.
    pub open: i64,
    /// Seconds since the oldest open task was created; 0 when none is open.
    pub oldest_open_age_seconds: f64,
}

impl Store {
    /// One query, answered from the `(status, created_at)` index.
    pub async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        let (open, oldest): (i64, Option<f64>) = sqlx::query_as(
            "SELECT count(*), EXTRACT(EPOCH FROM clock_timestamp() - min(created_at))::float8 \
             FROM tasks WHERE status = 'open'",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(QueueStats {
            open,
            // A clock step between replicas could make it negative.
            oldest_open_age_seconds: oldest.unwrap_or(0.0).max(0.0),
        })
    }
}
