//! Wire fidelity with Backstage 4.3 for the behaviours captured in
//! `tests/data/api-golden-extra` (see its README for how they were taken):
//! each request is replayed and our answer compared with Backstage's.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

/// A capture of `tests/data/api-golden-extra`.
fn capture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/api-golden-extra")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("capture is JSON")
}

/// Replays the capture's request; returns our answer and Backstage's.
async fn replay(app: &TestApp, name: &str) -> ((StatusCode, Value), (u16, Value)) {
    let fixture = capture(name);
    let path = fixture["request"]["path"]
        .as_str()
        .and_then(|p| p.strip_prefix("/api/scaffolder"))
        .expect("path under the mount")
        .to_owned();
    let ours = match fixture["request"]["method"].as_str() {
        Some("GET") => app.get_json(&path).await,
        _ => app.post_json(&path, &fixture["request"]["body"]).await,
    };
    let status = fixture["response"]["status"].as_u64().expect("status") as u16;
    (ours, (status, fixture["response"]["body"].clone()))
}

async fn assert_same_answer(app: &TestApp, name: &str) {
    let ((status, body), (their_status, their_body)) = replay(app, name).await;
    assert_eq!(status.as_u16(), their_status, "{name}: {body}");
    assert_eq!(body, their_body, "{name}");
}

#[tokio::test]
async fn secrets_are_checked_against_the_template_schema_like_backstage() {
    let app = spawn_app().await;
    assert_same_answer(&app, "tasks-create-400-secrets-required").await;
    assert_same_answer(&app, "tasks-create-400-secrets-invalid").await;
    assert_same_answer(&app, "dry-run-400-secrets-required").await;

    let ((status, created), _) = replay(&app, "tasks-create-secrets-ok").await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id");
    let retry = capture("tasks-retry-400-secrets-required");
    let (status, body) = app.post_json(&format!("/v2/tasks/{id}/retry"), &json!({})).await;
    assert_eq!(
        status.as_u16() as u64,
        retry["response"]["status"].as_u64().unwrap_or(0),
        "{body}"
    );
    assert_eq!(body, retry["response"]["body"]);
}

#[tokio::test]
async fn uploads_outside_the_template_directory_are_refused_before_any_step() {
    let app = spawn_app().await;
    assert_same_answer(&app, "dry-run-403-upload-outside").await;
    assert_same_answer(&app, "dry-run-403-upload-absolute").await;

    // Refused even when no step would ever read the file, and before a step
    // that would fail runs (Backstage writes the uploads first).
    let body = json!({
        "template": {"apiVersion": "scaffolder.backstage.io/v1beta3", "kind": "Template", "metadata": {"name": "x"},
            "spec": {"steps": [{"id": "boom", "action": "no:such-action"}]}},
        "values": {},
        "directoryContents": [{"path": "../../elsewhere/f", "base64Content": ""}]
    });
    let (status, answer) = app.post_json("/v2/dry-run", &body).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(answer["error"]["name"], "NotAllowedError");
}

#[tokio::test]
async fn parameter_schema_carries_presentation_ui_options_when_and_form_decorators() {
    let app = spawn_app().await;
    assert_same_answer(&app, "parameter-schema-full").await;
}
