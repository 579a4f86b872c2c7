//! The catalog actions against the fake catalog: tokens, registration,
//! re-registration and fetching.

use std::sync::Arc;

use scaffolder::actions::catalog::{CatalogClient, CatalogFetch, CatalogRegister};
use scaffolder::actions::{builtin_actions_with, ActionDeps, ActionRegistry};
use scaffolder::engine::Runner;
use scaffolder::service::{DryRunRequest, DryRunService};
use scaffolder::templating::Renderer;
use serde_json::json;

use crate::publish::fake_catalog::FakeCatalog;
use crate::publish::helpers::Harness;

fn client(catalog: &FakeCatalog, token: Option<&str>) -> Option<Arc<CatalogClient>> {
    Some(Arc::new(
        CatalogClient::new(&catalog.base_url, token.map(str::to_owned)).expect("client"),
    ))
}

#[tokio::test]
async fn register_forwards_the_initiators_token_and_outputs_the_entity() {
    let catalog = FakeCatalog::start();
    let register = CatalogRegister::new(client(&catalog, Some("service-token")));
    let mut h = Harness::new();
    h.secrets.insert("backstageToken".into(), json!("user-token"));
    let out = h
        .run(
            &register,
            json!({"repoContentsUrl": "https://github.example/acme/svc/blob/main"}),
        )
        .await
        .expect("registered");
    assert_eq!(out["entityRef"], json!("component:default/svc"));
    assert_eq!(
        out["catalogInfoUrl"],
        json!("https://github.example/acme/svc/blob/main/catalog-info.yaml")
    );
    let requests = catalog.requests();
    assert_eq!(requests.len(), 2);
    assert!(
        requests.iter().all(|r| r.token.as_deref() == Some("user-token")),
        "{requests:?}"
    );
    assert_eq!(
        requests[0].body,
        json!({"type": "url", "target": "https://github.example/acme/svc/blob/main/catalog-info.yaml"})
    );
    assert_eq!(requests[1].query, "dryRun=true");

    // A re-run finds its location registered (409) and still succeeds.
    let again = h
        .run(
            &register,
            json!({"catalogInfoUrl": "https://github.example/acme/svc/blob/main/catalog-info.yaml"}),
        )
        .await
        .expect("re-registration is fine");
    assert_eq!(again["entityRef"], json!("component:default/svc"));

    // Without an initiator token the service token is used.
    let anonymous = Harness::new();
    anonymous
        .run(&register, json!({"catalogInfoUrl": "https://x/other.yaml"}))
        .await
        .expect("registered");
    assert_eq!(
        catalog.requests().last().and_then(|r| r.token.clone()).as_deref(),
        Some("service-token")
    );
}

#[tokio::test]
async fn register_failures_fail_the_step_unless_optional() {
    let catalog = FakeCatalog::start();
    // No token at all: the fake catalog answers 401.
    let register = CatalogRegister::new(client(&catalog, None));
    let h = Harness::new();
    let err = h
        .run(&register, json!({"catalogInfoUrl": "https://x/c.yaml"}))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("401") && err.contains("Missing credentials"), "{err}");
    let out = h
        .run(
            &register,
            json!({"catalogInfoUrl": "https://x/c.yaml", "optional": true}),
        )
        .await
        .expect("optional registrations do not fail the task");
    assert_eq!(out["catalogInfoUrl"], json!("https://x/c.yaml"));
}

#[tokio::test]
async fn fetch_reads_entities_by_reference() {
    let catalog = FakeCatalog::start();
    let fetch = CatalogFetch::new(client(&catalog, Some("service-token")));
    let mut h = Harness::new();
    h.secrets.insert("backstageToken".into(), json!("user-token"));
    let out = h
        .run(&fetch, json!({"entityRef": "svc", "defaultKind": "Component"}))
        .await
        .expect("fetched");
    assert_eq!(out["entity"]["metadata"]["name"], json!("svc"));
    let out = h
        .run(
            &fetch,
            json!({"entityRefs": ["component:default/svc", "component:default/gone"], "optional": true}),
        )
        .await
        .expect("fetched");
    assert_eq!(out["entities"][1], json!(null));
    let err = h
        .run(&fetch, json!({"entityRef": "component:default/gone"}))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(err, "Entity component:default/gone not found");
    assert!(catalog
        .requests()
        .iter()
        .all(|r| r.token.as_deref() == Some("user-token")));
}

/// A capture of `tests/data/api-golden-extra` (Backstage 4.3's answers).
fn capture(name: &str) -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/api-golden-extra")
        .join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("capture")).expect("capture JSON")
}

fn dry_run_service(catalog: Option<Arc<CatalogClient>>) -> DryRunService {
    let deps = ActionDeps {
        catalog,
        ..Default::default()
    };
    let runner = Runner::new(
        ActionRegistry::new(builtin_actions_with(&deps)),
        Arc::new(Renderer::new()),
    );
    DryRunService::new(runner, None)
}

fn dry_run_request(body: &serde_json::Value) -> DryRunRequest {
    DryRunRequest {
        template: body["template"].clone(),
        values: body["values"].clone(),
        secrets: Default::default(),
        files: Vec::new(),
    }
}

/// As Backstage's: `catalog:fetch` runs in a dry-run, against the catalog; a
/// missing entity ends the dry-run with its error, `optional` gives `null`.
#[tokio::test]
async fn fetch_runs_in_a_dry_run_against_the_catalog_like_backstage() {
    let catalog = FakeCatalog::start();
    let service = dry_run_service(client(&catalog, Some("service-token")));

    let missing = capture("dry-run-catalog-fetch-missing");
    let failure = service
        .run(dry_run_request(&missing["request"]["body"]))
        .await
        .expect("a step result")
        .expect_err("the entity is missing");
    let expected = &missing["response"]["body"]["error"];
    assert_eq!(missing["response"]["status"], json!(500));
    assert_eq!(json!(failure.name), expected["name"]);
    assert_eq!(json!(failure.message), expected["message"]);

    // The capture's second entity is one the reference's catalog holds; ours holds `svc`.
    let optional = capture("dry-run-catalog-fetch-optional");
    let mut body = optional["request"]["body"].clone();
    body["template"]["spec"]["steps"][1]["input"]["entityRefs"][1] = json!("component:default/svc");
    let result = service
        .run(dry_run_request(&body))
        .await
        .expect("a step result")
        .expect("optional entities may be missing");
    let mut expected = optional["response"]["body"]["output"].clone();
    expected["second"] = json!("svc");
    assert_eq!(result.output, expected);
    assert!(catalog
        .requests()
        .iter()
        .all(|r| r.token.as_deref() == Some("service-token")));

    // Without a catalog every entity is missing: the same failure, saying why.
    let failure = dry_run_service(None)
        .run(dry_run_request(&missing["request"]["body"]))
        .await
        .expect("a step result")
        .expect_err("no catalog holds no entity");
    assert_eq!(failure.name, "Error");
    assert!(
        failure
            .message
            .starts_with("Entity component:default/missing not found")
            && failure.message.contains("catalog.base_url"),
        "{}",
        failure.message
    );
    let result = dry_run_service(None)
        .run(dry_run_request(&body))
        .await
        .expect("a step result")
        .expect("optional entities may be missing");
    assert_eq!(result.output["entity"], json!(null));
}
