//! Task secrets at rest: sealed in the database, opened only with a
//! configured key, re-sealed on rotation, never run from plaintext.

use reqwest::StatusCode;
use scaffolder::secrets::{generate_key_entry, Keyring};
use scaffolder::store::Store;
use serde_json::{json, Value};

use crate::api::helpers::{spawn_app_with, TestApp, LIMIT};

async fn stored_secrets(db_url: &str, id: &str) -> Option<String> {
    let pool = sqlx::PgPool::connect(db_url).await.expect("database");
    let (secrets,): (Option<String>,) = sqlx::query_as("SELECT secrets FROM tasks WHERE id = $1::uuid")
        .bind(id)
        .fetch_one(&pool)
        .await
        .expect("task row");
    pool.close().await;
    secrets
}

/// A task created while no worker runs, so it stays open.
async fn parked_task(keys: Vec<String>) -> (TestApp, String) {
    let app = spawn_app_with(|s| {
        s.worker.enabled = false;
        s.server.long_poll_seconds = 1;
        s.secrets.keys = keys.into_iter().map(Into::into).collect();
    })
    .await;
    let (status, body) = app
        .post_json(
            "/v2/tasks",
            &json!({"templateRef": "wait-and-fail", "values": {"seconds": 0},
                    "secrets": {"token": "parked-secret-value"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().expect("id").to_owned();
    (app, id)
}

fn completion(events: &[Value]) -> &Value {
    events.last().expect("events")
}

#[tokio::test]
async fn secrets_that_no_configured_key_opens_fail_the_task_with_a_clear_error() {
    let (parked, id) = parked_task(vec![generate_key_entry("k1")]).await;
    let stored = stored_secrets(&parked.db_url, &id).await.expect("stored");
    assert!(stored.starts_with("sealed:v1:k1:"), "{stored}");
    assert!(!stored.contains("parked-secret-value"));

    let db_url = parked.db_url.clone();
    let worker = spawn_app_with(|s| {
        s.database.url = db_url.into();
        s.secrets.keys = vec![generate_key_entry("k2").into()];
    })
    .await;
    let events = worker.events_until_completion(&id, LIMIT).await;
    let end = completion(&events);
    assert_eq!(end["body"]["message"], "Run completed with status: failed", "{end}");
    let message = end["body"]["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("encrypted with key 'k1', which is not configured"),
        "{message}"
    );
    // No step ran: nothing got the secrets.
    assert!(!events.iter().any(|e| e["body"]["stepId"] == "hello"), "{events:#?}");
    assert_eq!(stored_secrets(&worker.db_url, &id).await, None);
}

#[tokio::test]
async fn rotation_re_seals_open_tasks_so_the_old_key_can_go() {
    let old = generate_key_entry("old");
    let new = generate_key_entry("new");
    let (parked, id) = parked_task(vec![old.clone()]).await;

    // `scaffolder secrets rotate` with the new key first.
    let store = Store::connect(&scaffolder::config::DatabaseSettings {
        url: parked.db_url.clone().into(),
        ..Default::default()
    })
    .await
    .expect("store");
    let rotating = Keyring::from_entries(&[new.clone(), old]).expect("keys");
    let report = scaffolder::service::reseal_stored(&rotating, &store, false)
        .await
        .expect("rotate");
    assert_eq!(report.resealed, 1);
    assert_eq!(report.unreadable, 0);
    let stored = stored_secrets(&parked.db_url, &id).await.expect("stored");
    assert!(stored.starts_with("sealed:v1:new:"), "{stored}");

    // The old key is gone; the task still runs, with its secrets.
    let db_url = parked.db_url.clone();
    let worker = spawn_app_with(|s| {
        s.database.url = db_url.into();
        s.secrets.keys = vec![new.into()];
    })
    .await;
    let events = worker.events_until_completion(&id, LIMIT).await;
    assert_eq!(
        completion(&events)["body"]["message"],
        "Run completed with status: completed",
        "{events:#?}"
    );
    assert_eq!(stored_secrets(&worker.db_url, &id).await, None, "wiped at the end");
}

#[tokio::test]
async fn plaintext_secrets_from_before_encryption_are_sealed_at_start() {
    let key = generate_key_entry("k");
    let (parked, id) = parked_task(vec![key.clone()]).await;
    // What a database migrated from an older version holds.
    let pool = sqlx::PgPool::connect(&parked.db_url).await.expect("database");
    sqlx::query("UPDATE tasks SET secrets = '{\"token\":\"legacy-plaintext\"}' WHERE id = $1::uuid")
        .bind(&id)
        .execute(&pool)
        .await
        .expect("update");
    pool.close().await;

    let db_url = parked.db_url.clone();
    let restarted = spawn_app_with(|s| {
        s.database.url = db_url.into();
        s.worker.enabled = false;
        s.secrets.keys = vec![key.into()];
    })
    .await;
    let stored = stored_secrets(&restarted.db_url, &id).await.expect("stored");
    assert!(stored.starts_with("sealed:v1:k:"), "{stored}");
    assert!(!stored.contains("legacy-plaintext"));
}

#[tokio::test]
async fn no_task_response_carries_secrets() {
    let (app, id) = parked_task(vec![generate_key_entry("k")]).await;
    for path in [
        format!("/v2/tasks/{id}"),
        "/v2/tasks".to_owned(),
        format!("/v2/tasks/{id}/events"),
    ] {
        let res = app.client.get(app.api(&path)).send().await.expect("request");
        let text = res.text().await.expect("body");
        assert!(!text.contains("parked-secret-value"), "{path}: {text}");
        assert!(!text.contains("sealed:v1:"), "{path}: {text}");
        assert!(!text.contains("\"secrets\""), "{path}: {text}");
    }
}
