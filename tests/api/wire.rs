//! Wire fidelity with Backstage 4.3 for the behaviours captured in
//! `tests/data/api-golden-extra` (see its README for how they were taken):
//! each request is replayed and our answer compared with Backstage's.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::api::helpers::{spawn_app, TestApp};

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

fn with_default_environment(settings: &mut scaffolder::config::Settings) {
    let environment = &mut settings.default_environment;
    environment.parameters.insert("region".into(), "eu-west-1".into());
    environment
        .secrets
        .insert("deployKey".into(), "s3cr3t-deploy-key".into());
}

/// The files, output and step statuses of a dry-run, as the dry-run
/// fixtures compare them.
fn comparable(body: &Value) -> Value {
    let statuses: Vec<Value> = body["log"]
        .as_array()
        .map(|log| {
            log.iter()
                .filter(|e| e["body"].get("status").is_some())
                .map(|e| json!([e["body"]["stepId"], e["body"]["status"]]))
                .collect()
        })
        .unwrap_or_default();
    json!({"directoryContents": body["directoryContents"], "output": body["output"], "steps": body["steps"], "statuses": statuses})
}

#[tokio::test]
async fn default_environment_is_seen_by_templates_like_backstage() {
    let app = crate::api::helpers::spawn_app_with(with_default_environment).await;
    // Dry-run: the parameters, never the secrets (the input log shows them as ***).
    let ((status, body), (their_status, theirs)) = replay(&app, "dry-run-default-environment").await;
    assert_eq!(status.as_u16(), their_status, "{body}");
    assert_eq!(comparable(&body), comparable(&theirs));
    let log = body["log"].to_string();
    assert!(log.contains(r#"region=eu-west-1 key=***"#), "{log}");
    assert!(!log.contains("s3cr3t-deploy-key"), "{log}");

    // A task: both, with the secret scrubbed from its log and output.
    let id = app.create_task("template:default/environment", json!({})).await;
    let events = app.events_until_completion(&id, crate::api::helpers::LIMIT).await;
    let text = serde_json::to_string(&events).unwrap_or_default();
    assert!(text.contains("region=eu-west-1 key=***"), "{text}");
    assert!(!text.contains("s3cr3t-deploy-key"), "{text}");
    let task = app.task(&id).await;
    assert_eq!(task["status"], "completed", "{task}");
    let completion = events.last().cloned().unwrap_or_default();
    assert_eq!(completion["body"]["output"]["region"], "eu-west-1", "{completion}");
    assert_eq!(completion["body"]["output"]["key"], "***", "{completion}");
}

#[tokio::test]
async fn autocomplete_checks_its_body_and_provider_like_backstage() {
    let app = spawn_app().await;
    assert_same_answer(&app, "autocomplete-400-missing-token").await;
    // Backstage without a GitHub module refuses `github`; we ship the
    // provider, so the same refusal is checked with a provider nobody has.
    let capture = capture("autocomplete-400-unsupported");
    let (status, body) = app
        .post_json("/v2/autocomplete/bitbucket/repositories", &capture["request"]["body"])
        .await;
    assert_eq!(
        status.as_u16() as u64,
        capture["response"]["status"].as_u64().unwrap_or(0)
    );
    assert_eq!(body["error"]["name"], capture["response"]["body"]["error"]["name"]);
    assert_eq!(body["error"]["message"], "Unsupported provider: bitbucket");
    // An empty token passes the schema but not the router.
    let (status, body) = app
        .post_json("/v2/autocomplete/github/owners", &json!({"token": "", "context": {}}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["message"], "Missing token query parameter");
}

#[tokio::test]
async fn safe_values_render_as_their_text_like_backstage() {
    let app = spawn_app().await;
    let ((status, body), (their_status, theirs)) = replay(&app, "dry-run-safe-values").await;
    assert_eq!(status.as_u16(), their_status, "{body}");
    assert_eq!(body["output"], theirs["output"]);
}
