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

#[tokio::test]
async fn the_github_module_actions_are_listed_in_backstages_shape() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/v2/actions").await;
    assert_eq!(status, StatusCode::OK);
    let ours = body.as_array().unwrap();
    let reference = golden("actions-list-modules")["response"]["body"].clone();
    let theirs: Vec<&Value> = reference
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["id"].as_str().is_some_and(|id| id.starts_with("github:")))
        .collect();
    assert_eq!(theirs.len(), 12);
    let keys = |v: &Value| {
        v.as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    for reference in theirs {
        let id = &reference["id"];
        let mine = ours
            .iter()
            .find(|a| a["id"] == *id)
            .unwrap_or_else(|| panic!("{id} is not listed"));
        assert_eq!(keys(mine), keys(reference), "{id}: the entry's fields");
        assert_eq!(
            keys(&mine["schema"]),
            keys(&reference["schema"]),
            "{id}: input and output schemas"
        );
        assert_eq!(
            keys(&mine["schema"]["input"]["properties"]),
            keys(&reference["schema"]["input"]["properties"]),
            "{id}: input properties, in Backstage's order"
        );
        for example in mine["examples"].as_array().unwrap() {
            assert_eq!(keys(example), ["description", "example"], "{id}");
            assert!(
                example["example"].as_str().is_some_and(|y| y.starts_with("steps:\n")),
                "{id}: YAML text"
            );
        }
    }
}
