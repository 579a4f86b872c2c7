//! Request bodies are checked against the schema the served OpenAPI document
//! shows: what the document requires is what the server requires, worded as
//! Backstage's request validator words it.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::api::helpers::{spawn_app, TestApp};

const NIL: &str = "00000000-0000-0000-0000-000000000000";

/// Every `POST` with a body in the served document: its path (parameters
/// filled in), the body schema and whether the body is required.
fn body_operations(doc: &Value) -> Vec<(String, Value, bool)> {
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        let Some(body) = item["post"].get("requestBody") else {
            continue;
        };
        let reference = body["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{path}: the body is not a schema component"));
        let name = reference.rsplit('/').next().unwrap_or(reference);
        let schema = doc["components"]["schemas"][name].clone();
        let concrete = path
            .replace("{taskId}", NIL)
            .replace("{provider}", "github")
            .replace("{resource}", "owners");
        operations.push((concrete, schema, body["required"] == json!(true)));
    }
    operations
}

async fn post_raw(app: &TestApp, path: &str, body: &str) -> (StatusCode, Value) {
    let res = app
        .client
        .post(app.api(path))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("request sent");
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_documented_body_is_checked_against_its_schema() {
    let app = spawn_app().await;
    let (status, doc) = app.get_json("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let operations = body_operations(&doc);
    assert_eq!(operations.len(), 9, "{operations:?}");
    for (path, schema, required) in operations {
        let (status, body) = post_raw(&app, &path, "[]").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["error"]["name"], "InputError", "{path}");
        assert_eq!(body["error"]["message"], "request/body must be object", "{path}");
        assert_eq!(body["request"], json!({"method": "POST", "url": path}));

        let first_required = schema["required"].get(0).and_then(Value::as_str);
        let (status, body) = post_raw(&app, &path, "{}").await;
        match first_required {
            Some(property) => {
                assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
                assert_eq!(
                    body["error"]["message"],
                    format!("request/body must have required property '{property}'"),
                    "{path}"
                );
            }
            // Nothing required: the body passes and the task is looked up.
            None => assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}"),
        }
        if !required {
            let (status, body) = post_raw(&app, &path, "").await;
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "{path}: an absent body is allowed: {body}"
            );
        }
    }
}

#[tokio::test]
async fn a_null_retry_body_is_refused_like_any_body_that_is_not_an_object() {
    let app = spawn_app().await;
    let path = format!("/v2/tasks/{NIL}/retry");
    let (status, body) = post_raw(&app, &path, "null").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["message"], "request/body must be object");
    let (status, body) = post_raw(&app, &path, r#"{"secrets": {"token": 5}}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["message"], "request/body/secrets/token must be string");
    let (status, body) = post_raw(&app, &path, "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["name"], "InputError");
}

#[tokio::test]
async fn mistyped_fields_are_named_as_backstage_names_them() {
    let app = spawn_app().await;
    let cases = [
        (
            "/v2/tasks",
            json!({"templateRef": 1, "values": {}}),
            "request/body/templateRef must be string",
        ),
        (
            "/v2/tasks",
            json!({"templateRef": "wait-and-fail", "values": {}, "secrets": []}),
            "request/body/secrets must be object",
        ),
        (
            "/v2/dry-run",
            json!({"template": {}, "values": {}, "directoryContents": [{"path": "a", "base64Content": 1}]}),
            "request/body/directoryContents/0/base64Content must be string",
        ),
        (
            "/v2/dry-run",
            json!({"template": {}, "values": {}, "directoryContents": [{"path": "a", "base64Content": "%%"}]}),
            "request/body/directoryContents/0/base64Content is not base64: Invalid symbol 37, offset 0.",
        ),
        (
            "/v2/autocomplete/github/owners",
            json!({"token": "t", "context": {"host": 1}}),
            "request/body/context/host must be string",
        ),
    ];
    for (path, request, message) in cases {
        let (status, body) = app.post_json(path, &request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {request}: {body}");
        assert_eq!(body["error"]["message"], message, "{path} {request}");
    }
}
