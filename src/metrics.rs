//! Prometheus metrics of one process. The HTTP middleware, the event handlers
//! and the worker record into a [`Metrics`]; `GET /metrics` encodes it (after
//! the service has set the queue gauges from one query).
//!
//! Every label value comes from a bounded set: route patterns (never raw
//! paths), known HTTP methods, status codes, template refs, registered action
//! ids and fixed result words.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The `Content-Type` of the encoded metrics.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `route` label of requests that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: &'static str,
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TemplateLabels {
    template: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    template: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    action: String,
    result: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn http_buckets() -> Histogram {
    Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
}

fn step_buckets() -> Histogram {
    Histogram::new([
        0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
    ])
}

fn task_buckets() -> Histogram {
    Histogram::new([
        0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
    ])
}

pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Histograms<HttpLabels>,
    tasks_started: Family<TemplateLabels, Counter>,
    tasks_finished: Family<TaskLabels, Counter>,
    task_duration: Histograms<TaskLabels>,
    steps: Family<StepLabels, Counter>,
    step_duration: Histograms<StepLabels>,
    queue_depth: Gauge<f64, AtomicU64>,
    queue_oldest_age: Gauge<f64, AtomicU64>,
    tasks_running: Gauge,
    lease_takeovers: Counter,
    sse_clients: Gauge,
    long_poll_watchers: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("scaffolder");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route pattern and status code",
            http_requests.clone(),
        );
        let http_duration: Histograms<HttpLabels> = Family::new_with_constructor(http_buckets);
        registry.register(
            "http_request_duration_seconds",
            "Time to the response head (event streams: to the start of the stream)",
            http_duration.clone(),
        );
        let tasks_started = Family::<TemplateLabels, Counter>::default();
        registry.register(
            "tasks_started",
            "Task runs this process started (first runs, resumed takeovers and retries)",
            tasks_started.clone(),
        );
        let tasks_finished = Family::<TaskLabels, Counter>::default();
        registry.register(
            "tasks_finished",
            "Task runs this process finished, by template and result",
            tasks_finished.clone(),
        );
        let task_duration: Histograms<TaskLabels> = Family::new_with_constructor(task_buckets);
        registry.register(
            "task_duration_seconds",
            "Time from claim to recorded result of the task runs this process finished",
            task_duration.clone(),
        );
        let steps = Family::<StepLabels, Counter>::default();
        registry.register("steps", "Steps this process ran, by action and result", steps.clone());
        let step_duration: Histograms<StepLabels> = Family::new_with_constructor(step_buckets);
        registry.register(
            "step_duration_seconds",
            "Time a step took, every `each` iteration included",
            step_duration.clone(),
        );
        let queue_depth = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "queue_depth",
            "Open tasks waiting for a worker, in the whole database (NaN when it cannot be read)",
            queue_depth.clone(),
        );
        let queue_oldest_age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "queue_oldest_age_seconds",
            "Age of the oldest open task; 0 when none is open (NaN when it cannot be read)",
            queue_oldest_age.clone(),
        );
        let tasks_running = Gauge::default();
        registry.register(
            "tasks_running",
            "Tasks this process is running now",
            tasks_running.clone(),
        );
        let lease_takeovers = Counter::default();
        registry.register(
            "lease_takeovers",
            "Tasks this process took over from a replica whose lease expired",
            lease_takeovers.clone(),
        );
        let sse_clients = Gauge::default();
        registry.register(
            "sse_clients",
            "Event streams (`…/eventstream`) open on this process",
            sse_clients.clone(),
        );
        let long_poll_watchers = Gauge::default();
        registry.register(
            "long_poll_watchers",
            "Long-poll requests (`…/events`) waiting on this process",
            long_poll_watchers.clone(),
        );
        Metrics {
            registry,
            http_requests,
            http_duration,
            tasks_started,
            tasks_finished,
            task_duration,
            steps,
            step_duration,
            queue_depth,
            queue_oldest_age,
            tasks_running,
            lease_takeovers,
            sse_clients,
            long_poll_watchers,
        }
    }

    /// The text exposition (OpenMetrics) of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// One answered request. `route` is the matched pattern, `None` when no route matched.
    pub fn http_request(&self, method: &str, route: Option<&str>, status: u16, elapsed: Duration) {
        let labels = HttpLabels {
            method: method_label(method),
            route: route.unwrap_or(UNMATCHED_ROUTE).to_owned(),
            status: status.to_string(),
        };
        self.http_requests.get_or_create(&labels).inc();
        self.http_duration.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }

    pub fn task_started(&self, template: &str) {
        let labels = TemplateLabels {
            template: template.to_owned(),
        };
        self.tasks_started.get_or_create(&labels).inc();
    }

    /// `result` is the task's final status (`completed`, `failed`, `cancelled`).
    pub fn task_finished(&self, template: &str, result: &'static str, elapsed: Duration) {
        let labels = TaskLabels {
            template: template.to_owned(),
            result,
        };
        self.tasks_finished.get_or_create(&labels).inc();
        self.task_duration.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }

    /// `result`: `completed`, `failed`, `cancelled` or `skipped`.
    pub fn step_finished(&self, action: &str, result: &'static str, elapsed: Duration) {
        let labels = StepLabels {
            action: action.to_owned(),
            result,
        };
        self.steps.get_or_create(&labels).inc();
        self.step_duration.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }

    pub fn lease_takeover(&self) {
        self.lease_takeovers.inc();
    }

    /// Sets the queue gauges; `None` when the database could not be asked.
    pub fn set_queue(&self, open_and_oldest_age: Option<(i64, f64)>) {
        let (depth, age) = match open_and_oldest_age {
            Some((open, age)) => (open as f64, age),
            None => (f64::NAN, f64::NAN),
        };
        self.queue_depth.set(depth);
        self.queue_oldest_age.set(age);
    }

    /// Counts a running task until the guard is dropped.
    pub fn task_running(&self) -> InFlight {
        InFlight::new(&self.tasks_running)
    }

    /// Counts an open event stream until the guard is dropped.
    pub fn sse_client(&self) -> InFlight {
        InFlight::new(&self.sse_clients)
    }

    /// Counts a waiting long-poll request until the guard is dropped.
    pub fn long_poll_watcher(&self) -> InFlight {
        InFlight::new(&self.long_poll_watchers)
    }
}

/// Methods outside the standard set share one label, so a client inventing
/// methods cannot grow the series.
fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "OTHER",
    }
}

/// Increments a gauge now and decrements it when dropped, so every exit path
/// (client gone, task aborted, panic) gives the count back.
#[must_use = "the gauge goes back down when the guard is dropped"]
pub struct InFlight(Gauge);

impl InFlight {
    fn new(gauge: &Gauge) -> InFlight {
        gauge.inc();
        InFlight(gauge.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_labelled_series_and_gauges() {
        let m = Metrics::new();
        m.http_request(
            "GET",
            Some("/api/scaffolder/v2/tasks/{taskId}"),
            200,
            Duration::from_millis(3),
        );
        m.http_request("BREW", None, 404, Duration::from_millis(1));
        m.task_started("template:default/x");
        m.task_finished("template:default/x", "completed", Duration::from_secs(2));
        m.step_finished("debug:log", "completed", Duration::from_millis(20));
        m.set_queue(Some((3, 12.5)));
        let guard = m.sse_client();
        let text = m.encode();
        for line in [
            r#"scaffolder_http_requests_total{method="GET",route="/api/scaffolder/v2/tasks/{taskId}",status="200"} 1"#,
            r#"scaffolder_http_requests_total{method="OTHER",route="unmatched",status="404"} 1"#,
            r#"scaffolder_tasks_started_total{template="template:default/x"} 1"#,
            r#"scaffolder_tasks_finished_total{template="template:default/x",result="completed"} 1"#,
            r#"scaffolder_task_duration_seconds_count{template="template:default/x",result="completed"} 1"#,
            r#"scaffolder_steps_total{action="debug:log",result="completed"} 1"#,
            "scaffolder_queue_depth 3.0",
            "scaffolder_queue_oldest_age_seconds 12.5",
            "scaffolder_sse_clients 1",
            "scaffolder_tasks_running 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        drop(guard);
        assert!(m.encode().lines().any(|l| l == "scaffolder_sse_clients 0"));
        m.set_queue(None);
        assert!(m.encode().lines().any(|l| l == "scaffolder_queue_depth NaN"));
    }
}
