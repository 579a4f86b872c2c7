//! What a web page can make a browser send to a local server without a CORS
//! preflight (`text/plain`, form-encoded or untyped bodies; a rebinding DNS
//! name in `Host`) is refused before anything runs, with Backstage's error
//! body; JSON clients, Backstage's `ScaffolderClient` included, are unaffected.

use reqwest::header::{CONTENT_TYPE, HOST, ORIGIN};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::api::helpers::{spawn_app, spawn_app_with, TestApp};

const WAIT_AND_FAIL: &str = "template:default/wait-and-fail";

fn create_body() -> String {
    json!({ "templateRef": WAIT_AND_FAIL, "values": { "seconds": 0 } }).to_string()
}

/// Tasks in the database, counted in SQL rather than through the API under test.
async fn task_rows(app: &TestApp) -> i64 {
    let pool = sqlx::PgPool::connect(&app.db_url).await.expect("test database");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks")
        .fetch_one(&pool)
        .await
        .expect("count tasks");
    pool.close().await;
    count
}

async fn assert_no_task(app: &TestApp) {
    assert_eq!(task_rows(app).await, 0, "a task row was written");
    let (status, list) = app.get_json("/v2/tasks").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["totalTasks"], 0, "{list}");
}

/// Backstage's error body for `POST <url>`.
fn assert_error_body(body: &Value, status: u16, name: &str, url: &str) {
    assert_eq!(body["error"]["name"], name, "{body}");
    assert!(
        body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(body["request"], json!({ "method": "POST", "url": url }), "{body}");
    assert_eq!(body["response"], json!({ "statusCode": status }), "{body}");
}

#[tokio::test]
async fn cross_site_bodies_start_no_task() {
    let app = spawn_app().await;
    let cases: [(Option<&str>, String); 5] = [
        (Some("text/plain"), create_body()),
        (Some("text/plain;charset=UTF-8"), create_body()),
        (
            Some("application/x-www-form-urlencoded"),
            format!("templateRef={WAIT_AND_FAIL}&values=%7B%7D"),
        ),
        (Some("multipart/form-data; boundary=x"), create_body()),
        // A `fetch` with a Blob body of no type sends no Content-Type at all.
        (None, create_body()),
    ];
    for (content_type, body) in cases {
        let mut req = app
            .client
            .post(app.api("/v2/tasks"))
            .header(ORIGIN, "https://evil.example")
            .body(body);
        if let Some(t) = content_type {
            req = req.header(CONTENT_TYPE, t);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let answer: Value = res.json().await.expect("JSON error body");
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{content_type:?}: {answer}");
        assert_error_body(&answer, 415, "UnsupportedMediaTypeError", "/v2/tasks");
    }
    assert_no_task(&app).await;
    // The dry-run and autocomplete bodies are held to the same rule.
    for path in ["/v2/dry-run", "/v2/autocomplete/github/repositories"] {
        let res = app
            .client
            .post(app.api(path))
            .header(CONTENT_TYPE, "text/plain")
            .body("{}")
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{path}");
    }
}

#[tokio::test]
async fn json_with_any_charset_or_a_json_suffix_starts_tasks() {
    let app = spawn_app().await;
    for content_type in [
        "application/json; charset=utf-8",
        "Application/JSON;charset=UTF-8",
        "application/vnd.scaffolder+json",
    ] {
        let res = app
            .client
            .post(app.api("/v2/tasks"))
            .header(CONTENT_TYPE, content_type)
            .body(create_body())
            .send()
            .await
            .expect("request");
        let status = res.status();
        let body: Value = res.json().await.expect("JSON");
        assert_eq!(status, StatusCode::CREATED, "{content_type}: {body}");
    }
    assert_eq!(task_rows(&app).await, 3);
}

#[tokio::test]
async fn a_retry_sent_as_text_does_not_reopen_the_task() {
    let app = spawn_app().await;
    let id = app
        .create_task(WAIT_AND_FAIL, json!({ "seconds": 0, "fail": true }))
        .await;
    app.events_until_completion(&id, crate::common::PATIENCE).await;
    assert_eq!(app.task(&id).await["status"], "failed");

    let res = app
        .client
        .post(app.api(&format!("/v2/tasks/{id}/retry")))
        .header(CONTENT_TYPE, "text/plain")
        .header(ORIGIN, "https://evil.example")
        .body("{}")
        .send()
        .await
        .expect("request");
    let status = res.status();
    let body: Value = res.json().await.expect("JSON");
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    assert_error_body(
        &body,
        415,
        "UnsupportedMediaTypeError",
        &format!("/v2/tasks/{id}/retry"),
    );
    assert_eq!(app.task(&id).await["status"], "failed");
    let (_, events) = app.get_json(&format!("/v2/tasks/{id}/events")).await;
    assert!(
        !events
            .as_array()
            .expect("events")
            .iter()
            .any(|e| e["type"] == "recovered"),
        "the task was retried: {events}"
    );

    // Backstage's client retries with a JSON body; that still works.
    let (status, body) = app.post_json(&format!("/v2/tasks/{id}/retry"), &json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn cancel_without_a_body_keeps_working() {
    let app = spawn_app().await;
    for content_type in [None, Some("application/x-www-form-urlencoded")] {
        let id = app.create_task(WAIT_AND_FAIL, json!({ "seconds": 30 })).await;
        // As `ScaffolderClient.cancelTask` sends it (see the golden
        // `tasks-cancel.json`): no Content-Type, no body; or as `curl -d ''`.
        let mut req = app.client.post(app.api(&format!("/v2/tasks/{id}/cancel")));
        if let Some(t) = content_type {
            req = req.header(CONTENT_TYPE, t).body("");
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let body: Value = res.json().await.expect("JSON");
        assert_eq!(status, StatusCode::OK, "{content_type:?}: {body}");
        assert_eq!(body["status"], "cancelled", "{body}");
    }
}

#[tokio::test]
async fn anonymous_requests_under_a_foreign_host_are_refused() {
    let app = spawn_app().await;
    let port = app.address.rsplit(':').next().expect("port").to_owned();
    let foreign = format!("evil.example:{port}");

    let res = app
        .client
        .post(app.api("/v2/tasks"))
        .header(HOST, &foreign)
        .header(CONTENT_TYPE, "application/json")
        .body(create_body())
        .send()
        .await
        .expect("request");
    let status = res.status();
    let body: Value = res.json().await.expect("JSON");
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_error_body(&body, 403, "NotAllowedError", "/v2/tasks");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&foreign) && message.contains("DNS rebinding") && message.contains("auth.anonymous_hosts"),
        "{message}"
    );
    assert_no_task(&app).await;

    // Reading is refused too (a rebinding page could read the task list), and
    // so is `/metrics` while it is open; health probes answer any Host.
    for path in ["/api/scaffolder/v2/tasks", "/metrics"] {
        let res = app
            .client
            .get(format!("{}{path}", app.address))
            .header(HOST, &foreign)
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path}");
    }
    for path in ["/healthz", "/readyz"] {
        let res = app
            .client
            .get(format!("{}{path}", app.address))
            .header(HOST, &foreign)
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), StatusCode::OK, "{path}");
    }

    // Loopback names with any port are this machine.
    for host in [
        format!("localhost:{port}"),
        "app.localhost".to_owned(),
        "127.0.0.2:1".to_owned(),
        format!("[::1]:{port}"),
    ] {
        let res = app
            .client
            .post(app.api("/v2/tasks"))
            .header(HOST, &host)
            .header(CONTENT_TYPE, "application/json")
            .body(create_body())
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), StatusCode::CREATED, "{host}");
    }
    assert_eq!(task_rows(&app).await, 4);
}

#[tokio::test]
async fn listed_hosts_and_credentials_are_served_under_any_host() {
    let app = spawn_app_with(|s| {
        s.auth.anonymous_hosts = vec!["scaffolder".into()];
    })
    .await;
    let res = app
        .client
        .post(app.api("/v2/tasks"))
        .header(HOST, "scaffolder:7007")
        .header(CONTENT_TYPE, "application/json")
        .body(create_body())
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::CREATED);

    // A caller with a token is not anonymous: no Host rule applies.
    let app = spawn_app_with(|s| {
        s.auth.allow_anonymous = Some(true);
        s.auth.tokens.push(scaffolder::config::StaticTokenSettings {
            token: Some("ci-token-0123456789".into()),
            token_file: None,
            subject: "service:ci".into(),
            access: scaffolder::config::TokenAccess::All,
        });
    })
    .await;
    let send = |token: Option<&'static str>| {
        let mut req = app
            .client
            .post(app.api("/v2/tasks"))
            .header(HOST, "scaffolder.example.com")
            .header(CONTENT_TYPE, "application/json")
            .body(create_body());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    assert_eq!(
        send(Some("ci-token-0123456789")).await.expect("request").status(),
        StatusCode::CREATED
    );
    assert_eq!(send(None).await.expect("request").status(), StatusCode::FORBIDDEN);
    assert_eq!(task_rows(&app).await, 1);
}
