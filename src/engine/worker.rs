//! Claims tasks and runs them, holding a lease renewed by heartbeats.
//!
//! The loop is woken by PostgreSQL notifications (new or released task,
//! cancel request) with a slow fallback poll, survives database errors with a
//! jittered backoff while reporting itself unhealthy, takes over tasks whose
//! worker died (resuming them from the step journal), fails tasks nobody can
//! finish, and on shutdown releases what it still runs so another replica
//! resumes it at once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Map, Value};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::durable::{WorkspaceBlobs, WorkspaceSaver};
use super::runner::{JournalError, RunEnd, RunId, RunOutcome, RunRequest, RunSink, Runner, StepReport};
use crate::backoff::{Backoff, Jitter};
use crate::config::WorkerSettings;
use crate::metrics::Metrics;
use crate::model::approval::{ApprovalGate, ApprovalState, Verdict};
use crate::model::audit::{AuditEvent, AuditKind};
use crate::model::{NewEvent, StepStatus, TaskId, TaskStatus};
use crate::secrets::Keyring;
use crate::store::{ClaimedTask, Store, StoreError, WorkspaceRecord, CANCEL_CHANNEL, TASKS_CHANNEL};

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

/// Writes a running task's log events in batches (group commit): `push`
/// queues an event and returns at once; a flush takes everything queued and
/// writes it in one statement, so the lines a step logs while the previous
/// batch is on its way to PostgreSQL travel together. Batches are written in
/// the order their events were queued (the queue is emptied under the
/// writer lock). The step journal, a checkpoint and the task's end `drain`
/// first, so none of them ever gets ahead of the log it follows.
struct EventWriter {
    store: Store,
    task_id: TaskId,
    owner: String,
    /// Fired when a write finds the lease gone.
    lost: CancellationToken,
    queue: Mutex<Vec<NewEvent>>,
    /// Held while a batch is taken from the queue and written.
    writing: tokio::sync::Mutex<()>,
}

/// Queued events beyond which `push` waits for a flush (a step logging in a
/// tight loop is held to the database's pace).
const EVENT_QUEUE_LIMIT: usize = 512;

impl EventWriter {
    /// Queues `event`; a flush is started when the queue was empty (one is
    /// running or about to run otherwise).
    async fn push(self: &Arc<Self>, event: NewEvent) {
        let queued = match self.queue.lock() {
            Ok(mut queue) => {
                queue.push(event);
                queue.len()
            }
            Err(_) => return,
        };
        if queued >= EVENT_QUEUE_LIMIT {
            self.drain().await;
        } else if queued == 1 {
            let writer = self.clone();
            tokio::spawn(async move { writer.drain().await }.instrument(tracing::Span::current()));
        }
    }

    /// Writes everything queued so far; returns when it landed (or was given
    /// up after repeated database errors, or the lease was lost).
    async fn drain(&self) {
        let _writing = self.writing.lock().await;
        loop {
            let batch = match self.queue.lock() {
                Ok(mut queue) => std::mem::take(&mut *queue),
                Err(_) => return,
            };
            if batch.is_empty() {
                return;
            }
            self.write(&batch).await;
        }
    }

    async fn write(&self, batch: &[NewEvent]) {
        write_fenced(self.task_id, &self.lost, "task events", || async {
            Ok(self
                .store
                .append_events_as(self.task_id, &self.owner, batch)
                .await?
                .is_some())
        })
        .await;
    }
}

/// A write of a running task's: passing database errors are retried; a lost
/// lease is not (it fires `lost`). Returns whether the write landed.
async fn write_fenced<F, Fut>(task_id: TaskId, lost: &CancellationToken, what: &str, mut op: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, StoreError>>,
{
    for attempt in 0u32.. {
        match op().await {
            Ok(true) => return true,
            Ok(false) => {
                tracing::warn!(task_id = %task_id, "lease lost; {what} discarded");
                lost.cancel();
                return false;
            }
            Err(e) => {
                tracing::warn!(task_id = %task_id, attempt, error = %e, "cannot write {what}, retrying");
                if attempt + 1 >= STORE_WRITE_ATTEMPTS {
                    break;
                }
                tokio::time::sleep(STORE_WRITE_BACKOFF.delay(attempt)).await;
            }
        }
    }
    tracing::error!(task_id = %task_id, "gave up writing {what} after repeated database errors");
    false
}

/// Writes a running task's events and journal, fenced by the lease: once
/// another replica owns the task, nothing from this one lands.
struct StoreSink {
    store: Store,
    /// The log events, batched.
    events: Arc<EventWriter>,
    task_id: TaskId,
    owner: String,
    /// Fired when a write finds the lease gone.
    lost: CancellationToken,
    /// Events the task has written (all attempts) and the most it may write.
    written: AtomicU64,
    limit: u64,
    /// This attempt wrote its "log lines are dropped" marker.
    marked: AtomicBool,
    metrics: Arc<Metrics>,
    /// Labels of Backstage's step metrics: the template ref and each step's
    /// name by id (the name defaults to the action id, as in the task spec).
    template: String,
    step_names: HashMap<String, String>,
    /// Saves the workspace with each journal entry (`worker.save_workspace`).
    saver: Option<Arc<WorkspaceSaver>>,
    /// Outputs of the steps this attempt finished, for the audit events of
    /// steps that change things outside (repositories, overlays).
    outputs: Mutex<HashMap<String, Value>>,
    /// Who the task runs for (the audit trail's actor of its changes).
    created_by: Option<String>,
}

/// The audit event of a finished step whose action changes something
/// outside: a repository created, an overlay registered, a promotion. Only refs and
/// URLs the step put out are kept.
fn step_audit(action: &str, step_id: &str, output: Option<&Value>) -> Option<AuditEvent> {
    let (kind, keys): (AuditKind, &[&str]) = match action {
        "publish:github" | "publish:git" | "publish:github:pull-request" => (
            AuditKind::RepositoryCreated,
            &["remoteUrl", "repoContentsUrl", "pullRequestUrl"],
        ),
        "gitops:overlay:register" => (
            AuditKind::OverlayRegistered,
            &["commitUrl", "overlayPaths", "applications"],
        ),
        "gitops:image:promote" => (
            AuditKind::PromotionMade,
            &["commitUrl", "branch", "pullRequestUrl", "clusters", "rollback"],
        ),
        _ => return None,
    };
    let mut event = AuditEvent::succeeded(kind)
        .meta("stepId", step_id)
        .meta("action", action);
    for key in keys {
        if let Some(value) = output.and_then(|o| o.get(*key)) {
            event = event.meta(key, value.clone());
        }
    }
    if let Some(target) = keys
        .iter()
        .find_map(|k| output.and_then(|o| o.get(*k)).and_then(Value::as_str))
    {
        event = event.target(target);
    }
    Some(event)
}

impl StoreSink {
    async fn with_retry<F, Fut>(&self, what: &str, op: F) -> bool
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<bool, StoreError>>,
    {
        write_fenced(self.task_id, &self.lost, what, op).await
    }
}

#[async_trait]
impl RunSink for StoreSink {
    async fn emit(&self, event: NewEvent) {
        // `limits.events_per_task` protects the database from a task that
        // logs without end: beyond it, log lines are dropped after one marker
        // event. Step status changes (bounded by the template) still land.
        let is_status = event.body.get("status").is_some();
        let written = self.written.fetch_add(1, Ordering::Relaxed);
        let event = if is_status || written < self.limit {
            event
        } else if !self.marked.swap(true, Ordering::Relaxed) {
            tracing::warn!(task_id = %self.task_id, limit = self.limit, "task reached its event limit; dropping its log lines");
            let message = format!(
                "This task reached the limit of {} events (limits.events_per_task); further log lines are dropped",
                self.limit
            );
            match event.body.get("stepId").and_then(Value::as_str) {
                Some(step_id) => NewEvent::step_log(step_id, message),
                None => NewEvent::message(message),
            }
        } else {
            return;
        };
        self.events.push(event).await;
    }

    async fn step_finished(&self, key: &str, output: &Value) -> Result<(), JournalError> {
        self.events.drain().await;
        let prepared = match &self.saver {
            None => None,
            Some(saver) => {
                let started = Instant::now();
                let prepared = saver.prepare().await.map_err(|e| {
                    if matches!(e, super::durable::DurableError::LeaseLost) {
                        self.lost.cancel();
                    }
                    JournalError(format!("cannot save the workspace: {e}"))
                })?;
                tracing::debug!(
                    task_id = %self.task_id,
                    step = key,
                    files = prepared.files,
                    bytes = prepared.bytes,
                    stored_bytes = prepared.stored_bytes,
                    manifest_bytes = prepared.sealed_manifest.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "workspace saved"
                );
                Some(prepared)
            }
        };
        let record = prepared.as_ref().map(|p| WorkspaceRecord {
            manifest: &p.sealed_manifest,
            bytes: i64::try_from(p.bytes).unwrap_or(i64::MAX),
            files: i32::try_from(p.files).unwrap_or(i32::MAX),
        });
        let landed = self
            .with_retry("a journal entry", || {
                self.store.record_step(self.task_id, &self.owner, key, output, record)
            })
            .await;
        if landed {
            if let Ok(mut outputs) = self.outputs.lock() {
                outputs.insert(key.to_owned(), output.clone());
            }
        }
        match (landed, prepared, &self.saver) {
            (true, Some(prepared), Some(saver)) => {
                saver.commit(prepared).await;
                Ok(())
            }
            (true, _, _) => Ok(()),
            // A lost lease aborts the run anyway; anything else is a failure.
            (false, _, _) if self.lost.is_cancelled() => Ok(()),
            (false, _, _) => Err(JournalError(
                "the step journal cannot be written to the database".into(),
            )),
        }
    }

    async fn checkpoint(&self, key: &str, state: &Value) -> Result<(), JournalError> {
        self.events.drain().await;
        let landed = self
            .with_retry("a checkpoint", || {
                self.store.record_step(self.task_id, &self.owner, key, state, None)
            })
            .await;
        if landed || self.lost.is_cancelled() {
            Ok(())
        } else {
            Err(JournalError(
                "the step journal cannot be written to the database".into(),
            ))
        }
    }

    async fn step_ended(&self, report: &StepReport<'_>) {
        let name = self
            .step_names
            .get(report.step_id)
            .map(String::as_str)
            .unwrap_or(report.action);
        self.metrics.step_finished(
            &self.template,
            name,
            report.action,
            report.result.as_str(),
            report.elapsed,
        );
        if report.result == StepStatus::Completed {
            let output = self.outputs.lock().ok().and_then(|o| o.get(report.step_id).cloned());
            if let Some(event) = step_audit(report.action, report.step_id, output.as_ref()) {
                let event = event.actor(self.created_by.as_deref()).task(self.task_id);
                self.with_retry("an audit event", || {
                    self.store.record_run_audit(self.task_id, &self.owner, &event)
                })
                .await;
            }
        }
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
    /// Fired after the shutdown grace period: running tasks stop and are released.
    abort_all: CancellationToken,
    /// Opens the tasks' sealed secrets; without it a task with secrets fails.
    keyring: Option<Arc<Keyring>>,
    events_per_task: u64,
    /// `limits.workspace_bytes`: a larger workspace is not saved.
    workspace_bytes: u64,
    metrics: Arc<Metrics>,
    /// When saved workspaces past their retention were last purged.
    last_purge: Arc<Mutex<Option<Instant>>>,
    /// When abandoned tasks were last looked for.
    last_abandoned_check: Arc<Mutex<Option<Instant>>>,
}

/// Saved workspaces past their retention are looked for this often.
const PURGE_EVERY: Duration = Duration::from_secs(60);
/// Abandoned tasks are looked for at most this often.
const ABANDONED_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Event and journal writes: 6 attempts, 0.1 s doubling between them.
const STORE_WRITE_ATTEMPTS: u32 = 6;
const STORE_WRITE_BACKOFF: Backoff = Backoff::doubling(Duration::from_millis(100));
/// The final result: 8 attempts, 0.2 s doubling up to 10 s.
const RESULT_WRITE_ATTEMPTS: u32 = 8;
const RESULT_WRITE_BACKOFF: Backoff = Backoff::doubling(Duration::from_millis(200)).capped(Duration::from_secs(10));
/// A claim loop that cannot reach the database: 0.2 s doubling up to 30 s,
/// plus up to half again so that replicas do not retry in step.
const CLAIM_BACKOFF: Backoff = Backoff::doubling(Duration::from_millis(200))
    .capped(Duration::from_secs(30))
    .jittered(Jitter::UpToHalfMore);

/// Whether housekeeping last done at `last` is due again (`every` passed,
/// or never done).
fn is_due(last: &Mutex<Option<Instant>>, every: Duration) -> bool {
    last.lock()
        .map(|last| last.map_or(true, |at| at.elapsed() >= every))
        .unwrap_or(true)
}

/// Records that housekeeping was done now.
fn mark_done(last: &Mutex<Option<Instant>>) {
    if let Ok(mut last) = last.lock() {
        *last = Some(Instant::now());
    }
}

/// Step id → name, from the task spec (whose steps carry both).
fn step_names(spec: &Value) -> HashMap<String, String> {
    let name_of = |s: &Value| Some((s.get("id")?.as_str()?.to_owned(), s.get("name")?.as_str()?.to_owned()));
    spec.get("steps")
        .and_then(Value::as_array)
        .map(|steps| steps.iter().filter_map(name_of).collect())
        .unwrap_or_default()
}

/// The `template` label and span field of a task: its template's entity ref.
fn template_of(spec: &Value) -> &str {
    spec.pointer("/templateInfo/entityRef")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
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
            abort_all: CancellationToken::new(),
            keyring: None,
            events_per_task: crate::config::LimitsSettings::default().events_per_task,
            workspace_bytes: crate::config::LimitsSettings::default().workspace_bytes,
            metrics: Arc::new(Metrics::new()),
            last_purge: Arc::new(Mutex::new(None)),
            last_abandoned_check: Arc::new(Mutex::new(None)),
        }
    }

    /// The keys that open the tasks' secrets.
    pub fn with_keyring(mut self, keyring: Arc<Keyring>) -> Worker {
        self.keyring = Some(keyring);
        self
    }

    /// `limits.workspace_bytes`, which a saved workspace counts against.
    pub fn with_workspace_limit(mut self, workspace_bytes: u64) -> Worker {
        self.workspace_bytes = workspace_bytes;
        self
    }

    /// `limits.events_per_task`.
    pub fn with_event_limit(mut self, events_per_task: u64) -> Worker {
        self.events_per_task = events_per_task;
        self
    }

    /// Records task and step metrics into `metrics` (by default into a
    /// registry of its own that nobody reads).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Worker {
        self.metrics = metrics;
        self
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

    /// Claims and runs tasks until `shutdown` fires; then stops claiming,
    /// lets running tasks go on for the grace period, and releases the rest.
    pub async fn run(self, shutdown: CancellationToken) {
        let permits = Arc::new(Semaphore::new(self.settings.concurrency));
        let mut listener = None;
        // Failed ticks in a row: the next wait is `CLAIM_BACKOFF.delay(failures)`.
        let mut failures = 0u32;
        let mut tasks = tokio::task::JoinSet::new();
        self.health.mark_ok();
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            if listener.is_none() {
                match self.store.listener(&[TASKS_CHANNEL, CANCEL_CHANNEL]).await {
                    Ok(l) => listener = Some(l),
                    Err(e) => tracing::warn!(error = %e, "worker cannot listen for notifications"),
                }
            }
            match self.tick(&permits, &mut tasks).await {
                Ok(()) => {
                    self.health.mark_ok();
                    failures = 0;
                }
                Err(e) => {
                    self.health.mark_failing();
                    let wait = CLAIM_BACKOFF.delay(failures);
                    tracing::error!(error = %e, retry_in_ms = wait.as_millis() as u64, "worker cannot reach the database");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.cancelled() => break,
                    }
                    failures = failures.saturating_add(1);
                    continue;
                }
            }
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
                        listener = None;
                    }
                },
            }
        }
        self.health.stopped.store(true, Ordering::Relaxed);
        if !tasks.is_empty() {
            let grace = Duration::from_secs(self.settings.shutdown_grace_seconds);
            tracing::info!(
                running = tasks.len(),
                grace_s = grace.as_secs(),
                "worker stopping; waiting for running tasks"
            );
            let drained = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
            if drained.is_err() {
                tracing::info!(running = tasks.len(), "releasing unfinished tasks to other replicas");
                self.abort_all.cancel();
                while tasks.join_next().await.is_some() {}
            }
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

    /// One round: fail abandoned tasks, then claim while there is capacity.
    async fn tick(&self, permits: &Arc<Semaphore>, tasks: &mut tokio::task::JoinSet<()>) -> Result<(), StoreError> {
        let abandoned = self.fail_abandoned_tasks().await?;
        for id in abandoned {
            tracing::warn!(task_id = %id, "abandoned task failed");
        }
        self.purge_saved_workspaces().await?;
        loop {
            let room = permits.available_permits();
            if room == 0 {
                return Ok(());
            }
            // As many as there is room for, in one round trip.
            let claimed = self
                .store
                .claim_tasks(
                    &self.owner,
                    self.lease(),
                    self.settings.recover,
                    self.settings.max_attempts,
                    room,
                )
                .await?;
            if claimed.is_empty() {
                return Ok(());
            }
            let full = claimed.len() == room;
            for claimed in claimed {
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    // Only this loop takes permits: there is room for every
                    // task it claimed. Should that ever fail, the task goes
                    // back at once rather than wait for its lease.
                    if let Err(e) = self.store.release_task(claimed.task.id, &self.owner).await {
                        tracing::warn!(task_id = %claimed.task.id, error = %e, "cannot release a task claimed without room");
                    }
                    continue;
                };
                let worker = self.clone();
                let span = task_span(&claimed);
                tasks.spawn(
                    async move {
                        worker.run_claimed(claimed).await;
                        drop(permit);
                        worker.task_finished.notify_one();
                    }
                    .instrument(span),
                );
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// Fails tasks nobody will finish, at most once a second: a burst of
    /// notifications (every new and finished task wakes the loop) would
    /// otherwise run the search once per task.
    async fn fail_abandoned_tasks(&self) -> Result<Vec<TaskId>, StoreError> {
        if !is_due(&self.last_abandoned_check, ABANDONED_CHECK_EVERY) {
            return Ok(Vec::new());
        }
        let failed = self
            .store
            .fail_abandoned_tasks(
                self.settings.recover,
                self.settings.max_attempts,
                Duration::from_secs(self.settings.abandoned_after_seconds),
            )
            .await?;
        mark_done(&self.last_abandoned_check);
        Ok(failed)
    }

    /// Drops saved workspaces nobody will resume, at most once a minute.
    async fn purge_saved_workspaces(&self) -> Result<(), StoreError> {
        if !is_due(&self.last_purge, PURGE_EVERY) {
            return Ok(());
        }
        let retention = Duration::from_secs(self.settings.workspace_retention_hours.saturating_mul(3600));
        let purged = self.store.purge_saved_workspaces(retention).await?;
        if purged > 0 {
            tracing::info!(tasks = purged, "deleted saved workspaces past their retention");
        }
        mark_done(&self.last_purge);
        Ok(())
    }

    fn workspace_for(&self, id: TaskId) -> PathBuf {
        let base = self.settings.work_dir.clone().unwrap_or_else(std::env::temp_dir);
        base.join(format!("scaffolder-task-{id}"))
    }

    async fn run_claimed(&self, claimed: ClaimedTask) {
        let id = claimed.task.id;
        let cancel = CancellationToken::new();
        let abort = self.abort_all.child_token();
        if let Ok(mut running) = self.running.lock() {
            running.insert(id, cancel.clone());
        }
        tracing::info!(task_id = %id, attempt = claimed.attempts, took_over = claimed.took_over, "task claimed");
        let started = Instant::now();
        let template = template_of(&claimed.task.spec).to_owned();
        let _running = self.metrics.task_running();
        self.metrics.task_started(&template);
        if claimed.took_over {
            self.metrics.lease_takeover();
        }

        // Aborted when dropped: the heartbeat lives exactly as long as this
        // run, however the run ends (a panic included), so a run that is
        // gone never keeps its lease alive.
        let _heartbeat = {
            let store = self.store.clone();
            let owner = self.owner.clone();
            let lease = self.lease();
            let every = Duration::from_secs(self.settings.heartbeat_seconds);
            let (cancel, abort) = (cancel.clone(), abort.clone());
            tokio_util::task::AbortOnDropHandle::new(tokio::spawn(
                async move {
                    loop {
                        tokio::time::sleep(every).await;
                        match store.heartbeat(id, &owner, lease).await {
                            Ok(Some(false)) => {}
                            Ok(Some(true)) => cancel.cancel(),
                            Ok(None) => {
                                tracing::warn!(task_id = %id, "lease lost; stopping the run here");
                                abort.cancel();
                                return;
                            }
                            Err(e) => tracing::warn!(task_id = %id, error = %e, "heartbeat failed"),
                        }
                    }
                }
                .instrument(tracing::Span::current()),
            ))
        };

        let outcome = self.execute(&claimed, cancel, abort.clone()).await;
        drop(_heartbeat);
        if let Ok(mut running) = self.running.lock() {
            running.remove(&id);
        }
        let end = match outcome {
            RunOutcome::Finished(end) => end,
            RunOutcome::Aborted => {
                self.release_if_leaving(id).await;
                return;
            }
            RunOutcome::Waiting(gate) => {
                self.park(&claimed, gate).await;
                return;
            }
        };
        if self.record_outcome(id, &end).await {
            let status = TaskStatus::from(end.status);
            let result = status.as_str();
            self.metrics.task_finished(&template, result, started.elapsed());
            let span = tracing::Span::current();
            span.record("result", result);
            if status == TaskStatus::Failed {
                span.record("otel.status_code", "ERROR");
            }
        }
    }

    /// A run that stopped at an approval gate: the task waits in the store
    /// without a lease, its step still `processing`, until a decision or its
    /// timeout brings it back to a worker.
    async fn park(&self, claimed: &ClaimedTask, gate: ApprovalGate) {
        let id = claimed.task.id;
        let deadline = gate
            .timeout_seconds
            .and_then(|s| chrono::Duration::try_seconds(i64::try_from(s).ok()?))
            .map(|d| chrono::Utc::now() + d);
        let mut line = format!("waiting for approval by {}", gate.approvers());
        if let Some(deadline) = deadline {
            line.push_str(&format!(
                " until {}",
                deadline.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ));
        }
        if let Some(message) = &gate.message {
            line.push_str(&format!(": {message}"));
        }
        let events = [NewEvent::step_log(&gate.step_id, line)];
        let audit = AuditEvent::succeeded(AuditKind::ApprovalRequested)
            .actor(claimed.task.created_by.as_deref())
            .task(id)
            .meta("stepId", gate.step_id.clone())
            .meta("approvers", gate.approvers());
        let state = ApprovalState {
            gate,
            deadline,
            decision: None,
        };
        for attempt in 0u32..RESULT_WRITE_ATTEMPTS {
            match self
                .store
                .park_for_approval(id, &self.owner, &state, &events, &audit)
                .await
            {
                Ok(true) => {
                    tracing::info!(task_id = %id, step = %state.gate.step_id, "task waits for approval");
                    return;
                }
                Ok(false) => {
                    tracing::warn!(task_id = %id, "task reached an approval gate but its lease was taken over");
                    return;
                }
                Err(e) => {
                    tracing::warn!(task_id = %id, attempt, error = %e, "cannot park the task for approval, retrying");
                    tokio::time::sleep(RESULT_WRITE_BACKOFF.delay(attempt)).await;
                }
            }
        }
        tracing::error!(task_id = %id, "could not park the task for approval; the lease will expire");
    }

    /// An aborted run: when this process is leaving (not when it lost the
    /// lease), the task is handed back so another replica resumes it at once.
    async fn release_if_leaving(&self, id: TaskId) {
        if self.abort_all.is_cancelled() {
            // A second try gets a fresh connection if the pool handed out
            // one that died with its runtime or its server.
            for attempt in 1..=2 {
                match self.store.release_task(id, &self.owner).await {
                    Ok(true) => tracing::info!(task_id = %id, "task released for another replica"),
                    Ok(false) => {}
                    Err(e) if attempt == 1 => {
                        tracing::debug!(task_id = %id, error = %e, "release failed; trying again");
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(task_id = %id, error = %e, "cannot release task; its lease will expire")
                    }
                }
                break;
            }
        }
    }

    async fn execute(&self, claimed: &ClaimedTask, cancel: CancellationToken, abort: CancellationToken) -> RunOutcome {
        let id = claimed.task.id;
        // A task no attempt journaled has nothing to resume (the claim says so).
        let resume = if claimed.journaled {
            match self.store.step_journal(id).await {
                Ok(journal) => journal,
                Err(e) => return failure(format!("cannot read the step journal: {e}")),
            }
        } else {
            Default::default()
        };
        // Opened here and kept only in this run's memory; the column is
        // wiped when the task ends. No key, no run: never a plaintext fallback.
        let secrets: Map<String, Value> = match (&claimed.secrets, &self.keyring) {
            (None, _) => Map::new(),
            (Some(sealed), Some(keyring)) => match keyring.open(id, sealed) {
                Ok(secrets) => secrets,
                Err(e) => {
                    tracing::warn!(task_id = %id, error = %e, "cannot open the task's secrets; failing it");
                    return failure(format!("cannot read the task's secrets: {e}"));
                }
            },
            (Some(_), None) => return failure("cannot read the task's secrets: no key is configured".into()),
        };
        let written = claimed.events;
        let workspace = self.workspace_for(id);
        // A previous attempt on this machine may have left files behind.
        let _ = tokio::fs::remove_dir_all(&workspace).await;
        if let Err(e) = tokio::fs::create_dir_all(&workspace).await {
            return failure(format!("cannot create the task workspace: {e}"));
        }
        let saver = match (&self.keyring, self.settings.save_workspace) {
            (Some(keyring), true) => Some(Arc::new(WorkspaceSaver::new(
                id,
                &self.owner,
                workspace.clone(),
                keyring.clone(),
                Arc::new(self.store.clone()) as Arc<dyn WorkspaceBlobs>,
                self.workspace_bytes,
            ))),
            _ => None,
        };
        let mut notes = Vec::new();
        if !resume.is_empty() {
            match self.restore_workspace(id, saver.as_deref()).await {
                Ok(note) => notes.push(note),
                Err(outcome) => {
                    let _ = tokio::fs::remove_dir_all(&workspace).await;
                    return outcome;
                }
            }
        }
        let answers = match self.store.task_answers(id).await {
            Ok(answers) => answers,
            Err(e) => return failure(format!("cannot read the task's answers: {e}")),
        };
        let request = RunRequest {
            answers,
            task_id: RunId::Task(id),
            spec: claimed.task.spec.clone(),
            secrets,
            workspace: workspace.clone(),
            dry_run: false,
            cancel,
            abort: abort.clone(),
            resume,
            notes,
            deadline: Some(tokio::time::Instant::now() + Duration::from_secs(self.settings.task_timeout_seconds)),
            approval: self.approval_decision(claimed).await,
        };
        let events = Arc::new(EventWriter {
            store: self.store.clone(),
            task_id: id,
            owner: self.owner.clone(),
            lost: abort.clone(),
            queue: Mutex::new(Vec::new()),
            writing: tokio::sync::Mutex::new(()),
        });
        let sink = Arc::new(StoreSink {
            store: self.store.clone(),
            events: events.clone(),
            task_id: id,
            owner: self.owner.clone(),
            lost: abort,
            written: AtomicU64::new(written),
            limit: self.events_per_task,
            marked: AtomicBool::new(false),
            metrics: self.metrics.clone(),
            template: template_of(&claimed.task.spec).to_owned(),
            step_names: step_names(&claimed.task.spec),
            saver,
            outputs: Mutex::new(HashMap::new()),
            created_by: claimed.task.created_by.clone(),
        });
        let outcome = self.runner.run(request, sink).await;
        // The result, a parked gate or a release comes after every line the
        // run logged.
        events.drain().await;
        let _ = tokio::fs::remove_dir_all(&workspace).await;
        outcome
    }

    /// The decision the gate the task waited at hands its step; a gate
    /// whose deadline passed undecided is a timeout, recorded here.
    async fn approval_decision(
        &self,
        claimed: &ClaimedTask,
    ) -> Option<(String, crate::model::approval::ApprovalDecision)> {
        let state = claimed.approval.as_ref()?;
        let decision = state.effective_decision(chrono::Utc::now())?;
        if decision.verdict == Verdict::TimedOut && state.decision.is_none() {
            let audit = AuditEvent::failed(AuditKind::ApprovalTimedOut, "no decision before the gate's timeout")
                .task(claimed.task.id)
                .meta("stepId", state.gate.step_id.clone());
            if let Err(e) = self.store.record_run_audit(claimed.task.id, &self.owner, &audit).await {
                tracing::warn!(task_id = %claimed.task.id, error = %e, "cannot record the approval timeout");
            }
        }
        Some((state.gate.step_id.clone(), decision))
    }

    /// Lays out the workspace the finished steps of an earlier attempt left.
    /// A saved workspace that cannot be read fails the task (resuming on
    /// the wrong files would be worse); a task journaled without one (saving
    /// off, or a version before it) resumes on an empty workspace, and its
    /// log says so.
    /// Returns the line the run logs about it.
    async fn restore_workspace(&self, id: TaskId, saver: Option<&WorkspaceSaver>) -> Result<String, RunOutcome> {
        let saved = self
            .store
            .workspace_manifest(id)
            .await
            .map_err(|e| failure(format!("cannot read the saved workspace: {e}")))?;
        let note = match (saved, saver) {
            (Some(saved), Some(saver)) => {
                let started = Instant::now();
                let manifest = saver.restore(&saved.manifest).await.map_err(|e| {
                    tracing::warn!(task_id = %id, error = %e, "cannot restore the saved workspace");
                    failure(format!("cannot restore the workspace of the earlier attempt: {e}"))
                })?;
                tracing::info!(
                    task_id = %id,
                    files = manifest.files(),
                    bytes = manifest.bytes(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "workspace restored"
                );
                format!(
                    "Restored the workspace of the earlier attempt: {} files, {} bytes",
                    manifest.files(),
                    manifest.bytes()
                )
            }
            (Some(_), None) => "The workspace of the earlier attempt was saved but cannot be restored here \
                 (no secrets key, or worker.save_workspace is off); resuming on an empty workspace"
                .to_owned(),
            (None, _) => "No workspace was saved by the earlier attempt; resuming on an empty workspace".to_owned(),
        };
        Ok(note)
    }

    /// Writes the result; `true` when it landed (the lease was still ours).
    async fn record_outcome(&self, id: TaskId, outcome: &RunEnd) -> bool {
        for attempt in 0u32.. {
            match self
                .store
                .finish_task(id, &self.owner, outcome.status.into(), &outcome.final_events)
                .await
            {
                Ok(true) => {
                    tracing::info!(task_id = %id, status = %TaskStatus::from(outcome.status), "task finished");
                    return true;
                }
                Ok(false) => {
                    tracing::warn!(task_id = %id, "task ended but its lease was taken over; result discarded");
                    return false;
                }
                Err(e) => {
                    tracing::warn!(task_id = %id, attempt, error = %e, "cannot record task result, retrying");
                    if attempt + 1 >= RESULT_WRITE_ATTEMPTS {
                        break;
                    }
                    tokio::time::sleep(RESULT_WRITE_BACKOFF.delay(attempt)).await;
                }
            }
        }
        tracing::error!(task_id = %id, "could not record the task result; the lease will expire");
        false
    }
}

/// The span of one task run. ERROR level so that it, and the task id it puts
/// on every log line of the run, exists whatever `log.level` says.
fn task_span(claimed: &ClaimedTask) -> tracing::Span {
    let template = template_of(&claimed.task.spec);
    tracing::error_span!(
        "task",
        task_id = %claimed.task.id,
        template = %template,
        attempt = claimed.attempts,
        otel.name = %format!("task {template}"),
        result = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    )
}

fn failure(message: String) -> RunOutcome {
    RunOutcome::Finished(RunEnd::failed("Error", message))
}
