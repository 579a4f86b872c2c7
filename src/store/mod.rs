//! Every SQL statement of the service. Nothing outside this module talks to
//! PostgreSQL; callers get domain types (`Task`, `TaskEvent`) back.

mod events;
mod journal;
mod metrics;
mod tasks;

use std::time::Duration;

use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};

pub use metrics::QueueStats;
pub use tasks::{CancelOutcome, ClaimedTask, ListQuery, RetryOutcome, SortField};

use crate::config::DatabaseSettings;

/// Channel notified with a task id whenever that task gets a new event.
pub const EVENTS_CHANNEL: &str = "scaffolder_task_events";
/// Channel notified when a task becomes claimable (created, retried, lease lost).
pub const TASKS_CHANNEL: &str = "scaffolder_tasks";
/// Channel notified with a task id when cancellation of a running task is requested.
pub const CANCEL_CHANNEL: &str = "scaffolder_task_cancel";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// The settings are wrong (a malformed URL, say): retrying cannot help.
    pub fn is_misconfiguration(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Configuration(_)))
    }
}

#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
}

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Store {
    /// Connects (creating the database when allowed and missing) without migrating.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Store, StoreError> {
        let url = settings.url.expose();
        if settings.create_if_missing && !Postgres::database_exists(url).await.unwrap_or(true) {
            // Two replicas starting at once may race here; losing the race is fine.
            if let Err(e) = Postgres::create_database(url).await {
                if !Postgres::database_exists(url).await.unwrap_or(false) {
                    return Err(e.into());
                }
            }
        }
        let options: PgConnectOptions = url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        Ok(Store { pool })
    }

    pub fn from_pool(pool: PgPool) -> Store {
        Store { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// A round trip to the database (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// A listener for the notification channels above, on its own connection.
    pub async fn listener(&self, channels: &[&str]) -> Result<sqlx::postgres::PgListener, StoreError> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await?;
        listener.listen_all(channels.iter().copied()).await?;
        Ok(listener)
    }
}
