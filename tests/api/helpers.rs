//! `spawn_app()` starts the real service on a random port against a fresh
//! PostgreSQL database, so tests read as scenarios against real HTTP.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::StatusCode;
use scaffolder::config::Settings;
use scaffolder::startup::Application;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::common::data::{test_data_dir, test_data_json};
pub use crate::common::db::admin_url;

/// The exchange `name` captured from Backstage 4.3.0 (`tests/data/api-golden`).
pub fn golden(name: &str) -> Value {
    test_data_json(&format!("api-golden/{name}.json"))
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db_url: String,
    pub shutdown: CancellationToken,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        scaffolder::telemetry::init(&scaffolder::config::LogSettings {
            format: scaffolder::config::LogFormat::Pretty,
            level: "info,scaffolder=debug".into(),
        });
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the service with test defaults, after `configure` adjusts them.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    init_logs();
    let db_name = format!("scaffolder_test_{}", uuid::Uuid::new_v4().simple());
    let mut settings = Settings::default();
    settings.database.url = format!("{}/{db_name}", admin_url()).into();
    settings.database.max_connections = 10;
    settings.server.bind = "127.0.0.1:0".into();
    settings.templates.dirs = vec![
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/templates"),
        test_data_dir().join("compat-templates"),
    ];
    settings.worker.heartbeat_seconds = 1;
    settings.worker.lease_seconds = 5;
    configure(&mut settings);
    let db_url = settings.database.url.expose().to_owned();
    let app = Application::build(settings).await.expect("application starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let shutdown = app.shutdown_token();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::new(),
        db_url,
        shutdown,
    }
}

impl TestApp {
    /// A URL under the plugin mount, e.g. `api("/v2/tasks")`.
    pub fn api(&self, path: &str) -> String {
        format!("{}/api/scaffolder{path}", self.address)
    }

    pub async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        let res = self.client.get(self.api(path)).send().await.expect("request");
        let status = res.status();
        let body = res.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let res = self
            .client
            .post(self.api(path))
            .json(body)
            .send()
            .await
            .expect("request");
        let status = res.status();
        let body = res.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    pub async fn create_task(&self, template_ref: &str, values: Value) -> String {
        let (status, body) = self
            .post_json("/v2/tasks", &json!({ "templateRef": template_ref, "values": values }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "create failed: {body}");
        body["id"].as_str().expect("id").to_owned()
    }

    /// Follows the long-poll endpoint until the `completion` event arrives;
    /// returns every event seen. Fails after `limit`.
    pub async fn events_until_completion(&self, id: &str, limit: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut seen: Vec<Value> = Vec::new();
        let mut after: Option<i64> = None;
        loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no completion within {limit:?}: {seen:#?}"
            );
            let path = match after {
                Some(a) => format!("/v2/tasks/{id}/events?after={a}"),
                None => format!("/v2/tasks/{id}/events"),
            };
            let (status, body) = self.get_json(&path).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let events = body.as_array().expect("array").clone();
            let mut done = false;
            for event in events {
                let event_id = event["id"].as_i64().expect("integer id");
                if seen.iter().any(|e| e["id"] == event["id"]) {
                    continue;
                }
                after = Some(after.map_or(event_id, |a| a.max(event_id)));
                done |= event["type"] == "completion";
                seen.push(event);
            }
            if done {
                return seen;
            }
        }
    }

    /// Waits (through the event log, no sleeping) until the task has an
    /// event matching `pred`.
    pub async fn wait_for_event(&self, id: &str, pred: impl Fn(&Value) -> bool, limit: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        let mut after: Option<i64> = None;
        loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "event not seen within {limit:?}"
            );
            let path = match after {
                Some(a) => format!("/v2/tasks/{id}/events?after={a}"),
                None => format!("/v2/tasks/{id}/events"),
            };
            let (_, body) = self.get_json(&path).await;
            for event in body.as_array().cloned().unwrap_or_default() {
                if pred(&event) {
                    return event;
                }
                if let Some(n) = event["id"].as_i64() {
                    after = Some(after.map_or(n, |a| a.max(n)));
                }
            }
        }
    }

    pub async fn task(&self, id: &str) -> Value {
        let (status, body) = self.get_json(&format!("/v2/tasks/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

/// `(stepId, status)` of the step events, in order.
pub fn step_statuses(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| {
            let body = &e["body"];
            Some((body["stepId"].as_str()?.to_owned(), body["status"].as_str()?.to_owned()))
        })
        .collect()
}

/// Sorted keys of an object.
pub fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    k.sort();
    k
}

pub const LIMIT: Duration = crate::common::PATIENCE;
