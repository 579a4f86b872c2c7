//! The client commands against a server started by the test.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cli::helpers::{run, scaffolder, spawn, Server};

#[tokio::test]
async fn create_follows_a_task_to_its_end() {
    let server = Server::start().await;
    let out = server.cli(&["create", "wait-and-fail", "--set", "seconds=0"]).await;
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert!(out.stderr.contains("created"), "{}", out.stderr);
    assert!(out.stderr.contains("✓ Say hello"), "{}", out.stderr);
    assert!(out.stderr.contains("- Fail when asked skipped"), "{}", out.stderr);
    assert!(out.stderr.contains("✓ Say goodbye"), "{}", out.stderr);
    assert!(out.stdout.contains("Waited:\n  0 seconds"), "{}", out.stdout);

    let out = server
        .cli(&[
            "create",
            "template:default/wait-and-fail",
            "--set",
            "seconds=0",
            "--output",
            "json",
            "-v",
        ])
        .await;
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert!(
        out.stderr.contains("    info: waiting 0s"),
        "verbose shows log lines:\n{}",
        out.stderr
    );
    let report = out.json();
    assert_eq!(report["status"], "completed");
    assert_eq!(report["output"]["text"][0]["content"], "0 seconds");
    let ids: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["hello", "wait", "boom", "bye"]);
    let id = report["id"].as_str().unwrap();
    assert_eq!(server.status(id).await, "completed");

    let out = server
        .cli(&["create", "wait-and-fail", "--set", "seconds=0", "--set", "fail=true"])
        .await;
    assert_eq!(out.code, Some(1), "stderr:\n{}", out.stderr);
    assert!(out.stderr.contains("✗ Fail when asked"), "{}", out.stderr);
    assert!(out.stderr.contains("does-not:exist"), "{}", out.stderr);
}

#[tokio::test]
async fn server_errors_are_printed_as_backstage_words_them() {
    let server = Server::start().await;
    let out = server.cli(&["create", "wait-and-fail", "--set", "seconds=soon"]).await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("instance.seconds is not of a type(s) number"),
        "{}",
        out.stderr
    );
    let out = server.cli(&["create", "nope"]).await;
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    assert!(out.stderr.contains("not found"), "{}", out.stderr);

    let missing = uuid::Uuid::new_v4().to_string();
    let out = server.cli(&["tasks", "show", &missing]).await;
    assert_eq!(out.code, Some(3));
    assert!(
        out.stderr.contains(&format!("No task with id '{missing}' found")),
        "{}",
        out.stderr
    );

    // Nobody listens here.
    let data = tempfile::tempdir().unwrap();
    let out = run(data.path(), &["--server", "http://127.0.0.1:9", "actions", "list"]).await;
    assert_eq!(out.code, Some(4));
    assert!(out.stderr.contains("cannot reach"), "{}", out.stderr);
}

#[tokio::test]
async fn tasks_list_show_logs_cancel_and_retry() {
    let server = Server::start().await;
    let id = server.create("wait-and-fail", json!({"seconds": 300})).await;
    server.wait_for_status(&id, "processing").await;
    server.wait_for_log(&id, "Beginning step Wait").await;

    let out = server
        .cli(&["tasks", "list", "--status", "processing", "--limit", "5"])
        .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains(&id), "{}", out.stdout);
    assert!(out.stdout.contains("template:default/wait-and-fail"), "{}", out.stdout);
    let out = server.cli(&["tasks", "list", "--status", "completed"]).await;
    assert!(!out.stdout.contains(&id), "{}", out.stdout);
    let out = server.cli(&["tasks", "list", "--output", "json"]).await;
    assert_eq!(out.json()["totalTasks"], 1);

    let out = server.cli(&["tasks", "show", &id]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("processing"), "{}", out.stdout);
    assert!(out.stdout.contains("✓ Say hello (hello) completed"), "{}", out.stdout);
    assert!(out.stdout.contains("▸ Wait (wait) processing"), "{}", out.stdout);
    assert!(out.stdout.contains("seconds: 300"), "{}", out.stdout);

    let out = server.cli(&["tasks", "logs", &id]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("[hello] info: waiting 300s"), "{}", out.stdout);

    let out = server.cli(&["tasks", "cancel", &id]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    server.wait_for_status(&id, "cancelled").await;
    let out = server.cli(&["tasks", "show", &id]).await;
    assert!(out.stdout.contains("cancelled"), "{}", out.stdout);
    assert!(out.stdout.contains("⊘ Wait (wait) cancelled"), "{}", out.stdout);
    // Following a cancelled task ends at once, with the cancel's exit code.
    let out = server.cli(&["tasks", "logs", &id, "--follow"]).await;
    assert_eq!(out.code, Some(130), "{}", out.stderr);
    assert!(
        out.stdout.contains("Run completed with status: cancelled"),
        "{}",
        out.stdout
    );
    // Cancelling a finished task changes nothing and says so.
    let out = server.cli(&["tasks", "cancel", &id]).await;
    assert_eq!(out.code, Some(0));
    assert!(out.stderr.contains("already finished"), "{}", out.stderr);

    let out = server.cli(&["tasks", "retry", &id]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("re-opened"), "{}", out.stderr);
    let deadline = tokio::time::Instant::now() + crate::common::PATIENCE;
    while server.status(&id).await == "cancelled" {
        assert!(tokio::time::Instant::now() < deadline, "the retry never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = server.cli(&["tasks", "cancel", &id]).await;
    assert_eq!(out.code, Some(0));
    server.wait_for_status(&id, "cancelled").await;
}

#[tokio::test]
async fn retry_follow_and_logs_follow_end_with_the_task() {
    let server = Server::start().await;
    let id = server
        .create("wait-and-fail", json!({"seconds": 0, "fail": true}))
        .await;
    server.wait_for_status(&id, "failed").await;
    let out = server.cli(&["tasks", "logs", &id, "--follow"]).await;
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stdout.contains("Run completed with status: failed"),
        "{}",
        out.stdout
    );

    let out = server
        .cli(&["tasks", "retry", &id, "--follow", "--output", "json"])
        .await;
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let report = out.json();
    assert_eq!(report["status"], "failed");
    assert_eq!(report["id"], id.as_str());
}

#[tokio::test]
async fn templates_show_and_actions_list() {
    let server = Server::start().await;
    let out = server.cli(&["templates", "show", "template:team/paged"]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.starts_with("Paged form (template:team/paged)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("1. Basics"), "{}", out.stdout);
    assert!(out.stdout.contains("  name (required)  string"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("2. Advanced  (shown when ${{ parameters.advanced }})"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("  replicas (required)  integer"), "{}", out.stdout);
    let out = server
        .cli(&["templates", "show", "team/paged", "--output", "json"])
        .await;
    assert_eq!(out.json()["steps"][1]["title"], "Advanced");
    let out = server.cli(&["templates", "show", "nope"]).await;
    assert_eq!(out.code, Some(3), "{}", out.stderr);

    let out = server.cli(&["actions", "list"]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("debug:wait"), "{}", out.stdout);
    assert!(out.stdout.contains("publish:github"), "{}", out.stdout);
    let out = server.cli(&["actions", "list", "--output", "json"]).await;
    assert!(out
        .json()
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["id"] == "fetch:template"));
}

/// A server that drops the event stream after the first event: the client
/// comes back with `Last-Event-ID` and gets the rest.
#[tokio::test]
async fn the_event_stream_is_resumed_after_a_dropped_connection() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = requests.clone();
    tokio::spawn(async move {
        let frames = [
            concat!(
                "event: log\nid: 1\ndata: {\"id\":1,\"taskId\":\"t\",\"type\":\"log\",",
                "\"createdAt\":\"2025-01-01T00:00:00.000Z\",\"body\":{\"message\":\"first\",\"stepId\":\"a\"}}\n\n"
            ),
            concat!(
                ": keep-alive\n\nevent: completion\nid: 2\ndata: {\"id\":2,\"taskId\":\"t\",\"type\":\"completion\",",
                "\"createdAt\":\"2025-01-01T00:00:01.000Z\",\"body\":{\"message\":\"Run completed with status: completed\"}}\n\n"
            ),
        ];
        for frame in frames {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            seen.lock().unwrap().push(String::from_utf8_lossy(&head).into_owned());
            let response =
                format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n{frame}");
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        }
    });
    let data = tempfile::tempdir().unwrap();
    let mut cmd = scaffolder(data.path());
    cmd.args([
        "--server",
        &format!("http://127.0.0.1:{port}"),
        "tasks",
        "logs",
        "t",
        "--follow",
    ]);
    let out = spawn(cmd).finish(crate::common::PATIENCE).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "2025-01-01T00:00:00.000Z [a] first\n2025-01-01T00:00:01.000Z Run completed with status: completed\n"
    );
    assert!(out.stderr.contains("resuming after event 1"), "{}", out.stderr);
    let requests = requests.lock().unwrap();
    assert_eq!(requests.len(), 2);
    assert!(requests[0].starts_with("GET /api/scaffolder/v2/tasks/t/eventstream HTTP/1.1"));
    assert!(!requests[0].to_ascii_lowercase().contains("last-event-id"));
    assert!(
        requests[1].to_ascii_lowercase().contains("last-event-id: 1\r\n"),
        "{}",
        requests[1]
    );
}
