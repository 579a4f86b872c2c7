//! Following a task's events. One PostgreSQL listener per process fans
//! notifications out to every watcher, so the database work of watching is a
//! query per new event batch, not a query per watcher per second.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::model::{EventType, TaskEvent, TaskId};
use crate::store::{Store, StoreError, EVENTS_CHANNEL};

/// How long a watcher waits without a notification before it looks anyway
/// (covers a listener reconnect).
const FALLBACK_POLL: Duration = Duration::from_secs(5);

pub struct EventHub {
    store: Store,
    tx: broadcast::Sender<TaskId>,
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
        let mut delay = Duration::from_millis(200);
        loop {
            let mut listener = tokio::select! {
                _ = shutdown.cancelled() => return,
                l = self.store.listener(&[EVENTS_CHANNEL]) => match l {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "event listener cannot connect; retrying");
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(delay) => {}
                        }
                        delay = (delay * 2).min(Duration::from_secs(10));
                        continue;
                    }
                },
            };
            delay = Duration::from_millis(200);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    n = listener.recv() => match n {
                        Ok(n) => {
                            if let Some(id) = TaskId::parse(n.payload()) {
                                // No receivers is fine: nobody is watching.
                                let _ = self.tx.send(id);
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "event listener lost its connection");
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
        }
    }
}

pub struct EventWatch {
    store: Store,
    task_id: TaskId,
    after: Option<i64>,
    rx: broadcast::Receiver<TaskId>,
    done: bool,
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
            let events = self.store.list_events(self.task_id, self.after).await?;
            if !events.is_empty() {
                if let Some(max) = events.iter().map(|e| e.id).max() {
                    self.after = Some(self.after.map_or(max, |a| a.max(max)));
                }
                if events.iter().any(|e| e.event_type == EventType::Completion) {
                    self.done = true;
                }
                return Ok(events);
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                return Ok(Vec::new());
            }
            self.wait_for_notification(deadline).await;
        }
    }

    async fn wait_for_notification(&mut self, deadline: Option<tokio::time::Instant>) {
        let fallback = tokio::time::Instant::now() + FALLBACK_POLL;
        let until = deadline.map_or(fallback, |d| d.min(fallback));
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return,
                r = self.rx.recv() => match r {
                    Ok(id) if id == self.task_id => return,
                    Ok(_) => continue,
                    // Missed notifications: look in the database.
                    Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Err(broadcast::error::RecvError::Closed) => {
                        tokio::time::sleep_until(until).await;
                        return;
                    }
                },
            }
        }
    }
}
