//! What `GET /metrics` answers: the process's metrics plus the queue gauges,
//! read from the database at scrape time.

use std::sync::Arc;

use crate::metrics::Metrics;
use crate::store::Store;

#[derive(Clone)]
pub struct MetricsService {
    store: Store,
    metrics: Arc<Metrics>,
}

impl MetricsService {
    pub fn new(store: Store, metrics: Arc<Metrics>) -> MetricsService {
        MetricsService { store, metrics }
    }

    /// Where the HTTP layer and the worker record.
    pub fn recorder(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The exposition text. An unreachable database does not fail the
    /// scrape: the queue gauges read NaN and everything else is reported.
    pub async fn render(&self) -> String {
        match self.store.queue_stats().await {
            Ok(stats) => self
                .metrics
                .set_queue(Some((stats.open, stats.oldest_open_age_seconds))),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the queue for /metrics");
                self.metrics.set_queue(None);
            }
        }
        self.metrics.encode()
    }
}
