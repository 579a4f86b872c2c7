//! Following a task's events. One PostgreSQL listener per process fans
//! notifications out to every watcher, and a watcher queries only when its
//! task was notified (or the listener reconnected), so the database work of
//! watching is a query per new event batch, whatever the number of watchers.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::model::{EventType, TaskEvent, TaskId};
use crate::store::{Store, StoreError, EVENTS_CHANNEL};

/// How long a watcher waits before it looks anyway when the hub is gone.
const FALLBACK_POLL: Duration = Duration::from_secs(5);

/// What the listener tells the watchers.
#[derive(Debug, Clone, Copy)]
enum Wake {
    /// This task has new events.
    Task(TaskId),
    /// The listener (re)connected: notifications may have been missed while
    /// it was away, so every watcher looks once.
    All,
}

pub struct EventHub {
    store: Store,
    tx: broadcast::Sender<Wake>,
}

impl EventHub {
    /// Starts the listener; it reconnects until `shutdown` fires.
    pub fn start(store: Store, shutdown: CancellationToken) -> Arc<EventHub> {
        let (tx, _) = broadcast::channel(4096);
        let hub = Arc::new(EventHub { store, tx });
        let task_hub = hub.clone();
        tokio::spawn(async move { task_hub.listen(shutdown).await });
        hub
    }

    async fn listen(&self, shutdown: CancellationToken) {
        const BACKOFF: Backoff = Backoff::doubling(Duration::from_millis(200)).capped(Duration::from_secs(10));
        let mut failures = 0u32;
        loop {
            let mut listener = tokio::select! {
                _ = shutdown.cancelled() => return,
                l = self.store.listener(&[EVENTS_CHANNEL]) => match l {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "event listener cannot connect; retrying");
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(BACKOFF.delay(failures)) => {}
                        }
                        failures = failures.saturating_add(1);
                        continue;
                    }
                },
            };
            failures = 0;
            // No receivers is fine: nobody is watching.
            let _ = self.tx.send(Wake::All);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    // `try_recv` (unlike `recv`) reports a lost connection
                    // instead of reconnecting silently, so the reconnect
                    // above can wake everyone.
                    n = listener.try_recv() => match n {
                        Ok(Some(n)) => {
                            if let Some(id) = TaskId::parse(n.payload()) {
                                let _ = self.tx.send(Wake::Task(id));
                            }
                        }
                        Ok(None) => {
                            tracing::warn!("event listener lost its connection");
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "event listener failed");
                            break;
                        }
                    },
                }
            }
        }
    }

    /// Follows `task_id` from event id `after` (exclusive).
    pub fn watch(&self, task_id: TaskId, after: Option<i64>) -> EventWatch {
        EventWatch {
            store: self.store.clone(),
            task_id,
            after,
            rx: self.tx.subscribe(),
            done: false,
            stale: true,
        }
    }
}

pub struct EventWatch {
    store: Store,
    task_id: TaskId,
    after: Option<i64>,
    rx: broadcast::Receiver<Wake>,
    done: bool,
    /// The database may hold events not yet returned: at the start, and after
    /// a notification for this task, a reconnect of the listener or missed
    /// notifications. Only then does `next_batch` query.
    stale: bool,
}

impl EventWatch {
    /// Whether the `completion` event has been delivered.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The next events; waits for at least one until `deadline` passes
    /// (then `Ok(vec![])`). With `None` it waits as long as it takes.
    pub async fn next_batch(&mut self, deadline: Option<tokio::time::Instant>) -> Result<Vec<TaskEvent>, StoreError> {
        loop {
            if self.stale {
                self.stale = false;
                let events = match self.store.list_events(self.task_id, self.after).await {
                    Ok(events) => events,
                    Err(e) => {
                        self.stale = true;
                        return Err(e);
                    }
                };
                if !events.is_empty() {
                    if let Some(max) = events.iter().map(|e| e.id).max() {
                        self.after = Some(self.after.map_or(max, |a| a.max(max)));
                    }
                    if events.iter().any(|e| e.event_type == EventType::Completion) {
                        self.done = true;
                    }
                    return Ok(events);
                }
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                return Ok(Vec::new());
            }
            self.wait_for_notification(deadline).await;
        }
    }

    /// Waits until this task may have news (`stale`) or `deadline` passes.
    async fn wait_for_notification(&mut self, deadline: Option<tokio::time::Instant>) {
        let sleep = |until: Option<tokio::time::Instant>| async move {
            match until {
                Some(until) => tokio::time::sleep_until(until).await,
                None => std::future::pending().await,
            }
        };
        loop {
            tokio::select! {
                _ = sleep(deadline) => return,
                r = self.rx.recv() => match r {
                    Ok(Wake::Task(id)) if id == self.task_id => {
                        self.stale = true;
                        return;
                    }
                    Ok(Wake::Task(_)) => continue,
                    Ok(Wake::All) | Err(broadcast::error::RecvError::Lagged(_)) => {
                        self.stale = true;
                        return;
                    }
                    // The hub is gone (shutdown): poll slowly until the deadline.
                    Err(broadcast::error::RecvError::Closed) => {
                        let fallback = tokio::time::Instant::now() + FALLBACK_POLL;
                        sleep(Some(deadline.map_or(fallback, |d| d.min(fallback)))).await;
                        self.stale = true;
                        return;
                    }
                },
            }
        }
    }
}
