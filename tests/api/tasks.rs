use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::api::helpers::{golden, keys, spawn_app, LIMIT};

#[tokio::test]
async fn create_returns_201_with_id_and_the_task_echoes_backstage_shape() {
    let app = spawn_app().await;
    let fixture = golden("tasks-create");
    let (status, body) = app
        .post_json(
            "/v2/tasks",
            &json!({"templateRef": "template:default/wait-and-fail", "values": {"seconds": 0}}),
        )
        .await;
    assert_eq!(status.as_u16(), fixture["response"]["status"].as_u64().unwrap() as u16);
    assert_eq!(keys(&body), keys(&fixture["response"]["body"]));
    let id = body["id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok());

    app.events_until_completion(id, LIMIT).await;
    let task = app.task(id).await;
    let reference = &golden("tasks-get-completed")["response"]["body"];
    assert_eq!(keys(&task), keys(reference));
    assert_eq!(keys(&task["spec"]), keys(&reference["spec"]));
    assert_eq!(
        keys(&task["spec"]["templateInfo"]),
        keys(&reference["spec"]["templateInfo"])
    );
    // The spec's keys keep Backstage's order.
    let order: Vec<&String> = task["spec"].as_object().unwrap().keys().collect();
    assert_eq!(
        order,
        vec!["apiVersion", "steps", "output", "parameters", "user", "templateInfo"]
    );
    assert_eq!(task["status"], "completed");
    assert_eq!(task["spec"]["parameters"], json!({"seconds": 0}));
    assert_eq!(
        task["spec"]["templateInfo"]["entityRef"],
        "template:default/wait-and-fail"
    );
    assert_eq!(
        task["spec"]["templateInfo"]["entity"]["metadata"]["namespace"],
        "default"
    );
    assert_eq!(
        task["spec"]["templateInfo"]["entity"]["metadata"]["name"],
        "wait-and-fail"
    );
    let base = task["spec"]["templateInfo"]["baseUrl"].as_str().unwrap();
    assert!(
        base.starts_with("file:///") && base.ends_with("wait-and-fail/template.yaml"),
        "{base}"
    );
    let created = task["createdAt"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() == 24, "{created}");
    assert!(task["lastHeartbeatAt"].is_string());
    assert!(task.get("createdBy").is_none());
}

#[tokio::test]
async fn short_template_refs_resolve_to_the_default_namespace() {
    let app = spawn_app().await;
    for template_ref in [
        "wait-and-fail",
        "default/wait-and-fail",
        "Template:Default/Wait-And-Fail",
    ] {
        let (status, body) = app
            .post_json(
                "/v2/tasks",
                &json!({"templateRef": template_ref, "values": {"seconds": 0}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{template_ref}: {body}");
    }
    let (status, _) = app
        .post_json(
            "/v2/tasks",
            &json!({"templateRef": "team/paged", "values": {"name": "x"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = app
        .post_json(
            "/v2/tasks",
            &json!({"templateRef": "component:default/wait-and-fail", "values": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["name"], "InputError");
}

#[tokio::test]
async fn validation_errors_are_exactly_backstages() {
    let app = spawn_app().await;
    for name in ["tasks-create-400-validation", "tasks-create-400-required"] {
        let fixture = golden(name);
        let (status, body) = app.post_json("/v2/tasks", &fixture["request"]["body"]).await;
        assert_eq!(
            status.as_u16() as u64,
            fixture["response"]["status"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(body, fixture["response"]["body"], "{name}");
    }
}

#[tokio::test]
async fn request_shape_errors_match_backstage() {
    let app = spawn_app().await;
    for name in [
        "tasks-create-400-missing-templateRef",
        "tasks-create-400-missing-values",
        "tasks-create-404-template",
    ] {
        let fixture = golden(name);
        let (status, body) = app.post_json("/v2/tasks", &fixture["request"]["body"]).await;
        assert_eq!(
            status.as_u16() as u64,
            fixture["response"]["status"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(body, fixture["response"]["body"], "{name}");
    }
}

#[tokio::test]
async fn malformed_json_is_a_400_input_error() {
    let app = spawn_app().await;
    let fixture = golden("tasks-create-400-invalid-json");
    let res = app
        .client
        .post(app.api("/v2/tasks"))
        .header("content-type", "application/json")
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status().as_u16() as u64,
        fixture["response"]["status"].as_u64().unwrap()
    );
    assert_eq!(res.headers()["content-type"], "application/json; charset=utf-8");
    let body: Value = res.json().await.unwrap();
    assert_eq!(keys(&body), keys(&fixture["response"]["body"]));
    assert_eq!(body["error"]["name"], "InputError");
    assert_eq!(body["request"], json!({"method": "POST", "url": "/v2/tasks"}));
    assert_eq!(body["response"], json!({"statusCode": 400}));
}

#[tokio::test]
async fn oversized_bodies_are_413_and_never_500() {
    let app = spawn_app_small_limit().await;
    let big = format!(
        r#"{{"templateRef":"wait-and-fail","values":{{"x":"{}"}}}}"#,
        "a".repeat(4096)
    );
    let res = app
        .client
        .post(app.api("/v2/tasks"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["name"], "PayloadTooLargeError");
    assert_eq!(body["response"]["statusCode"], 413);
}

async fn spawn_app_small_limit() -> crate::api::helpers::TestApp {
    crate::api::helpers::spawn_app_with(|s| s.server.body_limit_bytes = 1024).await
}

#[tokio::test]
async fn pages_with_a_false_when_are_skipped_and_their_values_dropped() {
    let app = spawn_app().await;
    // The advanced page is hidden: its required field is not needed and its values are dropped.
    let id = app
        .create_task("team/paged", json!({"name": "svc", "advanced": false, "replicas": 0}))
        .await;
    let task = app.task(&id).await;
    assert_eq!(task["spec"]["parameters"], json!({"name": "svc", "advanced": false}));
    // Visible: validated.
    let (status, body) = app
        .post_json(
            "/v2/tasks",
            &json!({"templateRef": "team/paged", "values": {"name": "svc", "advanced": true}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["message"], "requires property \"replicas\"");
}

#[tokio::test]
async fn get_unknown_or_malformed_ids_is_404() {
    let app = spawn_app().await;
    let fixture = golden("tasks-get-404");
    let (status, body) = app.get_json("/v2/tasks/00000000-0000-0000-0000-000000000000").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, fixture["response"]["body"]);
    // Backstage answers 500 here; a missing task is the honest answer.
    let (status, body) = app.get_json("/v2/tasks/not-a-uuid").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["name"], "NotFoundError");
    assert_eq!(body["request"]["url"], "/v2/tasks/not-a-uuid");
}

#[tokio::test]
async fn secrets_are_accepted_but_never_returned() {
    let app = spawn_app().await;
    let (status, body) = app
        .post_json(
            "/v2/tasks",
            &json!({"templateRef": "wait-and-fail", "values": {"seconds": 0}, "secrets": {"token": "s3cr3t-value"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = body["id"].as_str().unwrap().to_owned();
    let events = app.events_until_completion(&id, LIMIT).await;
    let task = app.task(&id).await;
    let everything = format!("{task}{}", Value::Array(events));
    assert!(!everything.contains("s3cr3t-value"));
}
