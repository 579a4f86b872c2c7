//! The `limits` section (and `server.body_limit_bytes`): each limit gives a
//! clear error in Backstage's error body shape.

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::api::helpers::{keys, spawn_app_with, TestApp, LIMIT};

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A one-step template fetching `./skeleton` with `action`.
fn fetch_template(action: &str) -> Value {
    json!({
        "apiVersion": "scaffolder.backstage.io/v1beta3",
        "kind": "Template",
        "metadata": {"name": "limits"},
        "spec": {"steps": [{"id": "fetch", "action": action, "input": {"url": "./skeleton"}}]},
    })
}

fn dry_run_body(action: &str, files: &[(&str, String)]) -> Value {
    json!({
        "template": fetch_template(action),
        "values": {},
        "directoryContents": files
            .iter()
            .map(|(path, content)| json!({"path": path, "base64Content": b64(content)}))
            .collect::<Vec<_>>(),
    })
}

fn assert_backstage_error(body: &Value, name: &str, status: u16, method: &str, url: &str, needle: &str) {
    assert_eq!(keys(body), vec!["error", "request", "response"], "{body}");
    assert_eq!(body["error"]["name"], name, "{body}");
    assert!(
        body["error"]["message"].as_str().is_some_and(|m| m.contains(needle)),
        "{needle} not in {body}"
    );
    assert_eq!(body["request"], json!({"method": method, "url": url}));
    assert_eq!(body["response"], json!({"statusCode": status}));
}

#[tokio::test]
async fn raw_bodies_over_the_limit_get_backstages_413_body() {
    let app = spawn_app_with(|s| s.server.body_limit_bytes = 1024).await;
    let id = uuid::Uuid::new_v4();
    let big = json!({"secrets": {"token": "a".repeat(4096)}}).to_string();
    let res = app
        .client
        .post(app.api(&format!("/v2/tasks/{id}/retry")))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(res.headers()["content-type"], "application/json; charset=utf-8");
    let body: Value = res.json().await.unwrap();
    assert_backstage_error(
        &body,
        "PayloadTooLargeError",
        413,
        "POST",
        &format!("/v2/tasks/{id}/retry"),
        "too large",
    );
}

#[tokio::test]
async fn dry_run_uploads_are_bounded_in_files_and_bytes() {
    let app = spawn_app_with(|s| {
        s.limits.dry_run_files = 2;
        s.limits.dry_run_bytes = 100;
    })
    .await;
    let three = dry_run_body(
        "fetch:plain",
        &[
            ("skeleton/a", "a".into()),
            ("skeleton/b", "b".into()),
            ("skeleton/c", "c".into()),
        ],
    );
    let (status, body) = app.post_json("/v2/dry-run", &three).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_backstage_error(&body, "InputError", 400, "POST", "/v2/dry-run", "limits.dry_run_files");

    let heavy = dry_run_body("fetch:plain", &[("skeleton/a", "x".repeat(101))]);
    let (status, body) = app.post_json("/v2/dry-run", &heavy).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_backstage_error(&body, "InputError", 400, "POST", "/v2/dry-run", "limits.dry_run_bytes");

    let fine = dry_run_body("fetch:plain", &[("skeleton/a", "x".repeat(100))]);
    let (status, body) = app.post_json("/v2/dry-run", &fine).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn skeletons_over_the_file_or_byte_limit_are_refused_before_copying() {
    let app = spawn_app_with(|s| {
        s.limits.skeleton_files = 2;
        s.limits.skeleton_bytes = 50;
    })
    .await;
    for action in ["fetch:template", "fetch:plain"] {
        let many = dry_run_body(
            action,
            &[
                ("skeleton/a", "a".into()),
                ("skeleton/b", "b".into()),
                ("skeleton/c", "c".into()),
            ],
        );
        let (status, body) = app.post_json("/v2/dry-run", &many).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{action}: {body}");
        assert_backstage_error(&body, "InputError", 400, "POST", "/v2/dry-run", "limits.skeleton_files");

        let heavy = dry_run_body(action, &[("skeleton/a", "x".repeat(51))]);
        let (status, body) = app.post_json("/v2/dry-run", &heavy).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{action}: {body}");
        assert_backstage_error(&body, "InputError", 400, "POST", "/v2/dry-run", "limits.skeleton_bytes");
    }
}

#[tokio::test]
async fn a_workspace_over_its_size_limit_fails_the_step() {
    let app = spawn_app_with(|s| s.limits.workspace_bytes = 1000).await;
    // 600 bytes of skeleton rendered twice: 1200 bytes in the workspace.
    let mut template = fetch_template("fetch:plain");
    template["spec"]["steps"] = json!([
        {"id": "one", "action": "fetch:plain", "input": {"url": "./skeleton", "targetPath": "one"}},
        {"id": "two", "action": "fetch:plain", "input": {"url": "./skeleton", "targetPath": "two"}},
    ]);
    let body = json!({"template": template, "values": {},
        "directoryContents": [{"path": "skeleton/f", "base64Content": b64(&"x".repeat(600))}]});
    let (status, body) = app.post_json("/v2/dry-run", &body).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_backstage_error(&body, "Error", 500, "POST", "/v2/dry-run", "limits.workspace_bytes");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("after step two")),
        "{body}"
    );
}

#[tokio::test]
async fn template_fuel_is_configurable() {
    let looping = "{% for i in range(0, 100000) %}x{% endfor %}";
    let small = spawn_app_with(|s| s.limits.template_fuel = 10_000).await;
    let body = dry_run_body("fetch:template", &[("skeleton/f", looping.into())]);
    let (status, answer) = small.post_json("/v2/dry-run", &body).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("execution budget of 10000")),
        "{answer}"
    );
    let default = spawn_app_with(|_| {}).await;
    let (status, answer) = default.post_json("/v2/dry-run", &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test]
async fn a_task_that_logs_too_much_keeps_its_status_events_and_one_marker() {
    let app = spawn_app_with(|s| s.limits.events_per_task = 15).await;
    let id = app.create_task("chatty", json!({"lines": 40})).await;
    let events = app.events_until_completion(&id, LIMIT).await;
    let completion = events.last().expect("completion");
    assert_eq!(completion["body"]["message"], "Run completed with status: completed");
    let markers = events
        .iter()
        .filter(|e| {
            e["body"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("limits.events_per_task"))
        })
        .count();
    assert_eq!(markers, 1, "{events:#?}");
    let lines = events
        .iter()
        .filter(|e| e["body"]["message"].as_str().is_some_and(|m| m.contains("line ")))
        .count();
    assert!(lines < 15, "{lines} log lines were kept");
    // Both steps still report their progress.
    let statuses = crate::api::helpers::step_statuses(&events);
    assert!(statuses.contains(&("done".into(), "completed".into())), "{statuses:?}");
    // Stored: at most the limit, the marker, the step status events and the completion.
    assert!(events.len() <= 15 + 1 + 4 + 1, "{} events", events.len());
}

async fn open_stream(app: &TestApp, id: &str) -> reqwest::Response {
    app.client
        .get(app.api(&format!("/v2/tasks/{id}/eventstream")))
        .send()
        .await
        .expect("eventstream")
}

#[tokio::test]
async fn a_client_over_its_event_stream_limit_gets_429() {
    let app = spawn_app_with(|s| {
        s.limits.sse_streams_per_client = 1;
        s.server.sse_keepalive_seconds = 1;
    })
    .await;
    let id = app.create_task("wait-and-fail", json!({"seconds": 30})).await;
    let first = open_stream(&app, &id).await;
    assert_eq!(first.status(), StatusCode::OK);
    let second = open_stream(&app, &id).await;
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: Value = second.json().await.unwrap();
    assert_backstage_error(
        &body,
        "TooManyRequestsError",
        429,
        "GET",
        &format!("/v2/tasks/{id}/eventstream"),
        "limits.sse_streams_per_client",
    );
    // Closing the first stream frees the slot (noticed at the next keep-alive).
    drop(first);
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let again = open_stream(&app, &id).await;
        if again.status() == StatusCode::OK {
            break;
        }
        assert_eq!(again.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(tokio::time::Instant::now() < deadline, "the slot was never freed");
    }
    let (status, _) = app.post_json(&format!("/v2/tasks/{id}/cancel"), &json!({})).await;
    assert_eq!(status, StatusCode::OK);
}
