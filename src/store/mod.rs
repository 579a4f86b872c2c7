//! Every SQL statement of the service. Nothing outside this module talks to
//! PostgreSQL; callers get domain types (`Task`, `TaskEvent`) back.

mod approvals;
mod audit;
mod events;
mod journal;
mod metrics;
mod promotions;
mod tasks;
mod updates;

use std::time::Duration;

use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool, Postgres};

pub use audit::AuditQuery;
pub use journal::{SavedManifest, WorkspaceRecord};
pub use metrics::QueueStats;
pub use tasks::{CancelOutcome, ClaimedTask, ListQuery, RetryOutcome, SortField, WaitingTask};
pub use updates::{NewAnswers, UpdateItemRecord, UpdateRunRecord};

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
    /// The first connection failed; `target` says where it went
    /// (`127.0.0.1:5432, database "scaffolder", user "postgres"`).
    #[error("cannot connect to PostgreSQL at {target}: {source}")]
    Connect { target: String, source: sqlx::Error },
    #[error("cannot connect to PostgreSQL at {target}: no answer within {seconds} s")]
    ConnectTimeout { target: String, seconds: u64 },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// The settings are wrong (a malformed URL, say): retrying cannot help.
    pub fn is_misconfiguration(&self) -> bool {
        matches!(
            self,
            StoreError::Database(sqlx::Error::Configuration(_))
                | StoreError::Connect {
                    source: sqlx::Error::Configuration(_),
                    ..
                }
        )
    }
}

#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
}

/// How long one connection attempt may take (also the pool's acquire timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a connection goes, for error messages (no password).
fn describe(options: &PgConnectOptions) -> String {
    let host = options.get_host();
    let server = if host.starts_with('/') {
        format!("{host}/.s.PGSQL.{}", options.get_port())
    } else if host.contains(':') {
        format!("[{host}]:{}", options.get_port())
    } else {
        format!("{host}:{}", options.get_port())
    };
    let database = options.get_database().unwrap_or("(default)");
    format!("{server}, database \"{database}\", user \"{}\"", options.get_username())
}

/// A pooled connection idle at least this long is pinged before use.
const PING_WHEN_IDLE_FOR: std::time::Duration = std::time::Duration::from_secs(1);

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Store {
    /// Connects (creating the database when allowed and missing) without migrating.
    /// A failure names the server, database and user, and carries the
    /// driver's cause (connection refused, authentication failed, database
    /// missing), at once rather than after the pool's acquire timeout.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Store, StoreError> {
        let url = settings.url.expose();
        let options: PgConnectOptions = url.parse()?;
        let target = describe(&options);
        if settings.create_if_missing && !Postgres::database_exists(url).await.unwrap_or(true) {
            // Two replicas starting at once may race here; losing the race is fine.
            if let Err(e) = Postgres::create_database(url).await {
                if !Postgres::database_exists(url).await.unwrap_or(false) {
                    return Err(e.into());
                }
            }
        }
        // One direct connection first: the pool retries a failing connect
        // until its acquire timeout and then reports only "pool timed out".
        let probe = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
            .await
            .map_err(|_| StoreError::ConnectTimeout {
                target: target.clone(),
                seconds: CONNECT_TIMEOUT.as_secs(),
            })?
            .map_err(|source| StoreError::Connect { target, source })?;
        let _ = probe.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(CONNECT_TIMEOUT)
            // sqlx pings every connection it hands out; under load that
            // doubled the round trips of every query. A connection that sat
            // idle for a while is still checked (a restarted server, a
            // proxy's idle timeout); a dead one is dropped for a new one.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for < PING_WHEN_IDLE_FOR {
                        return Ok(true);
                    }
                    Ok(sqlx::Connection::ping(conn).await.is_ok())
                })
            })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_malformed_url_is_a_misconfiguration_and_a_refused_one_is_not() {
        let malformed = DatabaseSettings {
            url: "postgres://db:not-a-port/scaffolder".into(),
            ..DatabaseSettings::default()
        };
        let err = Store::connect(&malformed).await.expect_err("malformed URL");
        assert!(err.is_misconfiguration(), "{err}");

        // Port 1 on loopback: nothing listens there.
        let refused = DatabaseSettings {
            url: "postgres://app:hunter2@127.0.0.1:1/scaffolder".into(),
            create_if_missing: false,
            ..DatabaseSettings::default()
        };
        let err = Store::connect(&refused).await.expect_err("nothing listens");
        assert!(!err.is_misconfiguration(), "{err}");
        let message = err.to_string();
        assert!(
            message.contains("127.0.0.1:1, database \"scaffolder\", user \"app\"") && !message.contains("hunter2"),
            "{message}"
        );
    }
}
