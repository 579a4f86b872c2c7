//! `limits.sse_streams_per_client`: how many event streams one client may
//! hold open at once in this process. A client is its authenticated
//! principal, else its peer IP address.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::ServiceError;

#[derive(Debug)]
pub struct StreamLimiter {
    max: usize,
    open: Mutex<HashMap<String, usize>>,
}

/// One open stream; dropping it frees the slot.
#[derive(Debug)]
pub struct StreamPermit {
    limiter: Arc<StreamLimiter>,
    client: String,
}

impl StreamLimiter {
    pub fn new(max: usize) -> Arc<StreamLimiter> {
        Arc::new(StreamLimiter {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for `client`, or `TooManyRequests` when it holds `max` streams.
    pub fn acquire(self: &Arc<Self>, client: &str) -> Result<StreamPermit, ServiceError> {
        let mut open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = open.entry(client.to_owned()).or_insert(0);
        if *count >= self.max {
            return Err(ServiceError::TooManyRequests(format!(
                "Too many open event streams: at most {} per client (limits.sse_streams_per_client)",
                self.max
            )));
        }
        *count += 1;
        Ok(StreamPermit {
            limiter: self.clone(),
            client: client.to_owned(),
        })
    }

    /// Streams open for `client`.
    pub fn open_for(&self, client: &str) -> usize {
        let open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        open.get(client).copied().unwrap_or(0)
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut open = self
            .limiter
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = open.get_mut(&self.client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_holds_at_most_max_streams_and_dropping_frees_a_slot() {
        let limiter = StreamLimiter::new(2);
        let a = limiter.acquire("user:default/a").unwrap();
        let _b = limiter.acquire("user:default/a").unwrap();
        assert!(matches!(
            limiter.acquire("user:default/a"),
            Err(ServiceError::TooManyRequests(_))
        ));
        assert!(limiter.acquire("10.0.0.1").is_ok());
        drop(a);
        assert_eq!(limiter.open_for("user:default/a"), 1);
        assert!(limiter.acquire("user:default/a").is_ok());
    }
}
