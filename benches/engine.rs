//! Engine load harness (not a test): `cargo bench --bench engine`.
//!
//! Prints, against the local PostgreSQL (`TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432`):
//! - the time for 50 tasks submitted at once to all complete (one replica);
//! - tasks/s sustained by two replicas over 400 tasks;
//! - database transactions per task (from `pg_stat_database`).
//!
//! Each task is the `wait-and-fail` test template with `seconds: 0`: four
//! steps, two of them `debug:log`, so the figures measure the engine, not the
//! actions.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

struct Replica {
    child: Child,
    base: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

async fn start(db_url: &str) -> Replica {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let child = Command::new(env!("CARGO_BIN_EXE_scaffolder"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--templates"])
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/templates"))
        .env("DATABASE_URL", db_url)
        .env("SCAFFOLDER__LOG__LEVEL", "error")
        .env("SCAFFOLDER__WORKER__CONCURRENCY", "20")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("scaffolder starts");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !client
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "replica not ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Replica {
        child,
        base: format!("http://127.0.0.1:{port}/api/scaffolder"),
    }
}

async fn submit(client: &reqwest::Client, bases: &[&str], n: usize) -> Vec<String> {
    let requests = (0..n).map(|i| {
        let url = format!("{}/v2/tasks", bases[i % bases.len()]);
        let client = client.clone();
        async move {
            let res = client
                .post(url)
                .json(&json!({"templateRef": "wait-and-fail", "values": {"seconds": 0}}))
                .send()
                .await
                .expect("create");
            let body: Value = res.json().await.expect("json");
            body["id"].as_str().expect("id").to_owned()
        }
    });
    futures::future::join_all(requests).await
}

/// Waits until `n` tasks completed; returns how many list requests it made
/// (each is two statements: the page and the count).
async fn wait_all(client: &reqwest::Client, base: &str, n: usize) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut polls = 0;
    loop {
        polls += 1;
        let res: Value = client
            .get(format!("{base}/v2/tasks?status=completed&limit=1"))
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        if res["totalTasks"].as_u64().unwrap_or(0) as usize >= n {
            return polls;
        }
        assert!(Instant::now() < deadline, "tasks did not complete");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn transactions(admin: &sqlx::PgPool, db: &str) -> i64 {
    // Idle backends publish their statistics within ten seconds (PostgreSQL 15+).
    tokio::time::sleep(Duration::from_millis(11_000)).await;
    let (n,): (i64,) =
        sqlx::query_as("SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database WHERE datname = $1")
            .bind(db)
            .fetch_one(admin)
            .await
            .expect("stats");
    n
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let admin = sqlx::PgPool::connect(&format!("{}/postgres", admin_url())).await.expect("admin");

        let db = format!("scaffolder_bench_{}", uuid::Uuid::new_v4().simple());
        let url = format!("{}/{db}", admin_url());
        let one = start(&url).await;
        let before = transactions(&admin, &db).await;
        let started = Instant::now();
        submit(&client, &[&one.base], 50).await;
        let polls = wait_all(&client, &one.base, 50).await;
        let burst = started.elapsed();
        let after = transactions(&admin, &db).await;
        println!("50 tasks submitted at once, all complete: {:.0} ms (1 replica)", burst.as_secs_f64() * 1000.0);
        println!(
            "database transactions per task (create, claim, events, journal, finish; the harness's own polling subtracted): {:.1}",
            (after - before - 2 * polls) as f64 / 50.0
        );
        drop(one);

        let db2 = format!("scaffolder_bench_{}", uuid::Uuid::new_v4().simple());
        let url2 = format!("{}/{db2}", admin_url());
        let a = start(&url2).await;
        let b = start(&url2).await;
        let n = 400;
        let started = Instant::now();
        submit(&client, &[&a.base, &b.base], n).await;
        wait_all(&client, &a.base, n).await;
        let took = started.elapsed();
        println!(
            "sustained: {n} tasks on 2 replicas in {:.2} s = {:.0} tasks/s",
            took.as_secs_f64(),
            n as f64 / took.as_secs_f64()
        );
        drop((a, b));
        for name in [db, db2] {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&admin).await;
        }
    });
}
