//! A task from creation to its end: steps, failure, cancel, retry.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::api::helpers::{spawn_app, spawn_app_with, step_statuses, LIMIT};

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[tokio::test]
async fn a_successful_run_logs_every_step_and_renders_the_output() {
    let app = spawn_app().await;
    let id = app.create_task("wait-and-fail", json!({"seconds": 0})).await;
    let events = app.events_until_completion(&id, LIMIT).await;
    assert_eq!(events[0]["body"]["message"], "Starting up task with 4 steps");
    assert_eq!(
        step_statuses(&events),
        pairs(&[
            ("hello", "processing"),
            ("hello", "completed"),
            ("wait", "processing"),
            ("wait", "completed"),
            ("boom", "processing"),
            ("boom", "skipped"),
            ("bye", "processing"),
            ("bye", "completed"),
        ])
    );
    // debug:log writes its input, then the message, with Backstage's colour codes.
    assert!(events
        .iter()
        .any(|e| e["body"]["message"] == "\u{1b}[32minfo\u{1b}[39m: waiting 0s" && e["body"]["stepId"] == "hello"));
    let completion = events.last().unwrap();
    assert_eq!(completion["type"], "completion");
    assert_eq!(
        completion["body"],
        json!({"message": "Run completed with status: completed", "output": {"text": [{"title": "Waited", "content": "0 seconds"}]}})
    );
    // Event ids increase within the task; every event has Backstage's keys.
    let ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    for e in &events {
        let keys: Vec<&String> = e.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            vec!["id", "isTaskRecoverable", "taskId", "body", "type", "createdAt"]
        );
    }
    assert_eq!(app.task(&id).await["status"], "completed");
}

#[tokio::test]
async fn a_failing_step_fails_the_task_and_skips_the_rest() {
    let app = spawn_app().await;
    let id = app
        .create_task("wait-and-fail", json!({"seconds": 0, "fail": true}))
        .await;
    let events = app.events_until_completion(&id, LIMIT).await;
    let statuses = step_statuses(&events);
    assert!(statuses.contains(&("boom".into(), "failed".into())), "{statuses:?}");
    assert!(statuses.contains(&("bye".into(), "skipped".into())), "{statuses:?}");
    assert!(!statuses.contains(&("bye".into(), "completed".into())));
    let completion = events.last().unwrap();
    assert_eq!(completion["body"]["message"], "Run completed with status: failed");
    assert_eq!(completion["body"]["error"]["name"], "NotFoundError");
    assert!(completion["body"]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Template action with ID 'does-not:exist' is not registered"));
    assert_eq!(app.task(&id).await["status"], "failed");
}

#[tokio::test]
async fn cancel_stops_the_running_step_at_once() {
    let app = spawn_app().await;
    let id = app.create_task("wait-and-fail", json!({"seconds": 300})).await;
    app.wait_for_event(
        &id,
        |e| e["body"]["stepId"] == "wait" && e["body"]["status"] == "processing",
        LIMIT,
    )
    .await;
    let started = std::time::Instant::now();
    let (status, body) = app.post_json(&format!("/v2/tasks/{id}/cancel"), &Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "cancelled"}));

    let events = app.events_until_completion(&id, LIMIT).await;
    // A 300 s wait ended well before its time.
    assert!(started.elapsed().as_secs() < 20);
    let cancelled: Vec<&Value> = events.iter().filter(|e| e["type"] == "cancelled").collect();
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0]["body"]["stepId"], "wait");
    let statuses = step_statuses(&events);
    for step in ["wait", "boom", "bye"] {
        assert!(!statuses.contains(&(step.into(), "completed".into())), "{statuses:?}");
    }
    assert_eq!(app.task(&id).await["status"], "cancelled");

    // Cancelling again changes nothing and says so.
    let before = app.events_until_completion(&id, LIMIT).await.len();
    let (status, body) = app.post_json(&format!("/v2/tasks/{id}/cancel"), &Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "cancelled");
    assert!(body["message"].as_str().unwrap().contains("already finished"));
    assert_eq!(app.events_until_completion(&id, LIMIT).await.len(), before);
}

#[tokio::test]
async fn cancel_of_a_completed_task_keeps_its_status_and_events() {
    let app = spawn_app().await;
    let id = app.create_task("wait-and-fail", json!({"seconds": 0})).await;
    let events = app.events_until_completion(&id, LIMIT).await;
    // The client sends an empty body with a JSON content type.
    let res = app
        .client
        .post(app.api(&format!("/v2/tasks/{id}/cancel")))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "completed");
    assert_eq!(app.task(&id).await["status"], "completed");
    assert_eq!(app.events_until_completion(&id, LIMIT).await.len(), events.len());
}

#[tokio::test]
async fn cancel_before_start_ends_the_task_without_running_it() {
    let app = spawn_app_with(|s| s.worker.enabled = false).await;
    let id = app.create_task("wait-and-fail", json!({"seconds": 0})).await;
    let (status, _) = app.post_json(&format!("/v2/tasks/{id}/cancel"), &Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    let events = app.events_until_completion(&id, LIMIT).await;
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["cancelled", "completion"]);
    assert_eq!(app.task(&id).await["status"], "cancelled");
}

#[tokio::test]
async fn retry_reruns_a_finished_task_under_the_same_id() {
    let app = spawn_app().await;
    let id = app
        .create_task("wait-and-fail", json!({"seconds": 0, "fail": true}))
        .await;
    app.events_until_completion(&id, LIMIT).await;
    assert_eq!(app.task(&id).await["status"], "failed");

    let (status, body) = app.post_json(&format!("/v2/tasks/{id}/retry"), &json!({})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body, json!({"id": id}));
    let events = app.events_until_completion(&id, LIMIT).await;
    // The first run's completion is gone; a recovered event starts the new run.
    assert_eq!(events.iter().filter(|e| e["type"] == "completion").count(), 1);
    let recovered = events
        .iter()
        .position(|e| e["type"] == "recovered")
        .expect("recovered event");
    let starts: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| {
            e["body"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Starting up task"))
        })
        .map(|(i, _)| i)
        .collect();
    assert_eq!(starts.len(), 2);
    assert!(starts[0] < recovered && recovered < starts[1]);
    assert_eq!(app.task(&id).await["status"], "failed");
}

#[tokio::test]
async fn retry_of_a_running_task_is_a_conflict_and_unknown_is_404() {
    let app = spawn_app_with(|s| s.worker.enabled = false).await;
    let id = app.create_task("wait-and-fail", json!({"seconds": 0})).await;
    let (status, body) = app.post_json(&format!("/v2/tasks/{id}/retry"), &json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["name"], "ConflictError");
    for path in [
        "/v2/tasks/00000000-0000-0000-0000-000000000000/retry",
        "/v2/tasks/00000000-0000-0000-0000-000000000000/cancel",
        "/v2/tasks/nope/cancel",
    ] {
        let (status, body) = app.post_json(path, &json!({})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["error"]["name"], "NotFoundError");
    }
    let (status, body) = app
        .post_json(&format!("/v2/tasks/{id}/retry"), &json!({"secrets": {"a": 1}}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn step_timeouts_cleanup_steps_and_secret_redaction() {
    let app = spawn_app().await;
    let (status, body) = app
        .post_json(
            "/v2/tasks",
            &json!({"templateRef": "guarded", "values": {"seconds": 5}, "secrets": {"token": "tok-9f8e7d6c"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let started = std::time::Instant::now();
    let events = app.events_until_completion(&id, LIMIT).await;
    assert!(
        started.elapsed().as_secs() < 4,
        "the 300 ms timeout did not stop a 5 s wait"
    );
    let statuses = step_statuses(&events);
    assert!(statuses.contains(&("slow".into(), "failed".into())), "{statuses:?}");
    assert!(statuses.contains(&("next".into(), "skipped".into())), "{statuses:?}");
    assert!(
        statuses.contains(&("cleanup".into(), "completed".into())),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&("report".into(), "completed".into())),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&("celebrate".into(), "skipped".into())),
        "{statuses:?}"
    );
    let completion = events.last().unwrap();
    assert_eq!(completion["body"]["error"]["name"], "TimeoutError");
    assert!(completion["body"]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("timed out after 300ms"));
    // The secret reached the steps (it was redacted, not missing) and never the log.
    let text = Value::Array(events.clone()).to_string();
    assert!(!text.contains("tok-9f8e7d6c"), "{text}");
    assert!(text.contains("token is ***"), "{text}");
    assert!(text.contains("cleaning up after ***"), "{text}");
    let task = app.task(&id).await;
    assert_eq!(task["status"], "failed");
    assert!(!task.to_string().contains("tok-9f8e7d6c"));
}
