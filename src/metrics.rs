//! Prometheus metrics of one process. The HTTP middleware, the event handlers
//! and the worker record into a [`Metrics`]; `GET /metrics` encodes it (after
//! the service has set the queue gauges from one query) in Prometheus' text
//! exposition format.
//!
//! Every label value comes from a bounded set: route patterns (never raw
//! paths), known HTTP methods, status codes, template refs, registered action
//! ids and fixed result words.

use std::time::Duration;

use prometheus::{Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// The `Content-Type` of the encoded metrics.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `route` label of requests that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

const HTTP_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
const STEP_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];
/// prom-client's default buckets, which Backstage's scaffolder histograms use.
const BACKSTAGE_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const TASK_BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    tasks_started: IntCounterVec,
    tasks_finished: IntCounterVec,
    task_duration: HistogramVec,
    steps: IntCounterVec,
    step_duration: HistogramVec,
    queue_depth: Gauge,
    queue_oldest_age: Gauge,
    tasks_running: IntGauge,
    lease_takeovers: IntCounter,
    sse_clients: IntGauge,
    long_poll_watchers: IntGauge,
    /// Backstage's own series (`scaffolder_task_count`, …), with its labels
    /// and results (`ok`, `failed`, `cancelled`, `skipped`), so dashboards
    /// built for Backstage's scaffolder read this service too.
    backstage: BackstageMetrics,
}

struct BackstageMetrics {
    task_count: IntCounterVec,
    task_duration: HistogramVec,
    step_count: IntCounterVec,
    step_duration: HistogramVec,
}

impl BackstageMetrics {
    fn new(r: &Registry) -> BackstageMetrics {
        let task = ["template", "result"];
        let step = ["template", "step", "result"];
        BackstageMetrics {
            task_count: counters(r, "task_count", "Count of task runs", &task),
            task_duration: histograms(r, "task_duration", "Duration of a task run", &task, BACKSTAGE_BUCKETS),
            step_count: counters(r, "step_count", "Count of step runs", &step),
            step_duration: histograms(r, "step_duration", "Duration of a step runs", &step, BACKSTAGE_BUCKETS),
        }
    }
}

/// Backstage's word for a task or step result.
fn backstage_result(result: &str) -> &str {
    match result {
        "completed" => "ok",
        other => other,
    }
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

/// Registers `metric`. The names, labels and buckets are constants of this
/// file, so a failure is a programming error caught by the first test.
fn register<M: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: M) -> M {
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are valid and unique");
    metric
}

fn counters(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        registry,
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter"),
    )
}

fn histograms(registry: &Registry, name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    register(registry, HistogramVec::new(opts, labels).expect("valid histogram"))
}

fn int_gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    register(registry, IntGauge::new(name, help).expect("valid gauge"))
}

fn gauge(registry: &Registry, name: &str, help: &str) -> Gauge {
    register(registry, Gauge::new(name, help).expect("valid gauge"))
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new_custom(Some("scaffolder".into()), None).expect("valid prefix");
        let r = &registry;
        let http = ["method", "route", "status"];
        let task = ["template", "result"];
        let step = ["action", "result"];
        Metrics {
            http_requests: counters(
                r,
                "http_requests_total",
                "HTTP requests answered, by method, route pattern and status code",
                &http,
            ),
            http_duration: histograms(
                r,
                "http_request_duration_seconds",
                "Time to the response head (event streams: to the start of the stream)",
                &http,
                HTTP_BUCKETS,
            ),
            tasks_started: counters(
                r,
                "tasks_started_total",
                "Task runs this process started (first runs, takeovers, resumed and retried tasks)",
                &["template"],
            ),
            tasks_finished: counters(
                r,
                "tasks_finished_total",
                "Task runs this process finished, by template and result",
                &task,
            ),
            task_duration: histograms(
                r,
                "task_duration_seconds",
                "Time from claim to recorded result of the task runs this process finished",
                &task,
                TASK_BUCKETS,
            ),
            steps: counters(r, "steps_total", "Steps this process ran, by action and result", &step),
            step_duration: histograms(
                r,
                "step_duration_seconds",
                "Time a step took, every `each` iteration included",
                &step,
                STEP_BUCKETS,
            ),
            queue_depth: gauge(
                r,
                "queue_depth",
                "Open tasks waiting for a worker, in the whole database (NaN when it cannot be read)",
            ),
            queue_oldest_age: gauge(
                r,
                "queue_oldest_age_seconds",
                "Age of the oldest open task; 0 when none is open (NaN when it cannot be read)",
            ),
            tasks_running: int_gauge(r, "tasks_running", "Tasks this process is running now"),
            lease_takeovers: register(
                r,
                IntCounter::new(
                    "lease_takeovers_total",
                    "Tasks this process took over from a replica whose lease expired",
                )
                .expect("valid counter"),
            ),
            sse_clients: int_gauge(r, "sse_clients", "Event streams (`…/eventstream`) open on this process"),
            long_poll_watchers: int_gauge(
                r,
                "long_poll_watchers",
                "Long-poll requests (`…/events`) waiting on this process",
            ),
            backstage: BackstageMetrics::new(r),
            registry,
        }
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "cannot encode the metrics");
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// One answered request. `route` is the matched pattern, `None` when no route matched.
    pub fn http_request(&self, method: &str, route: Option<&str>, status: u16, elapsed: Duration) {
        let status = status.to_string();
        let labels = [method_label(method), route.unwrap_or(UNMATCHED_ROUTE), status.as_str()];
        self.http_requests.with_label_values(&labels).inc();
        self.http_duration
            .with_label_values(&labels)
            .observe(elapsed.as_secs_f64());
    }

    pub fn task_started(&self, template: &str) {
        self.tasks_started.with_label_values(&[template]).inc();
    }

    /// `result` is the task's final status (`completed`, `failed`, `cancelled`).
    pub fn task_finished(&self, template: &str, result: &str, elapsed: Duration) {
        let labels = [template, result];
        self.tasks_finished.with_label_values(&labels).inc();
        self.task_duration
            .with_label_values(&labels)
            .observe(elapsed.as_secs_f64());
        let labels = [template, backstage_result(result)];
        self.backstage.task_count.with_label_values(&labels).inc();
        self.backstage
            .task_duration
            .with_label_values(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// `result`: `completed`, `failed`, `cancelled` or `skipped`. `step` is
    /// the step's name (Backstage's label), `action` its action id (ours).
    pub fn step_finished(&self, template: &str, step: &str, action: &str, result: &str, elapsed: Duration) {
        let labels = [action, result];
        self.steps.with_label_values(&labels).inc();
        self.step_duration
            .with_label_values(&labels)
            .observe(elapsed.as_secs_f64());
        // As Backstage's tracker: a skipped step is timed but not counted.
        let labels = [template, step, backstage_result(result)];
        if result != "skipped" {
            self.backstage.step_count.with_label_values(&labels).inc();
        }
        self.backstage
            .step_duration
            .with_label_values(&labels)
            .observe(elapsed.as_secs_f64());
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
pub struct InFlight(IntGauge);

impl InFlight {
    fn new(gauge: &IntGauge) -> InFlight {
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
        m.step_finished(
            "template:default/x",
            "Log",
            "debug:log",
            "completed",
            Duration::from_millis(20),
        );
        m.set_queue(Some((3, 12.5)));
        let guard = m.sse_client();
        let text = m.encode();
        for line in [
            r#"scaffolder_http_requests_total{method="GET",route="/api/scaffolder/v2/tasks/{taskId}",status="200"} 1"#,
            "# TYPE scaffolder_http_requests_total counter",
            r#"scaffolder_http_requests_total{method="OTHER",route="unmatched",status="404"} 1"#,
            r#"scaffolder_tasks_started_total{template="template:default/x"} 1"#,
            r#"scaffolder_tasks_finished_total{result="completed",template="template:default/x"} 1"#,
            r#"scaffolder_task_duration_seconds_count{result="completed",template="template:default/x"} 1"#,
            r#"scaffolder_steps_total{action="debug:log",result="completed"} 1"#,
            "scaffolder_queue_depth 3",
            "scaffolder_queue_oldest_age_seconds 12.5",
            "scaffolder_sse_clients 1",
            "scaffolder_tasks_running 0",
            // Backstage's names, labels and result words.
            "# TYPE scaffolder_task_count counter",
            r#"scaffolder_task_count{result="ok",template="template:default/x"} 1"#,
            r#"scaffolder_task_duration_bucket{result="ok",template="template:default/x",le="2.5"} 1"#,
            r#"scaffolder_step_count{result="ok",step="Log",template="template:default/x"} 1"#,
            r#"scaffolder_step_duration_count{result="ok",step="Log",template="template:default/x"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        drop(guard);
        assert!(m.encode().lines().any(|l| l == "scaffolder_sse_clients 0"));
        m.step_finished(
            "template:default/x",
            "Maybe",
            "debug:log",
            "skipped",
            Duration::from_millis(1),
        );
        let text = m.encode();
        assert!(text.contains(
            r#"scaffolder_step_duration_count{result="skipped",step="Maybe",template="template:default/x"} 1"#
        ));
        assert!(
            !text.contains(r#"scaffolder_step_count{result="skipped""#),
            "Backstage does not count skipped steps"
        );
        m.set_queue(None);
        assert!(m.encode().lines().any(|l| l == "scaffolder_queue_depth NaN"));
    }
}
