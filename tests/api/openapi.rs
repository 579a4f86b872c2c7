use reqwest::StatusCode;
use serde_json::Value;

use crate::api::helpers::spawn_app;

/// `openapi/openapi.yaml` is generated; regenerate it with
/// `cargo run -- openapi > openapi/openapi.yaml`.
#[test]
fn committed_openapi_document_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.yaml");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = scaffolder::http::openapi::yaml();
    assert!(
        committed == generated,
        "openapi/openapi.yaml is stale: run `cargo run -- openapi > openapi/openapi.yaml`"
    );
}

#[tokio::test]
async fn the_document_is_served_and_lists_every_route() {
    let app = spawn_app().await;
    let (status, doc) = app.get_json("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/v2/tasks",
        "/v2/tasks/{taskId}",
        "/v2/tasks/{taskId}/cancel",
        "/v2/tasks/{taskId}/retry",
        "/v2/tasks/{taskId}/events",
        "/v2/tasks/{taskId}/eventstream",
        "/v2/templates/{namespace}/{kind}/{name}/parameter-schema",
        "/v2/actions",
        "/v2/templating-extensions",
        "/v2/autocomplete/{provider}/{resource}",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(paths.contains_key(path), "{path} is not documented");
    }
    let generated: Value = serde_json::to_value(scaffolder::http::openapi::document()).unwrap();
    assert_eq!(doc, generated);
}
