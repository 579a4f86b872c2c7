//! The real binary started while its database cannot be reached: it retries
//! with a clear log line, does not serve meanwhile (probes get connection
//! refused), and becomes ready once the database appears — here a TCP proxy
//! to the test PostgreSQL started on the configured port later.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::admin_url;

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

    // A clear line per attempt, and several attempts.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = read_log(&log_path);
        if text
            .matches("database unavailable at start; retrying before serving")
            .count()
            >= 2
        {
            break;
        }
        assert!(Instant::now() < deadline, "no retry log line in 30 s:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
