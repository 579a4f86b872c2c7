//! The real binary started while its database cannot be reached: it retries
//! with a clear log line, does not serve meanwhile (probes get connection
//! refused), and becomes ready once the database appears — here a TCP proxy
//! to the test PostgreSQL started on the configured port later.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::api::helpers::admin_url;

pub(crate) struct Killed(pub(crate) Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

pub(crate) fn read_log(path: &std::path::Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    text
}

/// Forwards every connection on `listener` to `upstream`.
async fn proxy(listener: tokio::net::TcpListener, upstream: String) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            return;
        };
        let upstream = upstream.clone();
        tokio::spawn(async move {
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

/// The first `count` "retrying" lines of a JSON log, waiting at most `limit`
/// from now for them.
async fn retry_lines(log_path: &std::path::Path, count: usize, limit: Duration) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + limit;
    loop {
        let text = read_log(log_path);
        let lines: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|l| l["message"] == "database unavailable at start; retrying before serving")
            .take(count)
            .collect();
        if lines.len() == count {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "fewer than {count} retry lines within {limit:?}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `serve` on `http_port` against `db_url`, logging JSON to the returned file.
fn spawn_serve(db_url: &str, http_port: u16, env: &[(&str, &str)], scratch: &std::path::Path) -> (Killed, PathBuf) {
    let log_path = scratch.join("serve.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let templates = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/templates");
    let child = Command::new(env!("CARGO_BIN_EXE_scaffolder"))
        .args(["serve", "--bind", &format!("127.0.0.1:{http_port}")])
        .env("DATABASE_URL", db_url)
        .env("SCAFFOLDER__TEMPLATES__DIRS", &templates)
        .env("SCAFFOLDER__WORKER__WORK_DIR", scratch.join("work"))
        .env("SCAFFOLDER__LOG__FORMAT", "json")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("scaffolder starts");
    (Killed(child), log_path)
}

async fn wait_ready(http_port: u16, log_path: &std::path::Path, limit: Duration) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(res) = client.get(format!("http://127.0.0.1:{http_port}/readyz")).send().await {
            if res.status() == reqwest::StatusCode::OK {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "not ready within {limit:?}:\n{}",
            read_log(log_path)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_missing_database_is_named_at_each_attempt_and_waited_for() {
    let admin = admin_url();
    let name = format!("scaffolder_test_{}", uuid::Uuid::new_v4().simple());
    let http_port = free_port();
    let scratch = tempfile::tempdir().expect("temp dir");
    let (_child, log_path) = spawn_serve(
        &format!("{admin}/{name}"),
        http_port,
        &[("SCAFFOLDER__DATABASE__CREATE_IF_MISSING", "false")],
        scratch.path(),
    );
    let lines = retry_lines(&log_path, 2, Duration::from_secs(8)).await;
    for line in &lines {
        let error = line["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(&format!("database \"{name}\" does not exist")),
            "the retry line does not say the database is missing: {line}"
        );
    }
    // Once someone creates it, the server starts.
    let pool = sqlx::PgPool::connect(&format!("{admin}/postgres"))
        .await
        .expect("admin connection");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .expect("create database");
    pool.close().await;
    wait_ready(http_port, &log_path, Duration::from_secs(60)).await;
}

#[tokio::test]
async fn a_refused_login_is_named_at_each_attempt() {
    let mut url = url::Url::parse(&admin_url()).expect("admin URL");
    let role = format!("nobody_{}", uuid::Uuid::new_v4().simple());
    url.set_username(&role).expect("user");
    url.set_path("scaffolder");
    let http_port = free_port();
    let scratch = tempfile::tempdir().expect("temp dir");
    let (_child, log_path) = spawn_serve(url.as_str(), http_port, &[], scratch.path());
    let lines = retry_lines(&log_path, 2, Duration::from_secs(8)).await;
    for line in &lines {
        let error = line["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(&format!("role \"{role}\" does not exist")) && error.contains(&format!("user \"{role}\"")),
            "the retry line does not say the login was refused: {line}"
        );
    }
    let early = reqwest::get(format!("http://127.0.0.1:{http_port}/readyz")).await;
    assert!(early.is_err_and(|e| e.is_connect()), "served without a database");
}

#[tokio::test]
async fn serve_waits_for_an_unreachable_database_then_becomes_ready() {
    let admin = url::Url::parse(&admin_url()).expect("admin URL");
    let upstream = format!(
        "{}:{}",
        admin.host_str().unwrap_or("127.0.0.1"),
        admin.port().unwrap_or(5432)
    );
    let db_port = free_port();
    let http_port = free_port();
    let mut db_url = admin.clone();
    db_url.set_host(Some("127.0.0.1")).expect("host");
    db_url.set_port(Some(db_port)).expect("port");
    db_url.set_path(&format!("scaffolder_test_{}", uuid::Uuid::new_v4().simple()));

    let scratch = tempfile::tempdir().expect("temp dir");
    let log_path = scratch.path().join("serve.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let templates = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/templates");
    let child = Command::new(env!("CARGO_BIN_EXE_scaffolder"))
        .args(["serve", "--bind", &format!("127.0.0.1:{http_port}")])
        .env("DATABASE_URL", db_url.as_str())
        .env("SCAFFOLDER__TEMPLATES__DIRS", &templates)
        .env("SCAFFOLDER__WORKER__WORK_DIR", scratch.path().join("work"))
        .env("SCAFFOLDER__LOG__FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("scaffolder starts");
    let _child = Killed(child);

    // A line per attempt with the real cause and the address, at once (well
    // inside the pool's 10 s acquire timeout), backing off from 0.2 s.
    let lines = retry_lines(&log_path, 2, Duration::from_secs(8)).await;
    for line in &lines {
        let error = line["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("Connection refused") && error.contains(&format!("127.0.0.1:{db_port}")),
            "the retry line does not say why: {line}"
        );
    }
    assert_eq!(lines[0]["attempt"], 1);
    assert_eq!(lines[0]["retry_in_ms"], 200);
    assert_eq!(lines[1]["retry_in_ms"], 400);
    let client = reqwest::Client::new();
    let readyz = format!("http://127.0.0.1:{http_port}/readyz");
    let early = client.get(&readyz).send().await;
    assert!(
        early.as_ref().is_err_and(|e| e.is_connect()),
        "served before the database was reachable: {early:?}"
    );

    // The database appears.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", db_port))
        .await
        .expect("proxy binds the database port");
    tokio::spawn(proxy(listener, upstream));

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(res) = client.get(&readyz).send().await {
            if res.status() == reqwest::StatusCode::OK {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "not ready 60 s after the database appeared:\n{}",
            read_log(&log_path)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(read_log(&log_path).contains("database reachable; starting"));
    let tasks = client
        .get(format!("http://127.0.0.1:{http_port}/api/scaffolder/v2/tasks"))
        .send()
        .await
        .expect("list tasks");
    assert_eq!(tasks.status(), reqwest::StatusCode::OK);
}
