//! The real binary configured only through the environment: values take the
//! type of their key (an all-digit token stays a token), list keys split on
//! commas, and no secret reaches the log.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, HOST};
use reqwest::StatusCode;

use crate::api::helpers::admin_url;
use crate::api::startup_db::{free_port, read_log, Killed};

#[tokio::test]
async fn an_all_digit_metrics_token_from_the_environment_starts_and_guards_metrics() {
    let http_port = free_port();
    let db_url = format!("{}/scaffolder_test_{}", admin_url(), uuid::Uuid::new_v4().simple());
    let scratch = tempfile::tempdir().expect("temp dir");
    let log_path = scratch.path().join("serve.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let templates = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/templates");
    let child = Command::new(env!("CARGO_BIN_EXE_scaffolder"))
        .args(["serve", "--bind", &format!("127.0.0.1:{http_port}")])
        .env("DATABASE_URL", &db_url)
        .env("SCAFFOLDER__TELEMETRY__METRICS_TOKEN", "12345678")
        .env("SCAFFOLDER__WORKER__CONCURRENCY", "2")
        .env("SCAFFOLDER__WORKER__ENABLED", "true")
        .env("SCAFFOLDER__AUTH__ANONYMOUS_HOSTS", "scaffolder,other.example")
        .env("SCAFFOLDER__TEMPLATES__DIRS", &templates)
        .env("SCAFFOLDER__WORKER__WORK_DIR", scratch.path().join("work"))
        .env("SCAFFOLDER__LOG__FORMAT", "json")
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("scaffolder starts");
    let mut child = Killed(child);

    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{http_port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(res) = client.get(format!("{base}/readyz")).send().await {
            if res.status() == StatusCode::OK {
                break;
            }
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("serve exited with {status}:\n{}", read_log(&log_path));
        }
        assert!(Instant::now() < deadline, "not ready in 60 s:\n{}", read_log(&log_path));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let metrics = |token: Option<&'static str>| {
        let mut req = client.get(format!("{base}/metrics"));
        if let Some(t) = token {
            req = req.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        req.send()
    };
    assert_eq!(metrics(None).await.expect("metrics").status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        metrics(Some("1234567")).await.expect("metrics").status(),
        StatusCode::UNAUTHORIZED
    );
    let res = metrics(Some("12345678")).await.expect("metrics");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res
        .text()
        .await
        .expect("text")
        .contains("scaffolder_http_requests_total"));

    // A list key from the environment: both names are served anonymously.
    for (host, expected) in [
        ("scaffolder", StatusCode::OK),
        ("other.example:8080", StatusCode::OK),
        ("evil.example", StatusCode::FORBIDDEN),
    ] {
        let res = client
            .get(format!("{base}/api/scaffolder/v2/tasks"))
            .header(HOST, host)
            .send()
            .await
            .expect("list tasks");
        assert_eq!(res.status(), expected, "{host}");
    }

    // The debug log of the whole start and these requests holds no token.
    let text = read_log(&log_path);
    assert!(text.contains("scaffolder listening"), "{text}");
    assert!(!text.contains("12345678"), "the metrics token reached the log:\n{text}");
}
