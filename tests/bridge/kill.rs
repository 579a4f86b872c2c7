//! The bridge dies in the middle of a step (SIGKILL): the step fails with a
//! clear error naming the bridge, and once the bridge is back a retry of
//! the task succeeds.

use serde_json::json;

use super::custom::{start_waiting_task, work_template, Scratch};
use super::helpers::{app_with_bridge, bridge_dir, Bridge, Modules};
use crate::api::helpers::LIMIT;

#[tokio::test]
async fn a_bridge_killed_mid_step_fails_the_step_clearly_and_a_retry_succeeds() {
    let Some(dir) = bridge_dir() else { return };
    let mut bridge = Bridge::start(&dir, Modules::TestModule).await;
    let scratch = Scratch::new();
    let templates = work_template(scratch.root.path());
    let app = app_with_bridge(&bridge, true, &templates, &scratch.root.path().join("git")).await;

    let go_on = scratch.root.path().join("go-on");
    let id = start_waiting_task(&app, &scratch, &go_on, &scratch.root.path().join("aborted")).await;
    bridge.kill();
    let events = app.events_until_completion(&id, LIMIT).await;
    let task = app.task(&id).await;
    assert_eq!(task["status"], "failed");
    let failure = events
        .iter()
        .find(|e| e["type"] == "completion")
        .map(|e| e["body"]["error"]["message"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    assert!(
        failure.contains(&format!(
            "The action bridge at {} stopped while running test:bridge:work",
            bridge.url
        )),
        "{failure}"
    );

    bridge.restart().await;
    std::fs::write(&go_on, "go on").unwrap();
    let (code, body) = app.post_json(&format!("/v2/tasks/{id}/retry"), &json!({})).await;
    assert_eq!(code, reqwest::StatusCode::CREATED, "{body}");
    let events = app.events_until_completion(&id, LIMIT).await;
    let log: Vec<&str> = events.iter().filter_map(|e| e["body"]["message"].as_str()).collect();
    assert_eq!(app.task(&id).await["status"], "completed", "{log:#?}\n{}", bridge.log());
    // The checkpoint the killed attempt recorded was reused.
    assert_eq!(std::fs::read_to_string(scratch.path("counter")).unwrap(), "svc\n");
}
