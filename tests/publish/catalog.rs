//! The catalog actions against the fake catalog: tokens, registration,
//! re-registration and fetching.

use std::sync::Arc;

use scaffolder::actions::catalog::{CatalogClient, CatalogFetch, CatalogRegister};
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
