use reqwest::StatusCode;
use serde_json::Value;

use crate::api::helpers::{golden, spawn_app};

#[tokio::test]
async fn parameter_schema_is_exactly_backstages() {
    let app = spawn_app().await;
    let fixture = golden("templates-parameter-schema");
    let (status, body) = app
        .get_json("/v2/templates/default/template/ref-demo/parameter-schema")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, fixture["response"]["body"]);

    let fixture = golden("templates-parameter-schema-404");
    let (status, body) = app
        .get_json("/v2/templates/default/template/does-not-exist/parameter-schema")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, fixture["response"]["body"]);
}

#[tokio::test]
async fn actions_list_their_schemas_and_examples_as_backstage_does() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/v2/actions").await;
    assert_eq!(status, StatusCode::OK);
    let reference = golden("actions-list")["response"]["body"].clone();
    let ours = body.as_array().unwrap();
    for id in ["debug:log", "debug:wait"] {
        let find = |list: &[Value]| list.iter().find(|a| a["id"] == id).cloned().unwrap();
        let (mine, theirs) = (find(ours), find(reference.as_array().unwrap()));
        assert_eq!(mine["description"], theirs["description"], "{id}");
        assert_eq!(mine["examples"], theirs["examples"], "{id}");
        assert_eq!(mine["schema"]["input"], theirs["schema"]["input"], "{id}");
    }
}

#[tokio::test]
async fn templating_extensions_list_backstages_filters() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/v2/templating-extensions").await;
    assert_eq!(status, StatusCode::OK);
    // Backstage lists only its additions to nunjucks, not nunjucks' built-ins.
    let reference = golden("templating-extensions")["response"]["body"].clone();
    assert_eq!(body, reference);
}
