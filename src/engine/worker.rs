//! Claims open tasks and runs them, holding a lease renewed by heartbeats.
//! The loop is woken by PostgreSQL notifications (new task, cancel request)
//! with a slow fallback poll, and survives database errors with a jittered
//! backoff while reporting itself unhealthy.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;
use serde_json::{Map, Value};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use super::runner::{RunRequest, RunSink, Runner};
use crate::config::WorkerSettings;
use crate::model::{NewEvent, TaskId};
use crate::store::{ClaimedTask, Store, CANCEL_CHANNEL, TASKS_CHANNEL};

/// Liveness of the claim loop, read by `/readyz`.
#[derive(Debug, Default)]
pub struct WorkerHealth {
    /// Unix milliseconds of the last loop iteration that reached the database.
    last_ok_ms: AtomicI64,
    failing: AtomicBool,
    stopped: AtomicBool,
}

impl WorkerHealth {
    fn mark_ok(&self) {
        self.last_ok_ms
            .store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
        self.failing.store(false, Ordering::Relaxed);
    }

    fn mark_failing(&self) {
        self.failing.store(true, Ordering::Relaxed);
    }

    /// Healthy when the loop runs, its last database round trip worked, and
    /// that happened within `max_age`.
    pub fn is_healthy(&self, max_age: Duration) -> bool {
        if self.failing.load(Ordering::Relaxed) || self.stopped.load(Ordering::Relaxed) {
            return false;
        }
        let age_ms = chrono::Utc::now().timestamp_millis() - self.last_ok_ms.load(Ordering::Relaxed);
        age_ms >= 0 && (age_ms as u128) <= max_age.as_millis()
    }
}

/// Writes a running task's events to its log.
struct StoreSink {
    store: Store,
    task_id: TaskId,
}

#[async_trait]
impl RunSink for StoreSink {
    async fn emit(&self, event: NewEvent) {
        // A log line must not be lost to a passing database error.
        let mut delay = Duration::from_millis(100);
        for attempt in 0..5 {
            match self.store.append_event(self.task_id, &event).await {
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(task_id = %self.task_id, attempt, error = %e, "cannot write task event, retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
        tracing::error!(task_id = %self.task_id, "dropped a task event after repeated database errors");
    }
}

#[derive(Clone)]
pub struct Worker {
    store: Store,
    runner: Runner,
    settings: WorkerSettings,
    owner: String,
    health: Arc<WorkerHealth>,
    running: Arc<Mutex<HashMap<TaskId, CancellationToken>>>,
    task_finished: Arc<Notify>,
}

impl Worker {
    pub fn new(store: Store, runner: Runner, settings: WorkerSettings) -> Worker {
        let owner = format!(
            "{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "scaffolder".into()),
            uuid::Uuid::new_v4()
        );
        Worker {
            store,
            runner,
            settings,
            owner,
            health: Arc::new(WorkerHealth::default()),
            running: Arc::new(Mutex::new(HashMap::new())),
            task_finished: Arc::new(Notify::new()),
        }
    }

    pub fn health(&self) -> Arc<WorkerHealth> {
        self.health.clone()
    }

    /// The longest a healthy loop goes without reaching the database.
    pub fn health_window(&self) -> Duration {
        Duration::from_secs(self.settings.poll_seconds * 3 + 5)
    }

    fn lease(&self) -> Duration {
        Duration::from_secs(self.settings.lease_seconds)
    }

    /// Claims and runs tasks until `shutdown` fires, then waits for the
    /// running tasks to end.
    pub async fn run(self, shutdown: CancellationToken) {
        let permits = Arc::new(Semaphore::new(self.settings.concurrency));
        let mut listener = None;
        let mut backoff = Duration::from_millis(200);
        let mut tasks = tokio::task::JoinSet::new();
        self.health.mark_ok();
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            if listener.is_none() {
                match self.store.listener(&[TASKS_CHANNEL, CANCEL_CHANNEL]).await {
                    Ok(l) => listener = Some(l),
                    Err(e) => {
                        tracing::warn!(error = %e, "worker cannot listen for notifications");
                    }
                }
            }
            match self.claim_available(&permits, &mut tasks).await {
                Ok(()) => {
                    self.health.mark_ok();
                    backoff = Duration::from_millis(200);
                }
                Err(e) => {
                    self.health.mark_failing();
                    let jitter = rand::thread_rng().gen_range(0..=backoff.as_millis() as u64 / 2);
                    let wait = backoff + Duration::from_millis(jitter);
                    tracing::error!(error = %e, retry_in_ms = wait.as_millis() as u64, "worker cannot claim tasks");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.cancelled() => break,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    continue;
                }
            }
            // Reap finished runs so the JoinSet does not grow.
            while tasks.try_join_next().is_some() {}

            let poll = tokio::time::sleep(Duration::from_secs(self.settings.poll_seconds));
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.task_finished.notified() => {}
                _ = poll => {}
                notification = async {
                    match listener.as_mut() {
                        Some(l) => l.recv().await,
                        None => std::future::pending().await,
                    }
                } => match notification {
                    Ok(n) if n.channel() == CANCEL_CHANNEL => {
                        if let Some(id) = TaskId::parse(n.payload()) {
                            self.cancel_local(id);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "notification listener failed; reconnecting");
                        self.health.mark_failing();
                        listener = None;
                    }
                },
            }
        }
        self.health.stopped.store(true, Ordering::Relaxed);
        let grace = Duration::from_secs(self.settings.lease_seconds);
        tracing::info!(running = tasks.len(), "worker stopping; waiting for running tasks");
        let drained = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!("running tasks did not finish in time; their leases will expire");
            tasks.abort_all();
        }
    }

    /// Fires the cancellation token of a task this process runs.
    fn cancel_local(&self, id: TaskId) {
        if let Ok(running) = self.running.lock() {
            if let Some(token) = running.get(&id) {
                tracing::info!(task_id = %id, "cancelling running task");
                token.cancel();
            }
        }
    }

    async fn claim_available(
        &self,
        permits: &Arc<Semaphore>,
        tasks: &mut tokio::task::JoinSet<()>,
    ) -> Result<(), crate::store::StoreError> {
        loop {
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                // At capacity: a round trip keeps readiness honest.
                return self.store.ping().await;
            };
            let Some(claimed) = self.store.claim_task(&self.owner, self.lease()).await? else {
                return Ok(());
            };
            let worker = self.clone();
            tasks.spawn(async move {
                worker.run_claimed(claimed).await;
                drop(permit);
                worker.task_finished.notify_one();
            });
        }
    }

    fn workspace_for(&self, id: TaskId) -> PathBuf {
        let base = self.settings.work_dir.clone().unwrap_or_else(std::env::temp_dir);
        base.join(format!("scaffolder-task-{id}"))
    }

    async fn run_claimed(&self, claimed: ClaimedTask) {
        let id = claimed.task.id;
        let cancel = CancellationToken::new();
        if let Ok(mut running) = self.running.lock() {
            running.insert(id, cancel.clone());
        }
        tracing::info!(task_id = %id, attempt = claimed.attempts, "task claimed");

        let heartbeat = {
            let store = self.store.clone();
            let owner = self.owner.clone();
            let lease = self.lease();
            let every = Duration::from_secs(self.settings.heartbeat_seconds);
            let cancel = cancel.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    match store.heartbeat(id, &owner, lease).await {
                        Ok(Some(false)) => {}
                        Ok(Some(true)) => cancel.cancel(),
                        Ok(None) => {
                            tracing::warn!(task_id = %id, "lease lost; stopping the run");
                            cancel.cancel();
                            return;
                        }
                        Err(e) => tracing::warn!(task_id = %id, error = %e, "heartbeat failed"),
                    }
                }
            })
        };

        let workspace = self.workspace_for(id);
        let outcome = match tokio::fs::create_dir_all(&workspace).await {
            Ok(()) => {
                let secrets: Map<String, Value> = match claimed.secrets {
                    Some(Value::Object(map)) => map,
                    _ => Map::new(),
                };
                let request = RunRequest {
                    task_id: id.to_string(),
                    spec: claimed.task.spec,
                    secrets,
                    workspace: workspace.clone(),
                    dry_run: false,
                    cancel: cancel.clone(),
                };
                let sink = Arc::new(StoreSink {
                    store: self.store.clone(),
                    task_id: id,
                });
                Some(self.runner.run(request, sink).await)
            }
            Err(e) => {
                tracing::error!(task_id = %id, error = %e, "cannot create workspace");
                None
            }
        };
        heartbeat.abort();
        let _ = tokio::fs::remove_dir_all(&workspace).await;
        if let Ok(mut running) = self.running.lock() {
            running.remove(&id);
        }

        let outcome = outcome.unwrap_or_else(|| crate::engine::RunOutcome {
            status: crate::model::TaskStatus::Failed,
            final_events: vec![NewEvent {
                event_type: crate::model::EventType::Completion,
                body: serde_json::json!({
                    "message": "Run completed with status: failed",
                    "error": { "name": "Error", "message": "cannot create the task workspace" },
                }),
            }],
            output: Value::Null,
        });
        let mut delay = Duration::from_millis(200);
        for attempt in 0..8 {
            match self
                .store
                .finish_task(id, &self.owner, outcome.status, &outcome.final_events)
                .await
            {
                Ok(true) => {
                    tracing::info!(task_id = %id, status = %outcome.status, "task finished");
                    return;
                }
                Ok(false) => {
                    tracing::warn!(task_id = %id, "task finished but its lease was taken over; result discarded");
                    return;
                }
                Err(e) => {
                    tracing::warn!(task_id = %id, attempt, error = %e, "cannot record task result, retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
        tracing::error!(task_id = %id, "could not record the task result; the lease will expire");
    }
}
