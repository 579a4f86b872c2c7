use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{spawn_governed, ADMIN};
use crate::auth::helpers::{jwks_server, TestKey};

fn events_of(page: &Value) -> Vec<Value> {
    page["events"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn every_request_is_audited_and_only_admins_read_the_trail() {
    let key = TestKey::new("k1");
    let jwks = jwks_server(&[&key]);
    let app = spawn_governed(&jwks, |_| {}).await;
    let jane = key.token_in_groups("user:default/jane", &[]);
    let john = key.token_in_groups("user:default/john", &[]);
    let admin = key.token_in_groups(ADMIN, &[]);

    let id = app.create(Some(&jane), "wait-and-fail", json!({"seconds": 0})).await;
    app.wait_finished(&id, Some(&jane)).await;
    app.get("/v2/tasks", Some(&jane)).await;
    app.get("/v2/actions", Some(&jane)).await;
    app.get(
        "/v2/templates/default/template/wait-and-fail/parameter-schema",
        Some(&jane),
    )
    .await;
    // A stranger's attempts are recorded as failures.
    let (status, _) = app.get(&format!("/v2/tasks/{id}"), Some(&john)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .post(&format!("/v2/tasks/{id}/retry"), Some(&john), &json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = app
        .post(
            "/v2/tasks",
            Some(&jane),
            &json!({"templateRef": "no-such-template", "values": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // Non-admins may not read the trail (and that is recorded too).
    let (status, body) = app.get("/v2/audit", Some(&jane)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["name"], "NotAllowedError", "{body}");

    let (status, page) = app.get("/v2/audit?limit=500", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let events = events_of(&page);
    let has = |event: &str, status: &str, actor: &str| {
        events
            .iter()
            .any(|e| e["event"] == event && e["status"] == status && e["actor"]["actorId"] == actor)
    };
    for (event, status, actor) in [
        ("task:create", "succeeded", "user:default/jane"),
        ("task:get", "succeeded", "user:default/jane"),
        ("task:list", "succeeded", "user:default/jane"),
        ("action-fetch", "succeeded", "user:default/jane"),
        ("template-parameter-schema", "succeeded", "user:default/jane"),
        ("task:get", "failed", "user:default/john"),
        ("task:retry", "failed", "user:default/john"),
        ("task:create", "failed", "user:default/jane"),
        ("audit:list", "failed", "user:default/jane"),
        ("permission:deny", "failed", "user:default/jane"),
    ] {
        assert!(has(event, status, actor), "no {event} {status} by {actor}: {page}");
    }
    // Backstage's auditor shape: eventId, severityLevel, actor, request, meta, status.
    let created = events
        .iter()
        .find(|e| e["event"] == "task:create" && e["status"] == "succeeded")
        .unwrap();
    assert_eq!(created["eventId"], "task");
    assert_eq!(created["meta"]["actionType"], "create");
    assert_eq!(created["meta"]["taskId"], id.as_str());
    assert_eq!(created["target"], "template:default/wait-and-fail");
    assert_eq!(created["severityLevel"], "medium");
    assert!(created["request"]["id"].is_string(), "{created}");

    // Filters: actor, event, task, time range.
    let (_, mine) = app.get("/v2/audit?actor=user:default/john", Some(&admin)).await;
    assert!(!events_of(&mine).is_empty());
    assert!(events_of(&mine)
        .iter()
        .all(|e| e["actor"]["actorId"] == "user:default/john"));
    let (_, creates) = app
        .get("/v2/audit?event=task:create&event=task:retry", Some(&admin))
        .await;
    let kinds: HashSet<String> = events_of(&creates)
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        HashSet::from(["task:create".to_owned(), "task:retry".to_owned()])
    );
    let (_, of_task) = app.get(&format!("/v2/audit?taskId={id}"), Some(&admin)).await;
    assert!(events_of(&of_task).iter().all(|e| e["taskId"] == id.as_str()));
    let (_, future) = app.get("/v2/audit?since=2999-01-01T00:00:00Z", Some(&admin)).await;
    assert!(events_of(&future).is_empty(), "{future}");
    let (status, body) = app.get("/v2/audit?event=task:explode", Some(&admin)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Keyset paging: pages of 3, newest first, no overlap, no gap.
    let mut seen: Vec<i64> = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let path = match before {
            Some(b) => format!("/v2/audit?limit=3&before={b}"),
            None => "/v2/audit?limit=3".to_owned(),
        };
        let (status, page) = app.get(&path, Some(&admin)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(events_of(&page).iter().filter_map(|e| e["id"].as_i64()));
        match page["next"].as_i64() {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(seen, sorted, "pages overlap or are out of order");
    assert!(seen.len() >= events.len(), "{} < {}", seen.len(), events.len());
}
