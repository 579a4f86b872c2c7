use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::auth::helpers::{jwks_server, spawn_app_with, TestKey};
use scaffolder::config::{BackstageAuthSettings, StaticTokenSettings, TokenAccess};

const SVC_ALL: &str = "service-token-all-0123";
const SVC_OWN: &str = "service-token-own-0123";

fn quick() -> Value {
    json!({"seconds": 0, "fail": false})
}

#[tokio::test]
async fn users_see_and_change_only_their_own_tasks_unless_admin() {
    let key = TestKey::new("k1");
    let jwks = jwks_server(&[&key]);
    let base = jwks.url.clone();
    let app = spawn_app_with(move |s| {
        s.auth.backstage = Some(BackstageAuthSettings {
            base_url: base,
            jwks_url: None,
            issuer: None,
            audience: None,
            jwks_min_refresh_seconds: 30,
        });
        s.auth.admins = vec!["user:default/admin".into()];
        s.auth.tokens = vec![
            StaticTokenSettings {
                token: Some(SVC_ALL.into()),
                token_file: None,
                subject: "service:dashboard".into(),
                access: TokenAccess::All,
            },
            StaticTokenSettings {
                token: Some(SVC_OWN.into()),
                token_file: None,
                subject: "service:ci".into(),
                access: TokenAccess::Own,
            },
        ];
    })
    .await;
    let jane = key.token("user:default/jane", 600);
    let john = key.token("user:default/john", 600);
    let admin = key.token("user:default/admin", 600);

    let id = app.create(Some(&jane), "ref-wait", quick()).await;
    let task = app.wait_finished(&id, Some(&jane)).await;
    assert_eq!(task["createdBy"], "user:default/jane");
    assert_eq!(task["spec"]["user"]["ref"], "user:default/jane");
    assert!(task["spec"]["user"].get("entity").is_none(), "no catalog configured");

    // A stranger cannot tell the task from a missing one, on every route.
    let missing = uuid::Uuid::new_v4().to_string();
    for (method, path) in [
        ("GET", "/v2/tasks/{}"),
        ("GET", "/v2/tasks/{}/events"),
        ("GET", "/v2/tasks/{}/eventstream"),
        ("POST", "/v2/tasks/{}/cancel"),
        ("POST", "/v2/tasks/{}/retry"),
    ] {
        let hidden = path.replace("{}", &id);
        let absent = path.replace("{}", &missing);
        let (s1, b1) = if method == "GET" {
            app.get(&hidden, Some(&john)).await
        } else {
            app.post(&hidden, Some(&john), &json!({})).await
        };
        let (s2, b2) = if method == "GET" {
            app.get(&absent, Some(&john)).await
        } else {
            app.post(&absent, Some(&john), &json!({})).await
        };
        assert_eq!(s1, StatusCode::NOT_FOUND, "{method} {path}: {b1}");
        assert_eq!(s2, StatusCode::NOT_FOUND, "{method} {path}: {b2}");
        assert_eq!(b1["error"]["name"], b2["error"]["name"]);
        assert_eq!(
            b1["error"]["message"].as_str().map(|m| m.replace(&id, "X")),
            b2["error"]["message"].as_str().map(|m| m.replace(&missing, "X")),
            "{method} {path}"
        );
    }

    // The owner: get, events, event stream, retry, cancel.
    let (status, events) = app.get(&format!("/v2/tasks/{id}/events"), Some(&jane)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(events.as_array().is_some_and(|e| !e.is_empty()));
    let res = app
        .client
        .get(app.api(&format!("/v2/tasks/{id}/eventstream")))
        .bearer_auth(&jane)
        .send()
        .await
        .expect("stream");
    assert_eq!(res.status(), StatusCode::OK);
    let text = tokio::time::timeout(Duration::from_secs(10), res.text())
        .await
        .expect("stream closes after completion")
        .expect("text");
    assert!(text.contains("event: completion"), "{text}");
    let (status, body) = app
        .post(&format!("/v2/tasks/{id}/retry"), Some(&jane), &json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.wait_finished(&id, Some(&jane)).await;
    let (status, body) = app
        .post(&format!("/v2/tasks/{id}/cancel"), Some(&jane), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Lists are limited to the caller in SQL; asking for others is refused.
    let john_id = app.create(Some(&john), "ref-wait", quick()).await;
    let (status, list) = app.get("/v2/tasks", Some(&john)).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = list["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert_eq!(ids, vec![john_id.as_str()]);
    assert_eq!(list["totalTasks"], 1);
    let (status, body) = app.get("/v2/tasks?createdBy=user%3Adefault%2Fjane", Some(&john)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["name"], "NotAllowedError");
    let (status, list) = app.get("/v2/tasks?createdBy=user%3Adefault%2Fjohn", Some(&john)).await;
    assert_eq!((status, list["totalTasks"].as_i64()), (StatusCode::OK, Some(1)));

    // Admins see everything.
    let (status, _) = app.get(&format!("/v2/tasks/{id}"), Some(&admin)).await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = app.get("/v2/tasks", Some(&admin)).await;
    assert_eq!(list["totalTasks"], 2);
    let (status, _) = app.get(&format!("/v2/tasks/{id}/events"), Some(&admin)).await;
    assert_eq!(status, StatusCode::OK);
    app.wait_finished(&john_id, Some(&admin)).await;
    let (status, body) = app
        .post(&format!("/v2/tasks/{john_id}/retry"), Some(&admin), &json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Service tokens: `all` sees every task, `own` only its own.
    let (status, _) = app.get(&format!("/v2/tasks/{id}"), Some(SVC_ALL)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.get(&format!("/v2/tasks/{id}"), Some(SVC_OWN)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let ci_id = app.create(Some(SVC_OWN), "ref-wait", quick()).await;
    let task = app.wait_finished(&ci_id, Some(SVC_OWN)).await;
    assert_eq!(task["createdBy"], "service:ci");
    let (_, list) = app.get("/v2/tasks", Some(SVC_OWN)).await;
    assert_eq!(list["totalTasks"], 1);
    let (_, list) = app.get("/v2/tasks", Some(SVC_ALL)).await;
    assert_eq!(list["totalTasks"], 3);
    let (status, _) = app.get(&format!("/v2/tasks/{ci_id}"), Some(&jane)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn anonymous_callers_see_everything_when_allowed() {
    let app = spawn_app_with(|s| {
        s.auth.allow_anonymous = Some(true);
        s.auth.tokens = vec![StaticTokenSettings {
            token: Some(SVC_OWN.into()),
            token_file: None,
            subject: "service:ci".into(),
            access: TokenAccess::Own,
        }];
    })
    .await;
    let id = app.create(Some(SVC_OWN), "ref-wait", quick()).await;
    let (status, task) = app.get(&format!("/v2/tasks/{id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{task}");
    assert_eq!(task["createdBy"], "service:ci");
    let (status, _) = app.get("/v2/tasks", Some("wrong-token-123")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a bad token is not anonymous");
}

#[tokio::test]
async fn only_callers_that_see_every_task_start_fleet_updates() {
    let app = spawn_app_with(move |s| {
        s.auth.tokens = vec![
            StaticTokenSettings {
                token: Some(SVC_ALL.into()),
                token_file: None,
                subject: "service:dashboard".into(),
                access: TokenAccess::All,
            },
            StaticTokenSettings {
                token: Some(SVC_OWN.into()),
                token_file: None,
                subject: "service:ci".into(),
                access: TokenAccess::Own,
            },
        ];
    })
    .await;
    let body = json!({"templateRef": "ref-wait"});
    let (status, answer) = app.post("/v2/updates", Some(SVC_OWN), &body).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("fleet updates"),
        "{answer}"
    );
    // Allowed, and refused only because nothing was generated from it yet.
    let (status, answer) = app.post("/v2/updates", Some(SVC_ALL), &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no repository was generated"),
        "{answer}"
    );
}
