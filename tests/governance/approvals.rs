use reqwest::StatusCode;
use serde_json::json;

use super::{messages, spawn_governed, wait_for_message, ADMIN};
use crate::auth::helpers::{jwks_server, TestKey};

const WAITING: &str = "waiting for approval by group:default/platform";

#[tokio::test]
async fn a_gate_waits_without_a_worker_and_only_an_approver_may_open_it() {
    let key = TestKey::new("k1");
    let jwks = jwks_server(&[&key]);
    let app = spawn_governed(&jwks, |_| {}).await;
    let jane = key.token_in_groups("user:default/jane", &["group:default/platform"]);
    let john = key.token_in_groups("user:default/john", &["group:default/web"]);
    let bob = key.token_in_groups("user:default/bob", &["group:default/platform"]);
    let admin = key.token_in_groups(ADMIN, &[]);

    let id = app
        .create(Some(&jane), "approval-gate", json!({"name": "billing"}))
        .await;
    let seen = wait_for_message(&app, &id, &jane, WAITING).await;
    assert!(seen.iter().any(|m| m.contains("Deploy billing?")), "{seen:?}");
    // The task page shows a running task and a running step: values
    // Backstage's frontend knows.
    let (_, task) = app.get(&format!("/v2/tasks/{id}"), Some(&jane)).await;
    assert_eq!(task["status"], "processing", "{task}");
    let (_, events) = app.get(&format!("/v2/tasks/{id}/events"), Some(&jane)).await;
    let gate_status: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["body"]["stepId"] == "gate")
        .filter_map(|e| e["body"]["status"].as_str())
        .collect();
    assert_eq!(gate_status, ["processing"], "{events}");

    // With one worker slot, another task runs to its end meanwhile: the
    // waiting task holds no slot.
    let other = app.create(Some(&john), "wait-and-fail", json!({"seconds": 0})).await;
    let finished = app.wait_finished(&other, Some(&john)).await;
    assert_eq!(finished["status"], "completed", "{finished}");

    // The requester may not approve their own task; someone outside the
    // approvers gets 403 in Backstage's error shape.
    let (status, body) = app
        .post(&format!("/v2/tasks/{id}/approve"), Some(&jane), &json!({}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["name"], "NotAllowedError", "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("created this task"),
        "{body}"
    );
    let (status, body) = app
        .post(
            &format!("/v2/tasks/{id}/approve"),
            Some(&john),
            &json!({"comment": "sure"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not among the approvers of this step (group:default/platform)"),
        "{body}"
    );
    assert_eq!(body["response"]["statusCode"], 403, "{body}");
    let (status, body) = app
        .post(&format!("/v2/tasks/{id}/approve"), Some(&bob), &json!({"comment": 7}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a comment is text: {body}");

    // Approvers see the task they are asked about (and its log); others do not.
    let (status, body) = app.get(&format!("/v2/tasks/{id}"), Some(&bob)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = app.get(&format!("/v2/tasks/{id}/events"), Some(&bob)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.get(&format!("/v2/tasks/{id}"), Some(&john)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // An approver approves: the task resumes at the gate and completes.
    let (status, body) = app
        .post(
            &format!("/v2/tasks/{id}/approve"),
            Some(&bob),
            &json!({"comment": "ship it"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"id": id, "stepId": "gate", "decision": "approved"}));
    let task = app.wait_finished(&id, Some(&jane)).await;
    assert_eq!(task["status"], "completed", "{task}");
    let (_, events) = app.get(&format!("/v2/tasks/{id}/events"), Some(&jane)).await;
    let log = messages(&events);
    assert!(
        log.iter().any(|m| m == "Approved by user:default/bob: ship it"),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|m| m.contains("deploying, approved by user:default/bob")),
        "{log:?}"
    );
    assert_eq!(
        events.as_array().unwrap().last().unwrap()["body"]["output"]["text"][0]["content"],
        "user:default/bob"
    );
    // The step before the gate ran once: the resumed run reused its output.
    assert_eq!(
        log.iter().filter(|m| m.ends_with(": preparing billing")).count(),
        1,
        "{log:?}"
    );

    // A decided gate cannot be decided again: 409 to whoever may see the
    // task, and, as for every hidden task, 404 to the others.
    let (status, body) = app
        .post(&format!("/v2/tasks/{id}/reject"), Some(&jane), &json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = app
        .post(&format!("/v2/tasks/{id}/reject"), Some(&bob), &json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // The audit trail has the request, the refusals and the approval.
    let (status, audit) = app.get(&format!("/v2/audit?taskId={id}&limit=100"), Some(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    let rows: Vec<(String, String, String)> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap_or_default().to_owned(),
                e["status"].as_str().unwrap_or_default().to_owned(),
                e["actor"]["actorId"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect();
    let has =
        |event: &str, status: &str, actor: &str| rows.iter().any(|(e, s, a)| e == event && s == status && a == actor);
    assert!(has("task:create", "succeeded", "user:default/jane"), "{rows:?}");
    assert!(has("approval:request", "succeeded", "user:default/jane"), "{rows:?}");
    assert!(has("approval:approve", "failed", "user:default/jane"), "{rows:?}");
    assert!(has("approval:approve", "failed", "user:default/john"), "{rows:?}");
    assert!(has("permission:deny", "failed", "user:default/john"), "{rows:?}");
    assert!(has("approval:approve", "succeeded", "user:default/bob"), "{rows:?}");
    assert!(has("approval:reject", "failed", "user:default/jane"), "{rows:?}");
    assert!(has("approval:reject", "failed", "user:default/bob"), "{rows:?}");
    let approval = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "approval:approve" && e["status"] == "succeeded")
        .unwrap();
    assert_eq!(approval["meta"]["comment"], "ship it", "{approval}");
    assert_eq!(approval["severityLevel"], "high", "{approval}");
    assert!(approval["request"]["id"].is_string(), "{approval}");
}

#[tokio::test]
async fn a_rejection_fails_the_step_with_the_comment() {
    let key = TestKey::new("k1");
    let jwks = jwks_server(&[&key]);
    let app = spawn_governed(&jwks, |_| {}).await;
    let jane = key.token_in_groups("user:default/jane", &[]);
    let bob = key.token_in_groups("user:default/bob", &["group:default/platform"]);

    let id = app.create(Some(&jane), "approval-gate", json!({})).await;
    wait_for_message(&app, &id, &jane, WAITING).await;
    let (status, body) = app
        .post(
            &format!("/v2/tasks/{id}/reject"),
            Some(&bob),
            &json!({"comment": "not before the freeze ends"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let task = app.wait_finished(&id, Some(&jane)).await;
    assert_eq!(task["status"], "failed", "{task}");
    let (_, events) = app.get(&format!("/v2/tasks/{id}/events"), Some(&jane)).await;
    let completion = events.as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        completion["body"]["error"]["message"], "Rejected by user:default/bob: not before the freeze ends",
        "{completion}"
    );
    let log = messages(&events);
    assert!(log.iter().any(|m| m.contains("Skipping step after")), "{log:?}");
}

#[tokio::test]
async fn self_approval_is_refused_unless_the_step_allows_it() {
    let key = TestKey::new("k1");
    let jwks = jwks_server(&[&key]);
    let app = spawn_governed(&jwks, |_| {}).await;
    let lead = key.token_in_groups("user:default/lead", &["group:default/platform"]);

    let id = app.create(Some(&lead), "approval-gate", json!({})).await;
    wait_for_message(&app, &id, &lead, WAITING).await;
    let (status, body) = app
        .post(&format!("/v2/tasks/{id}/approve"), Some(&lead), &json!({}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    let allowed = app
        .create(Some(&lead), "approval-gate", json!({"allowSelf": true}))
        .await;
    wait_for_message(&app, &allowed, &lead, WAITING).await;
    let (status, body) = app
        .post(&format!("/v2/tasks/{allowed}/approve"), Some(&lead), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.wait_finished(&allowed, Some(&lead)).await["status"], "completed");
    // The first one still waits; cancelling it ends it without a worker.
    let (status, body) = app
        .post(&format!("/v2/tasks/{id}/cancel"), Some(&lead), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.wait_finished(&id, Some(&lead)).await["status"], "cancelled");
}

#[tokio::test]
async fn a_gate_without_a_decision_fails_when_its_timeout_passes() {
    let key = TestKey::new("k1");
    let jwks = jwks_server(&[&key]);
    let app = spawn_governed(&jwks, |_| {}).await;
    let jane = key.token_in_groups("user:default/jane", &[]);
    let id = app.create(Some(&jane), "approval-gate", json!({"timeout": "1s"})).await;
    let task = app.wait_finished(&id, Some(&jane)).await;
    assert_eq!(task["status"], "failed", "{task}");
    let (_, events) = app.get(&format!("/v2/tasks/{id}/events"), Some(&jane)).await;
    let completion = events.as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        completion["body"]["error"]["message"], "No approval by group:default/platform within 1 seconds",
        "{completion}"
    );
}

#[tokio::test]
async fn a_waiting_task_survives_a_restart_and_resumes_when_approved() {
    let key = TestKey::new("k1");
    let jwks = jwks_server(&[&key]);
    let db = format!(
        "{}/scaffolder_test_{}",
        crate::common::db::admin_url(),
        uuid::Uuid::new_v4().simple()
    );
    let first_db = db.clone();
    let first = spawn_governed(&jwks, move |s| s.database.url = first_db.into()).await;
    let jane = key.token_in_groups("user:default/jane", &[]);
    let bob = key.token_in_groups("user:default/bob", &["group:default/platform"]);
    let id = first
        .create(Some(&jane), "approval-gate", json!({"name": "ledger"}))
        .await;
    wait_for_message(&first, &id, &jane, WAITING).await;

    // Stop the first server and wait until its port refuses connections.
    let address = first.address.clone();
    drop(first);
    let deadline = tokio::time::Instant::now() + crate::common::PATIENCE;
    while reqwest::get(format!("{address}/healthz")).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "the first server does not stop");
        tokio::task::yield_now().await;
    }

    let second_db = db.clone();
    let second = spawn_governed(&jwks, move |s| s.database.url = second_db.into()).await;
    let (_, task) = second.get(&format!("/v2/tasks/{id}"), Some(&jane)).await;
    assert_eq!(task["status"], "processing", "still waiting after the restart: {task}");
    let (status, body) = second
        .post(&format!("/v2/tasks/{id}/approve"), Some(&bob), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let task = second.wait_finished(&id, Some(&jane)).await;
    assert_eq!(task["status"], "completed", "{task}");
    let (_, events) = second.get(&format!("/v2/tasks/{id}/events"), Some(&jane)).await;
    let log = messages(&events);
    assert!(log.iter().any(|m| m == "Approved by user:default/bob"), "{log:?}");
    assert_eq!(
        log.iter().filter(|m| m.ends_with(": preparing ledger")).count(),
        1,
        "{log:?}"
    );
}

/// The platform's template: dev clusters register at once, a production
/// cluster waits for the platform team; the audit trail names the
/// repository created and the overlays registered.
#[tokio::test]
async fn app_base_waits_for_the_platform_team_before_a_prod_cluster() {
    let key = TestKey::new("k1");
    let jwks = jwks_server(&[&key]);
    let data = tempfile::tempdir().unwrap();
    let git_dir = data.path().join("git");
    let templates = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("templates");
    let local_git = git_dir.clone();
    let app = spawn_governed(&jwks, move |s| {
        s.integrations.local_git.dir = Some(local_git);
        s.templates.dirs.push(templates);
    })
    .await;
    let jane = key.token_in_groups("user:default/jane", &["group:default/team-a"]);
    let bob = key.token_in_groups("user:default/bob", &["group:default/platform"]);
    let admin = key.token_in_groups(ADMIN, &[]);
    let values = |name: &str, clusters: serde_json::Value| {
        json!({
            "name": name,
            "description": "A service",
            "owner": "group:default/team-a",
            "repoUrl": format!("git.local?owner=soft-yt&repo={name}"),
            "clusters": clusters,
            "gitopsRepoUrl": "git.local?owner=soft-yt&repo=infra-gitops",
        })
    };

    let dev = app
        .create(
            Some(&jane),
            "template:default/app-base-go-react",
            values("notes-api", json!(["onprem-dev"])),
        )
        .await;
    let task = app.wait_finished(&dev, Some(&jane)).await;
    assert_eq!(task["status"], "completed", "{task}");

    let prod = app
        .create(
            Some(&jane),
            "template:default/app-base-go-react",
            values("orders-api", json!(["onprem-dev", "yc-prod"])),
        )
        .await;
    wait_for_message(
        &app,
        &prod,
        &jane,
        "waiting for approval by group:default/platform until",
    )
    .await;
    let gitops = git_dir.join("soft-yt/infra-gitops.git");
    let listed = crate::common::git::git(&gitops, &["ls-tree", "-r", "--name-only", "HEAD"]);
    assert!(
        !listed.contains("apps/orders-api/"),
        "registered before the approval: {listed}"
    );
    let (status, body) = app
        .post(
            &format!("/v2/tasks/{prod}/approve"),
            Some(&bob),
            &json!({"comment": "capacity checked"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let task = app.wait_finished(&prod, Some(&jane)).await;
    assert_eq!(task["status"], "completed", "{task}");
    let listed = crate::common::git::git(&gitops, &["ls-tree", "-r", "--name-only", "HEAD"]);
    assert!(listed.contains("apps/orders-api/overlays/yc-prod/"), "{listed}");

    let (_, audit) = app
        .get(
            "/v2/audit?event=repository:create&event=overlay:register&event=approval:request",
            Some(&admin),
        )
        .await;
    let rows: Vec<(String, String)> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap_or_default().to_owned(),
                e["taskId"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    for (event, task) in [
        ("repository:create", &dev),
        ("overlay:register", &dev),
        ("repository:create", &prod),
        ("overlay:register", &prod),
        ("approval:request", &prod),
    ] {
        assert!(
            rows.contains(&(event.to_owned(), task.clone())),
            "no {event} for {task}: {audit}"
        );
    }
    assert!(
        !rows.contains(&("approval:request".to_owned(), dev.clone())),
        "the dev-only task was gated: {audit}"
    );
}
