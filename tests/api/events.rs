//! Long polling and the SSE event stream.

use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::api::helpers::{golden, spawn_app, spawn_app_with, LIMIT};

/// Reads SSE frames until the server closes the stream.
async fn read_sse(res: reqwest::Response) -> Vec<(String, Option<i64>, Value)> {
    let mut text = String::new();
    let mut stream = res.bytes_stream();
    let read = async {
        while let Some(chunk) = stream.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
        }
    };
    tokio::time::timeout(LIMIT, read)
        .await
        .expect("stream closes after completion");
    parse_frames(&text)
}

fn parse_frames(text: &str) -> Vec<(String, Option<i64>, Value)> {
    text.split("\n\n")
        .filter(|f| !f.trim().is_empty() && !f.starts_with(':'))
        .map(|frame| {
            let mut event = String::new();
            let mut id = None;
            let mut data = Value::Null;
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    event = v.to_owned();
                } else if let Some(v) = line.strip_prefix("id: ") {
                    id = v.parse().ok();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(v).expect("data is JSON");
                }
            }
            (event, id, data)
        })
        .collect()
}

#[tokio::test]
async fn events_after_n_returns_later_events_and_always_the_completion() {
    let app = spawn_app().await;
    let id = app.create_task("wait-and-fail", json!({"seconds": 0})).await;
    let all = app.events_until_completion(&id, LIMIT).await;
    let middle = all[all.len() / 2]["id"].as_i64().unwrap();
    let (status, later) = app.get_json(&format!("/v2/tasks/{id}/events?after={middle}")).await;
    assert_eq!(status, StatusCode::OK);
    let expected: Vec<&Value> = all.iter().filter(|e| e["id"].as_i64().unwrap() > middle).collect();
    assert_eq!(later.as_array().unwrap().iter().collect::<Vec<_>>(), expected);

    // As in Backstage, a finished task never long-polls: the completion comes back.
    let last = all.last().unwrap()["id"].as_i64().unwrap();
    let fixture = golden("tasks-events-after");
    let (_, tail) = app.get_json(&format!("/v2/tasks/{id}/events?after={last}")).await;
    let tail = tail.as_array().unwrap().clone();
    assert_eq!(tail.len(), fixture["response"]["body"].as_array().unwrap().len());
    assert_eq!(tail[0]["type"], "completion");
}

#[tokio::test]
async fn long_poll_waits_for_new_events_and_times_out_with_an_empty_list() {
    let app = spawn_app_with(|s| {
        s.server.long_poll_seconds = 1;
        s.worker.enabled = false;
    })
    .await;
    let id = app.create_task("wait-and-fail", json!({"seconds": 0})).await;
    let started = std::time::Instant::now();
    let (status, body) = app.get_json(&format!("/v2/tasks/{id}/events")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!([]));
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn events_of_unknown_tasks_are_404() {
    let app = spawn_app().await;
    let fixture = golden("tasks-events-404");
    let (status, body) = app
        .get_json("/v2/tasks/00000000-0000-0000-0000-000000000000/events")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, fixture["response"]["body"]);
    let (status, body) = app
        .get_json("/v2/tasks/00000000-0000-0000-0000-000000000000/events?after=x")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn eventstream_frames_every_event_and_closes_after_completion() {
    let app = spawn_app().await;
    let id = app.create_task("wait-and-fail", json!({"seconds": 1})).await;
    let res = app
        .client
        .get(app.api(&format!("/v2/tasks/{id}/eventstream")))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let fixture = golden("tasks-eventstream");
    assert_eq!(
        res.headers()["content-type"],
        fixture["response"]["headers"]["content-type"].as_str().unwrap()
    );
    assert_eq!(res.headers()["cache-control"], "no-cache");
    assert_eq!(res.headers()["x-accel-buffering"], "no");
    let frames = read_sse(res).await;
    assert!(frames.len() > 5);
    for (event, id_line, data) in &frames {
        assert_eq!(event, data["type"].as_str().unwrap());
        assert_eq!(*id_line, data["id"].as_i64());
    }
    assert_eq!(frames.last().unwrap().0, "completion");
    let from_log = app.events_until_completion(&id, LIMIT).await;
    let streamed: Vec<Value> = frames.into_iter().map(|f| f.2).collect();
    assert_eq!(streamed, from_log);
}

#[tokio::test]
async fn eventstream_resumes_from_after_or_last_event_id() {
    let app = spawn_app().await;
    let id = app.create_task("wait-and-fail", json!({"seconds": 0})).await;
    let all = app.events_until_completion(&id, LIMIT).await;
    let middle = all[all.len() / 2]["id"].as_i64().unwrap();
    let expected: Vec<Value> = all
        .iter()
        .filter(|e| e["id"].as_i64().unwrap() > middle)
        .cloned()
        .collect();

    let res = app
        .client
        .get(app.api(&format!("/v2/tasks/{id}/eventstream?after={middle}")))
        .send()
        .await
        .unwrap();
    let got: Vec<Value> = read_sse(res).await.into_iter().map(|f| f.2).collect();
    assert_eq!(got, expected);

    let res = app
        .client
        .get(app.api(&format!("/v2/tasks/{id}/eventstream?after=0")))
        .header("last-event-id", middle.to_string())
        .send()
        .await
        .unwrap();
    let got: Vec<Value> = read_sse(res).await.into_iter().map(|f| f.2).collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn eventstream_sends_keepalive_comments_while_idle() {
    let app = spawn_app_with(|s| {
        s.server.sse_keepalive_seconds = 1;
        s.worker.enabled = false;
    })
    .await;
    let id = app.create_task("wait-and-fail", json!({"seconds": 0})).await;
    let res = app
        .client
        .get(app.api(&format!("/v2/tasks/{id}/eventstream")))
        .send()
        .await
        .unwrap();
    let mut stream = res.bytes_stream();
    let chunk = tokio::time::timeout(LIMIT, stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(&chunk[..], b": keep-alive\n\n");
}

#[tokio::test]
async fn eventstream_of_an_unknown_task_is_a_json_404() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.api("/v2/tasks/00000000-0000-0000-0000-000000000000/eventstream"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.headers()["content-type"], "application/json; charset=utf-8");
}
