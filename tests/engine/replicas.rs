use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::git::git_bare;
use crate::engine::support::{admin_url, fresh_db, serve, Server};

const LIMIT: Duration = Duration::from_secs(120);

/// A replica with a short lease, so that takeovers happen within seconds.
async fn start_replica(db_url: &str, extra_env: &[(&str, &str)]) -> Server {
    let mut env = vec![
        ("SCAFFOLDER__WORKER__LEASE_SECONDS", "2"),
        ("SCAFFOLDER__WORKER__HEARTBEAT_SECONDS", "1"),
        ("SCAFFOLDER__WORKER__POLL_SECONDS", "1"),
        ("SCAFFOLDER__LOG__LEVEL", "warn"),
    ];
    env.extend_from_slice(extra_env);
    let stderr = if std::env::var_os("TEST_LOG").is_some() {
        Stdio::inherit()
    } else {
        Stdio::null()
    };
    serve(db_url, &env, stderr).await
}

async fn create(client: &reqwest::Client, base: &str, values: Value) -> String {
    let res = client
        .post(format!("{base}/v2/tasks"))
        .json(&json!({"templateRef": "wait-and-fail", "values": values}))
        .send()
        .await
        .expect("create");
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}

/// All events of a task, following `after` until the completion event.
async fn events_until_completion(client: &reqwest::Client, base: &str, id: &str) -> Vec<Value> {
    let deadline = Instant::now() + LIMIT;
    let mut seen: Vec<Value> = Vec::new();
    let mut after: Option<i64> = None;
    loop {
        assert!(Instant::now() < deadline, "task {id} did not complete: {seen:#?}");
        let url = match after {
            Some(a) => format!("{base}/v2/tasks/{id}/events?after={a}"),
            None => format!("{base}/v2/tasks/{id}/events"),
        };
        let Ok(res) = client.get(url).send().await else {
            continue;
        };
        let events: Vec<Value> = res.json().await.unwrap_or_default();
        let mut done = false;
        for e in events {
            let eid = e["id"].as_i64().unwrap();
            if e["type"] == "completion" {
                done = true;
                if seen.iter().any(|s| s["id"] == e["id"]) {
                    continue;
                }
            } else {
                // `after` must never hand out an event twice or out of order.
                assert!(after.map_or(true, |a| eid > a), "event {eid} after {after:?}");
            }
            after = Some(after.map_or(eid, |a| a.max(eid)));
            seen.push(e);
        }
        if done {
            return seen;
        }
    }
}

/// Follows the event log (long polling) until `step` reports `status`.
async fn wait_for_step(client: &reqwest::Client, base: &str, id: &str, step: &str, status: &str) {
    let deadline = Instant::now() + LIMIT;
    let mut after: Option<i64> = None;
    loop {
        assert!(Instant::now() < deadline, "{id}: step {step} never reported {status}");
        let url = match after {
            Some(a) => format!("{base}/v2/tasks/{id}/events?after={a}"),
            None => format!("{base}/v2/tasks/{id}/events"),
        };
        let events: Vec<Value> = client.get(url).send().await.unwrap().json().await.unwrap();
        for e in &events {
            if e["body"]["stepId"] == step && e["body"]["status"] == status {
                return;
            }
            after = e["id"].as_i64().max(after);
        }
    }
}

/// GET a URL and parse its JSON body.
async fn get_json<T: serde::de::DeserializeOwned>(client: &reqwest::Client, url: String) -> T {
    client
        .get(url)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON body")
}

/// How often a step really ran to its end (not counting reuse of a journal entry).
fn ran(events: &[Value], step: &str) -> usize {
    events
        .iter()
        .filter(|e| {
            e["body"]["stepId"] == step
                && e["body"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("Finished step"))
        })
        .count()
}

fn count(events: &[Value], step: &str, status: &str) -> usize {
    events
        .iter()
        .filter(|e| e["body"]["stepId"] == step && e["body"]["status"] == status)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_run_every_step_of_200_tasks_exactly_once() {
    let db = fresh_db();
    let a = start_replica(&db, &[]).await;
    let b = start_replica(&db, &[]).await;
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for i in 0..200 {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        ids.push(create(&client, base, json!({"seconds": 0})).await);
    }
    let mut per_status: HashMap<String, usize> = HashMap::new();
    for id in &ids {
        let events = events_until_completion(&client, &a.base, id).await;
        for step in ["hello", "wait", "bye"] {
            assert_eq!(count(&events, step, "processing"), 1, "{id} {step}");
            assert_eq!(count(&events, step, "completed"), 1, "{id} {step}");
        }
        assert_eq!(events.iter().filter(|e| e["type"] == "completion").count(), 1);
        let task: Value = get_json(&client, format!("{}/v2/tasks/{id}", b.base)).await;
        *per_status
            .entry(task["status"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(per_status.get("completed"), Some(&200), "{per_status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_replica_s_task_is_resumed_from_its_unfinished_step() {
    let db = fresh_db();
    let client = reqwest::Client::new();
    for round in 0..10 {
        let doomed = start_replica(&db, &[]).await;
        let ids = [
            create(&client, &doomed.base, json!({"seconds": 3})).await,
            create(&client, &doomed.base, json!({"seconds": 3})).await,
        ];
        // Wait until the doomed replica is inside the long step of both tasks.
        for id in &ids {
            wait_for_step(&client, &doomed.base, id, "wait", "processing").await;
        }
        drop(doomed); // SIGKILL
        let survivor = start_replica(&db, &[]).await;
        for id in &ids {
            let events = events_until_completion(&client, &survivor.base, id).await;
            // Finished before the kill: not run again, its outputs reused.
            assert_eq!(ran(&events, "hello"), 1, "round {round} {id}");
            assert!(events.iter().any(|e| e["body"]["stepId"] == "hello"
                && e["body"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("earlier attempt"))));
            // Interrupted: run again by the survivor.
            assert_eq!(count(&events, "wait", "processing"), 2, "round {round} {id}");
            assert_eq!(count(&events, "bye", "processing"), 1, "round {round} {id}");
            assert_eq!(
                events.iter().filter(|e| e["type"] == "recovered").count(),
                1,
                "round {round}"
            );
            let completion = events.last().unwrap();
            assert_eq!(completion["type"], "completion");
            assert_eq!(completion["body"]["output"]["text"][0]["content"], "3 seconds");
            let ids_seen: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
            assert!(ids_seen.windows(2).all(|w| w[0] < w[1]), "{ids_seen:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_during_a_wait_stops_the_step() {
    let db = fresh_db();
    let replica = start_replica(&db, &[]).await;
    let client = reqwest::Client::new();
    let id = create(&client, &replica.base, json!({"seconds": 60})).await;
    wait_for_step(&client, &replica.base, &id, "wait", "processing").await;
    let asked = Instant::now();
    let res = client
        .post(format!("{}/v2/tasks/{id}/cancel", replica.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let events = events_until_completion(&client, &replica.base, &id).await;
    // A figure, not a bound: timing belongs to benchmarks.
    eprintln!("cancel during a 60 s wait took {:?}", asked.elapsed());
    let task: Value = get_json(&client, format!("{}/v2/tasks/{id}", replica.base)).await;
    assert_eq!(task["status"], "cancelled");
    // The wait was cut short, not waited out: no later step began.
    assert_eq!(count(&events, "wait", "completed"), 0);
    assert_eq!(count(&events, "bye", "processing"), 0);
    assert!(events
        .iter()
        .any(|e| e["type"] == "cancelled" && e["body"]["stepId"] == "wait"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graceful_shutdown_hands_running_tasks_to_another_replica_at_once() {
    let db = fresh_db();
    let client = reqwest::Client::new();
    let leaving = start_replica(
        &db,
        &[
            ("SCAFFOLDER__WORKER__SHUTDOWN_GRACE_SECONDS", "0"),
            ("SCAFFOLDER__WORKER__LEASE_SECONDS", "60"),
        ],
    )
    .await;
    let id = create(&client, &leaving.base, json!({"seconds": 2})).await;
    wait_for_step(&client, &leaving.base, &id, "wait", "processing").await;
    // SIGTERM: the task is released, not left to a 60 s lease.
    let pid = leaving.child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let mut leaving = leaving;
    let exit = leaving.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let other = start_replica(&db, &[]).await;
    let events = events_until_completion(&client, &other.base, &id).await;
    // Handed over, not left to its 60 s lease: the new attempt says so.
    assert!(
        events.iter().any(|e| e["type"] == "recovered"
            && e["body"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("its previous worker released it"))),
        "the task was not released at shutdown"
    );
    assert_eq!(ran(&events, "hello"), 1);
    assert_eq!(count(&events, "wait", "processing"), 2);
    assert!(events.iter().any(|e| e["type"] == "recovered"));
    let task: Value = get_json(&client, format!("{}/v2/tasks/{id}", other.base)).await;
    assert_eq!(task["status"], "completed");
}

async fn ready(client: &reqwest::Client, base: &str) -> bool {
    let root = base.trim_end_matches("/api/scaffolder");
    client
        .get(format!("{root}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// Polls readiness until it equals `want`; readiness is what an orchestrator polls too.
async fn wait_ready(client: &reqwest::Client, base: &str, want: bool) {
    let deadline = Instant::now() + LIMIT;
    while ready(client, base).await != want {
        assert!(Instant::now() < deadline, "readiness never became {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_the_database_under_load_leaves_no_task_stuck() {
    let db = fresh_db();
    let db_name = db.rsplit('/').next().unwrap().to_owned();
    let replica = start_replica(&db, &[]).await;
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(create(&client, &replica.base, json!({"seconds": 1})).await);
    }
    wait_for_step(&client, &replica.base, &ids[0], "wait", "processing").await;

    let admin = sqlx::PgPool::connect(&format!("{}/postgres", admin_url()))
        .await
        .unwrap();
    // A restart, as the server sees it: every connection dropped, no new ones for a while.
    sqlx::query(&format!("ALTER DATABASE {db_name} ALLOW_CONNECTIONS false"))
        .execute(&admin)
        .await
        .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&db_name)
        .execute(&admin)
        .await
        .unwrap();
    wait_ready(&client, &replica.base, false).await;
    sqlx::query(&format!("ALTER DATABASE {db_name} ALLOW_CONNECTIONS true"))
        .execute(&admin)
        .await
        .unwrap();
    wait_ready(&client, &replica.base, true).await;

    for id in &ids {
        let events = events_until_completion(&client, &replica.base, id).await;
        assert_eq!(events.iter().filter(|e| e["type"] == "completion").count(), 1);
        let task: Value = get_json(&client, format!("{}/v2/tasks/{id}", replica.base)).await;
        assert!(
            task["status"] == "completed" || task["status"] == "failed",
            "{id} ended {}",
            task["status"]
        );
        assert_ne!(task["status"], "processing");
    }
    // Nothing is left running or waiting.
    let res: Value = get_json(
        &client,
        format!("{}/v2/tasks?status=open&status=processing", replica.base),
    )
    .await;
    assert_eq!(res["totalTasks"], 0, "{res}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_after_a_workspace_writing_step_leaves_its_files_to_the_next() {
    let db = fresh_db();
    let hosts = tempfile::tempdir().unwrap();
    let git_dir = hosts.path().join("git").to_string_lossy().into_owned();
    let env = [("SCAFFOLDER__INTEGRATIONS__LOCAL_GIT__DIR", git_dir.as_str())];
    let client = reqwest::Client::new();
    let create = |base: String, name: String| {
        let client = client.clone();
        async move {
            let res = client
                .post(format!("{base}/v2/tasks"))
                .json(&json!({"templateRef": "fetch-wait-publish", "values": {"name": name, "seconds": 2}}))
                .send()
                .await
                .expect("create");
            assert_eq!(res.status(), 201);
            let body: Value = res.json().await.unwrap();
            body["id"].as_str().unwrap().to_owned()
        }
    };
    for round in 0..10 {
        let doomed = start_replica(&db, &env).await;
        let names = [format!("svc-{round}-a"), format!("svc-{round}-b")];
        let mut ids = Vec::new();
        for name in &names {
            ids.push(create(doomed.base.clone(), name.clone()).await);
        }
        // `fetch` finished (and saved the workspace); `wait` is running.
        for id in &ids {
            wait_for_step(&client, &doomed.base, id, "wait", "processing").await;
        }
        drop(doomed); // SIGKILL
        let survivor = start_replica(&db, &env).await;
        for (id, name) in ids.iter().zip(&names) {
            let events = events_until_completion(&client, &survivor.base, id).await;
            let task: Value = get_json(&client, format!("{}/v2/tasks/{id}", survivor.base)).await;
            assert_eq!(task["status"], "completed", "round {round} {id}: {:#?}", events.last());
            assert_eq!(ran(&events, "fetch"), 1, "round {round}: fetch ran again");
            assert_eq!(count(&events, "wait", "processing"), 2, "round {round}");
            let bare = std::path::Path::new(&git_dir).join(format!("team/{name}.git"));
            assert_eq!(
                git_bare(&bare, &["show", "main:README.md"]),
                format!("# {name}\n"),
                "round {round}"
            );
            assert!(
                git_bare(&bare, &["show", "main:src/main.go"]).contains(&format!("// {name}")),
                "round {round}"
            );
        }
    }
    // Nothing saved outlives the completed tasks.
    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    let (left,): (i64,) = sqlx::query_as("SELECT count(*) FROM task_workspace_blobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
}
