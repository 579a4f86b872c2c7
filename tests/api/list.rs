use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::api::helpers::{golden, keys, spawn_app_with, TestApp};

async fn app_with_tasks(n: usize) -> (TestApp, Vec<String>) {
    let app = spawn_app_with(|s| s.worker.enabled = false).await;
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(app.create_task("wait-and-fail", json!({"seconds": 0})).await);
    }
    (app, ids)
}

fn ids_of(body: &Value) -> Vec<String> {
    body["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn list_is_newest_first_with_a_total() {
    let (app, ids) = app_with_tasks(5).await;
    let (status, body) = app.get_json("/v2/tasks").await;
    assert_eq!(status, StatusCode::OK);
    let fixture = golden("tasks-list");
    assert_eq!(keys(&body), keys(&fixture["response"]["body"]));
    assert_eq!(body["totalTasks"], 5);
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(ids_of(&body), newest_first);
    let (_, asc) = app.get_json("/v2/tasks?order=asc:created_at").await;
    assert_eq!(ids_of(&asc), ids);
}

#[tokio::test]
async fn pages_partition_the_list() {
    let (app, _) = app_with_tasks(5).await;
    let (_, four) = app.get_json("/v2/tasks?limit=4&offset=0").await;
    let (_, a) = app.get_json("/v2/tasks?limit=2&offset=0").await;
    let (_, b) = app.get_json("/v2/tasks?limit=2&offset=2").await;
    let (_, past) = app.get_json("/v2/tasks?limit=2&offset=5").await;
    assert_eq!(ids_of(&four).len(), 4);
    assert_eq!([ids_of(&a), ids_of(&b)].concat(), ids_of(&four));
    assert_eq!(ids_of(&past).len(), 0);
    assert_eq!(past["totalTasks"], 5);
}

#[tokio::test]
async fn filters_by_creator_and_status() {
    let (app, ids) = app_with_tasks(3).await;
    let (_, owned) = app.get_json("/v2/tasks?createdBy=user%3Adevelopment%2Fguest").await;
    assert_eq!(owned["totalTasks"], 0);
    assert_eq!(ids_of(&owned).len(), 0);

    let (status, _) = app
        .post_json(&format!("/v2/tasks/{}/cancel", ids[0]), &Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, cancelled) = app.get_json("/v2/tasks?status=cancelled").await;
    assert_eq!(ids_of(&cancelled), vec![ids[0].clone()]);
    let (_, several) = app.get_json("/v2/tasks?status=cancelled&status=open").await;
    assert_eq!(several["totalTasks"], 3);
}

#[tokio::test]
async fn bad_list_queries_are_400() {
    let (app, _) = app_with_tasks(0).await;
    for query in [
        "limit=-1",
        "limit=x",
        "offset=1.5",
        "status=sleeping",
        "order=up:created_at",
        "order=desc:secrets",
        // Found by schemathesis: a NUL byte reached PostgreSQL and gave a 500.
        "createdBy=user%3Adefault%2Fa%00b",
    ] {
        let (status, body) = app.get_json(&format!("/v2/tasks?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(body["error"]["name"], "InputError", "{query}");
    }
}
