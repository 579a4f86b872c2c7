use std::collections::HashMap;

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::auth::helpers::{jwks_server, spawn_app_with, FakeServer, TestKey};
use scaffolder::config::{BackstageAuthSettings, GithubIntegrationSettings};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const SKELETON_BLOB: &str = "1111111111111111111111111111111111111111";
const TEMPLATE_BLOB: &str = "2222222222222222222222222222222222222222";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn template(name: &str) -> Value {
    json!({
        "apiVersion": "scaffolder.backstage.io/v1beta3",
        "kind": "Template",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "parameters": {"properties": {"who": {"type": "string"}}},
            "steps": [
                {"id": "fetch", "action": "fetch:template",
                 "input": {"url": "./skeleton", "values": {"who": "${{ parameters.who }}"}}},
                {"id": "show", "action": "debug:log", "input": {"listWorkspace": "with-contents"}},
            ],
        },
    })
}

/// A GitHub host (web URLs and `/api/v3`) with `acme/tpl` holding
/// `templates/git-demo/{template.yaml,skeleton/hello.txt}` at `main`.
fn fake_github() -> FakeServer {
    let yaml = serde_norway::to_string(&template("git-demo")).expect("yaml");
    let gh = FakeServer::start(HashMap::new());
    gh.set("/api/v3/repos/acme/tpl/commits/main", json!({"sha": COMMIT}));
    gh.set(
        &format!("/api/v3/repos/acme/tpl/git/trees/{COMMIT}"),
        json!({"sha": COMMIT, "truncated": false, "tree": [
            {"path": "templates", "type": "tree", "mode": "040000", "sha": COMMIT},
            {"path": "templates/git-demo/template.yaml", "type": "blob", "mode": "100644", "sha": TEMPLATE_BLOB},
            {"path": "templates/git-demo/skeleton/hello.txt", "type": "blob", "mode": "100644", "sha": SKELETON_BLOB},
            {"path": "templates/other/x.txt", "type": "blob", "mode": "100644", "sha": TEMPLATE_BLOB},
        ]}),
    );
    gh.set(
        &format!("/api/v3/repos/acme/tpl/git/blobs/{SKELETON_BLOB}"),
        json!({"encoding": "base64", "content": b64("Hello ${{ values.who }}\n")}),
    );
    gh.set(
        &format!("/api/v3/repos/acme/tpl/git/blobs/{TEMPLATE_BLOB}"),
        json!({"encoding": "base64", "content": b64(&yaml)}),
    );
    gh
}

fn github_integration(gh: &FakeServer) -> GithubIntegrationSettings {
    GithubIntegrationSettings {
        host: gh.url.trim_start_matches("http://").to_owned(),
        api_base_url: Some(format!("{}/api/v3", gh.url)),
        token: Some("gh-token".into()),
        app: None,
    }
}

async fn logs_of(app: &crate::auth::helpers::TestApp, id: &str, token: Option<&str>) -> String {
    let (status, events) = app.get(&format!("/v2/tasks/{id}/events"), token).await;
    assert_eq!(status, StatusCode::OK);
    events
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["body"]["message"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn templates_from_github_urls_fetch_their_skeleton_from_the_same_commit() {
    let gh = fake_github();
    let cache = tempfile::tempdir().expect("cache");
    let url = format!("{}/acme/tpl/blob/main/templates/git-demo/template.yaml", gh.url);
    let integration = github_integration(&gh);
    let cache_dir = cache.path().to_path_buf();
    let app = spawn_app_with(move |s| {
        s.integrations.github = vec![integration];
        s.templates.urls = vec![url];
        s.templates.cache_dir = Some(cache_dir);
    })
    .await;
    for who in ["git", "again"] {
        let id = app.create(None, "git-demo", json!({"who": who})).await;
        let task = app.wait_finished(&id, None).await;
        let logs = logs_of(&app, &id, None).await;
        assert_eq!(task["status"], "completed", "{logs}");
        assert!(logs.contains(&format!("Hello {who}")), "{logs}");
        assert!(
            task["spec"]["templateInfo"]["baseUrl"]
                .as_str()
                .is_some_and(|b| b.ends_with("/acme/tpl/blob/main/templates/git-demo/template.yaml")),
            "{task}"
        );
    }
    // Trees and blobs are cached by commit and hash; only the ref is asked again.
    assert_eq!(gh.hits(&format!("/api/v3/repos/acme/tpl/git/trees/{COMMIT}")), 1);
    assert_eq!(gh.hits(&format!("/api/v3/repos/acme/tpl/git/blobs/{SKELETON_BLOB}")), 1);
    assert!(gh.hits("/api/v3/repos/acme/tpl/commits/main") >= 3);
    assert!(gh
        .recorded()
        .iter()
        .all(|r| r.authorization.as_deref().is_some_and(|a| a.contains("gh-token"))));
}

#[tokio::test]
async fn catalog_templates_use_the_callers_token_and_their_source_location() {
    let gh = fake_github();
    let key = TestKey::new("k1");
    let jwks = jwks_server(&[&key]);
    let catalog = FakeServer::start(HashMap::new());
    let mut entity = template("cat-demo");
    entity["metadata"]["annotations"] = json!({
        "backstage.io/managed-by-location": format!("url:{}/acme/tpl/blob/main/templates/git-demo/catalog-info.yaml", gh.url),
        "backstage.io/source-location": format!("url:{}/acme/tpl/tree/main/templates/git-demo/", gh.url),
    });
    catalog.set("/api/catalog/entities/by-name/template/default/cat-demo", entity);
    catalog.set(
        "/api/catalog/entities/by-name/user/default/jane",
        json!({"apiVersion": "backstage.io/v1alpha1", "kind": "User",
               "metadata": {"name": "jane", "namespace": "default"}, "spec": {"profile": {"email": "jane@example.com"}}}),
    );
    let integration = github_integration(&gh);
    let (catalog_url, jwks_url) = (format!("{}/api/catalog", catalog.url), jwks.url.clone());
    let cache = tempfile::tempdir().expect("cache");
    let cache_dir = cache.path().to_path_buf();
    let app = spawn_app_with(move |s| {
        s.integrations.github = vec![integration];
        s.catalog.base_url = Some(catalog_url);
        s.templates.cache_dir = Some(cache_dir);
        s.auth.backstage = Some(BackstageAuthSettings {
            base_url: jwks_url,
            jwks_url: None,
            issuer: None,
            audience: None,
            jwks_min_refresh_seconds: 30,
        });
    })
    .await;
    let jane = key.token("user:default/jane", 600);

    let (status, schema) = app
        .get("/v2/templates/default/template/cat-demo/parameter-schema", Some(&jane))
        .await;
    assert_eq!(status, StatusCode::OK, "{schema}");
    let (status, _) = app
        .get("/v2/templates/default/template/not-there/parameter-schema", Some(&jane))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let id = app
        .create(Some(&jane), "template:default/cat-demo", json!({"who": "cat"}))
        .await;
    let task = app.wait_finished(&id, Some(&jane)).await;
    let logs = logs_of(&app, &id, Some(&jane)).await;
    assert_eq!(task["status"], "completed", "{logs}");
    assert!(logs.contains("Hello cat"), "{logs}");
    assert_eq!(
        task["spec"]["templateInfo"]["baseUrl"],
        format!("{}/acme/tpl/tree/main/templates/git-demo/", gh.url)
    );
    assert_eq!(task["spec"]["user"]["ref"], "user:default/jane");
    assert_eq!(task["spec"]["user"]["entity"]["metadata"]["name"], "jane", "{task}");
    // Every catalog call carried the caller's token.
    let calls = catalog.recorded();
    assert!(!calls.is_empty());
    assert!(
        calls
            .iter()
            .all(|r| r.authorization.as_deref() == Some(&format!("Bearer {jane}"))),
        "{calls:?}"
    );
}

/// A remote skeleton whose tree holds a link out and then a file "inside"
/// that link: writing it would land beyond the link. The fetch is refused and
/// nothing is written there.
#[tokio::test]
async fn a_remote_tree_cannot_write_through_its_own_symbolic_link() {
    const LINK_BLOB: &str = "3333333333333333333333333333333333333333";
    let canary = tempfile::tempdir().expect("canary");
    let gh = fake_github();
    gh.set(
        &format!("/api/v3/repos/acme/tpl/git/trees/{COMMIT}"),
        json!({"sha": COMMIT, "truncated": false, "tree": [
            {"path": "templates/git-demo/template.yaml", "type": "blob", "mode": "100644", "sha": TEMPLATE_BLOB},
            {"path": "templates/git-demo/skeleton/evil", "type": "blob", "mode": "120000", "sha": LINK_BLOB},
            {"path": "templates/git-demo/skeleton/evil/pwned.txt", "type": "blob", "mode": "100644", "sha": SKELETON_BLOB},
        ]}),
    );
    gh.set(
        &format!("/api/v3/repos/acme/tpl/git/blobs/{LINK_BLOB}"),
        json!({"encoding": "base64", "content": b64(&canary.path().display().to_string())}),
    );
    let cache = tempfile::tempdir().expect("cache");
    let url = format!("{}/acme/tpl/blob/main/templates/git-demo/template.yaml", gh.url);
    let integration = github_integration(&gh);
    let cache_dir = cache.path().to_path_buf();
    let app = spawn_app_with(move |s| {
        s.integrations.github = vec![integration];
        s.templates.urls = vec![url];
        s.templates.cache_dir = Some(cache_dir);
    })
    .await;
    let id = app.create(None, "git-demo", json!({"who": "x"})).await;
    let task = app.wait_finished(&id, None).await;
    let logs = logs_of(&app, &id, None).await;
    assert_eq!(task["status"], "failed", "{logs}");
    assert!(logs.contains("beyond a symbolic link"), "{logs}");
    let written: Vec<_> = std::fs::read_dir(canary.path()).expect("canary").collect();
    assert!(written.is_empty(), "the tree wrote outside its checkout: {written:?}");
}

#[tokio::test]
async fn a_blob_answer_without_content_fails_the_fetch_naming_the_field() {
    let gh = fake_github();
    // Before, a blob without `content` was written as an empty file.
    gh.set(
        &format!("/api/v3/repos/acme/tpl/git/blobs/{SKELETON_BLOB}"),
        json!({"encoding": "base64", "sha": SKELETON_BLOB}),
    );
    let cache = tempfile::tempdir().expect("cache");
    let url = format!("{}/acme/tpl/blob/main/templates/git-demo/template.yaml", gh.url);
    let integration = github_integration(&gh);
    let cache_dir = cache.path().to_path_buf();
    let app = spawn_app_with(move |s| {
        s.integrations.github = vec![integration];
        s.templates.urls = vec![url];
        s.templates.cache_dir = Some(cache_dir);
    })
    .await;
    let id = app.create(None, "git-demo", json!({"who": "x"})).await;
    let task = app.wait_finished(&id, None).await;
    let logs = logs_of(&app, &id, None).await;
    assert_eq!(task["status"], "failed", "{logs}");
    assert!(logs.contains("missing field `content`"), "{logs}");
}
