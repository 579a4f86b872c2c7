//! The secrets sentinel: one unique secret value goes through every path a
//! secret can take (task creation, retry, dry-run, a failing step whose error
//! names it, an action output, a `debug:log` line, a rendered file, the task
//! output) on the real binary logging at debug level. Afterwards the whole
//! database (`pg_dump`), every HTTP response body and the process log must
//! hold neither the value nor its base64 or URL-encoded forms.
//! Beside it: `scaffolder secrets rotate` on the real binary, and the
//! abandoned-task path (a killed replica) wiping the secrets.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use crate::engine::support::{admin_url, fresh_db, serve, Server};

const LIMIT: Duration = Duration::from_secs(60);

async fn start(db_url: &str, log: &Path, key_file: &Path) -> Server {
    start_with(db_url, log, key_file, &[]).await
}

/// A server logging at debug level into `log`, its key file at `key_file`.
async fn start_with(db_url: &str, log: &Path, key_file: &Path, extra_env: &[(&str, &str)]) -> Server {
    let log = std::fs::File::create(log).expect("log file");
    let key_file = key_file.to_str().expect("a UTF-8 key file path");
    let mut env = vec![
        ("SCAFFOLDER__LOG__LEVEL", "debug"),
        ("SCAFFOLDER__SECRETS__KEY_FILE", key_file),
        ("SCAFFOLDER__WORKER__POLL_SECONDS", "1"),
    ];
    env.extend_from_slice(extra_env);
    serve(db_url, &env, Stdio::from(log)).await
}

/// Every response body the test received, as text.
struct Recorder {
    client: reqwest::Client,
    bodies: Vec<(String, String)>,
}

impl Recorder {
    async fn send(&mut self, what: &str, request: reqwest::RequestBuilder) -> (u16, Value) {
        let res = request.send().await.expect("request");
        let status = res.status().as_u16();
        let text = res.text().await.expect("body");
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        self.bodies.push((what.to_owned(), text));
        (status, value)
    }

    async fn get(&mut self, url: String) -> (u16, Value) {
        let request = self.client.get(&url);
        self.send(&url, request).await
    }

    async fn post(&mut self, url: String, body: Value) -> (u16, Value) {
        let request = self.client.post(&url).json(&body);
        self.send(&url, request).await
    }

    /// Long-polls the events until the completion event.
    async fn until_completion(&mut self, base: &str, id: &str) -> Vec<Value> {
        let deadline = Instant::now() + LIMIT;
        let mut after = None::<i64>;
        let mut seen: Vec<Value> = Vec::new();
        loop {
            assert!(Instant::now() < deadline, "task {id} did not complete: {seen:#?}");
            let url = match after {
                Some(a) => format!("{base}/v2/tasks/{id}/events?after={a}"),
                None => format!("{base}/v2/tasks/{id}/events"),
            };
            let (_, events) = self.get(url).await;
            for e in events.as_array().cloned().unwrap_or_default() {
                if seen.iter().any(|s| s["id"] == e["id"]) {
                    continue;
                }
                after = e["id"].as_i64().max(after);
                let done = e["type"] == "completion";
                seen.push(e);
                if done {
                    return seen;
                }
            }
        }
    }
}

/// The value, its base64 forms and the ways URLs encode it.
fn forms(secret: &str) -> Vec<(&'static str, String)> {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    let b64 = base64::engine::general_purpose::STANDARD;
    let component = utf8_percent_encode(secret, NON_ALPHANUMERIC)
        .to_string()
        .replace("%2D", "-");
    vec![
        ("plain", secret.to_owned()),
        ("base64", b64.encode(secret)),
        (
            "base64url",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
        ),
        ("url-encoded", utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string()),
        ("encodeURIComponent", component.clone()),
        ("form-encoded", component.replace("%20", "+")),
    ]
}

fn hits(haystack: &str, forms: &[(&'static str, String)]) -> Vec<&'static str> {
    forms
        .iter()
        .filter(|(_, needle)| haystack.contains(needle.as_str()))
        .map(|(name, _)| *name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_never_leaves_through_the_database_the_api_or_the_logs() {
    let scratch = tempfile::tempdir().expect("scratch dir");
    let db_name = format!("scaffolder_test_{}", uuid::Uuid::new_v4().simple());
    let db_url = format!("{}/{db_name}", admin_url());
    let log = scratch.path().join("scaffolder.log");
    let key_file = scratch.path().join("keys/secrets.key");
    let server = start(&db_url, &log, &key_file).await;
    let base = server.base.clone();
    let secret = format!("Sentinel-{} p+q&r", uuid::Uuid::new_v4().simple());
    let forms = forms(&secret);
    let mut http = Recorder {
        client: reqwest::Client::new(),
        bodies: Vec::new(),
    };
    let pool = sqlx::PgPool::connect(&db_url).await.expect("test database");

    // Works out of the box: a key file was generated, readable only by its owner.
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file)
            .expect("generated key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // 1. A task that fails with the secret in its error, then is retried with it.
    let (status, created) = http
        .post(
            format!("{base}/v2/tasks"),
            json!({"templateRef": "sentinel", "values": {"seconds": 2, "fail": true},
                   "secrets": {"token": secret}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let failing = created["id"].as_str().expect("id").to_owned();
    // While the task is open its secrets are stored, sealed.
    let (stored,): (Option<String>,) = sqlx::query_as("SELECT secrets FROM tasks WHERE id = $1::uuid")
        .bind(&failing)
        .fetch_one(&pool)
        .await
        .expect("task row");
    let stored = stored.expect("secrets are stored while the task is open");
    assert!(stored.starts_with("sealed:v1:local-"), "{stored}");
    assert_eq!(hits(&stored, &forms), Vec::<&str>::new(), "{stored}");
    let (_, task) = http.get(format!("{base}/v2/tasks/{failing}")).await;
    assert!(matches!(task["status"].as_str(), Some("open" | "processing")), "{task}");

    let events = http.until_completion(&base, &failing).await;
    let completion = events.last().expect("completion");
    let error = completion["body"]["error"]["message"].as_str().unwrap_or_default();
    assert!(
        error.contains("missing-***"),
        "the error is redacted, not dropped: {completion}"
    );
    let logged = events
        .iter()
        .filter_map(|e| e["body"]["message"].as_str())
        .find(|m| m.contains("token ***"))
        .unwrap_or_default();
    assert!(logged.contains("url ***"), "{logged}");
    assert_eq!(task_secrets(&pool, &failing).await, None, "wiped when the task failed");

    let (status, retried) = http
        .post(
            format!("{base}/v2/tasks/{failing}/retry"),
            json!({"secrets": {"token": secret}}),
        )
        .await;
    assert_eq!(status, 201, "{retried}");
    let after_retry = http.until_completion(&base, &failing).await;
    assert_eq!(
        after_retry.last().map(|e| e["body"]["message"].clone()),
        Some(json!("Run completed with status: failed"))
    );
    assert_eq!(task_secrets(&pool, &failing).await, None, "wiped after the retry");

    // 2. A task that completes with the secret in an action output and the task output.
    let (status, created) = http
        .post(
            format!("{base}/v2/tasks"),
            json!({"templateRef": "sentinel", "values": {"seconds": 0},
                   "secrets": {"token": secret}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let completing = created["id"].as_str().expect("id").to_owned();
    let events = http.until_completion(&base, &completing).await;
    let completion = events.last().expect("completion");
    assert_eq!(
        completion["body"]["message"], "Run completed with status: completed",
        "{completion}"
    );
    assert_eq!(completion["body"]["output"]["text"][0]["content"], "token ***");
    assert!(
        completion["body"]["output"]["links"][0]["url"]
            .as_str()
            .is_some_and(|u| u.contains("t=***&d=***")),
        "{completion}"
    );
    assert_eq!(
        task_secrets(&pool, &completing).await,
        None,
        "wiped when the task completed"
    );

    // The event stream replays everything.
    let stream = http
        .client
        .get(format!("{base}/v2/tasks/{completing}/eventstream"))
        .send()
        .await
        .expect("eventstream");
    let text = tokio::time::timeout(LIMIT, stream.text())
        .await
        .expect("the stream of a finished task ends")
        .expect("stream body");
    assert!(text.contains("event: completion"), "{text}");
    http.bodies.push(("eventstream".into(), text));

    // 3. A task cancelled before it starts: its secrets go at once.
    // (Created on a template that waits; the worker may already hold it.)
    let (_, created) = http
        .post(
            format!("{base}/v2/tasks"),
            json!({"templateRef": "sentinel", "values": {"seconds": 30},
                   "secrets": {"token": secret}}),
        )
        .await;
    let cancelled = created["id"].as_str().expect("id").to_owned();
    let (status, _) = http
        .post(format!("{base}/v2/tasks/{cancelled}/cancel"), json!({}))
        .await;
    assert_eq!(status, 200);
    let events = http.until_completion(&base, &cancelled).await;
    assert_eq!(
        events.last().map(|e| e["body"]["message"].clone()),
        Some(json!("Run completed with status: cancelled"))
    );
    assert_eq!(
        task_secrets(&pool, &cancelled).await,
        None,
        "wiped when the task was cancelled"
    );

    // 4. Dry-runs with the secret: one that succeeds, one that fails.
    let template: Value = serde_norway::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/templates/sentinel/template.yaml"),
        )
        .expect("template"),
    )
    .expect("YAML");
    let skeleton = base64::engine::general_purpose::STANDARD.encode("token: ${{ values.token }}\n");
    for fail in [false, true] {
        let (status, body) = http
            .post(
                format!("{base}/v2/dry-run"),
                json!({"template": template, "values": {"seconds": 0, "fail": fail},
                       "secrets": {"token": secret},
                       "directoryContents": [{"path": "skeleton/config.txt", "base64Content": skeleton}]}),
            )
            .await;
        if fail {
            assert_eq!(status, 500, "{body}");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("missing-***")),
                "{body}"
            );
        } else {
            assert_eq!(status, 200, "{body}");
            // File contents come back base64-encoded: look inside them too.
            let files = body["directoryContents"].as_array().cloned().unwrap_or_default();
            assert!(!files.is_empty(), "{body}");
            for file in files {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(file["base64Content"].as_str().unwrap_or_default())
                    .unwrap_or_default();
                let decoded = String::from_utf8_lossy(&decoded).into_owned();
                assert!(decoded.contains("token: ***"), "{decoded}");
                http.bodies.push(("dry-run file".into(), decoded));
            }
        }
    }

    // 5. Listings and task views.
    http.get(format!("{base}/v2/tasks")).await;
    for id in [&failing, &completing, &cancelled] {
        http.get(format!("{base}/v2/tasks/{id}")).await;
        http.get(format!("{base}/v2/tasks/{id}/events")).await;
    }

    // 6. The audit trail (anonymous loopback callers are administrators)
    // recorded every one of those requests, and holds no secret either:
    // its table is in the dump below, its endpoint's answer is grepped.
    let (status, audit) = http.get(format!("{base}/v2/audit?limit=500")).await;
    assert_eq!(status, 200, "{audit}");
    let events: Vec<&str> = audit["events"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["event"].as_str()).collect())
        .unwrap_or_default();
    for expected in [
        "task:create",
        "task:retry",
        "task:cancel",
        "task:dry-run",
        "task:list",
        "task:get",
    ] {
        assert!(
            events.contains(&expected),
            "no {expected} in the audit trail: {events:?}"
        );
    }

    // Nothing holds secrets any more.
    let (left,): (i64,) = sqlx::query_as("SELECT count(*) FROM tasks WHERE secrets IS NOT NULL")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(left, 0);
    pool.close().await;

    // The whole database.
    let dump = Command::new("pg_dump")
        .arg("--no-owner")
        .arg(&db_url)
        .output()
        .expect("pg_dump runs");
    assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
    let dump = String::from_utf8_lossy(&dump.stdout).into_owned();
    assert!(
        dump.contains("Run completed with status: completed"),
        "the dump holds the events"
    );

    drop(server);
    let log = std::fs::read_to_string(&log).expect("process log");
    assert!(log.contains("DEBUG"), "the process logged at debug level");
    assert!(log.contains("isAuditEvent"), "the process logged its audit events");
    assert!(dump.contains("audit_events"), "the dump holds the audit trail");

    let mut report = Vec::new();
    report.push(("database dump", hits(&dump, &forms)));
    report.push(("process log", hits(&log, &forms)));
    for (what, body) in &http.bodies {
        let found = hits(body, &forms);
        if !found.is_empty() {
            report.push((what.as_str(), found));
        }
    }
    let leaks: Vec<_> = report.iter().filter(|(_, found)| !found.is_empty()).collect();
    eprintln!(
        "sentinel: grepped the database dump ({} bytes), the process log ({} bytes) and {} response bodies for {} forms",
        dump.len(),
        log.len(),
        http.bodies.len(),
        forms.len()
    );
    assert!(leaks.is_empty(), "the secret leaked: {leaks:?}");
    let _ = std::process::Command::new("dropdb")
        .args(["-h", "127.0.0.1", "-U", "postgres", "--if-exists", &db_name])
        .status();
}

async fn task_secrets(pool: &sqlx::PgPool, id: &str) -> Option<String> {
    let (secrets,): (Option<String>,) = sqlx::query_as("SELECT secrets FROM tasks WHERE id = $1::uuid")
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("task row");
    secrets
}

fn generate_key(id: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_scaffolder"))
        .args(["secrets", "generate-key", "--id", id])
        .output()
        .expect("generate-key runs");
    assert!(out.status.success());
    let entry = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let (got_id, key) = entry.split_once(':').expect("id:key");
    assert_eq!(got_id, id);
    let key = base64::engine::general_purpose::STANDARD.decode(key).expect("base64");
    assert_eq!(key.len(), 32);
    entry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rotate_command_re_seals_open_tasks_with_the_first_key() {
    let scratch = tempfile::tempdir().expect("scratch dir");
    let db_url = fresh_db();
    let key_file = scratch.path().join("unused.key");
    let (old, new) = (generate_key("old"), generate_key("new"));
    let server = start_with(
        &db_url,
        &scratch.path().join("serve.log"),
        &key_file,
        &[
            ("SCAFFOLDER__SECRETS__KEYS", &old),
            ("SCAFFOLDER__WORKER__ENABLED", "false"),
        ],
    )
    .await;
    let created: Value = reqwest::Client::new()
        .post(format!("{}/v2/tasks", server.base))
        .json(&json!({"templateRef": "wait-and-fail", "values": {"seconds": 0}, "secrets": {"token": "rotate-me"}}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("JSON");
    let id = created["id"].as_str().expect("id").to_owned();
    drop(server);
    assert!(!key_file.exists(), "configured keys need no key file");

    let out = Command::new(env!("CARGO_BIN_EXE_scaffolder"))
        .args(["secrets", "rotate"])
        .env("DATABASE_URL", &db_url)
        .env("SCAFFOLDER__SECRETS__KEYS", format!("{new},{old}"))
        .output()
        .expect("rotate runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("re-encrypted 1 task secrets with key 'new'"),
        "{stdout}"
    );

    let pool = sqlx::PgPool::connect(&db_url).await.expect("database");
    let (stored,): (Option<String>,) = sqlx::query_as("SELECT secrets FROM tasks WHERE id = $1::uuid")
        .bind(&id)
        .fetch_one(&pool)
        .await
        .expect("row");
    pool.close().await;
    let stored = stored.expect("still stored");
    assert!(stored.starts_with("sealed:v1:new:"), "{stored}");

    // With only the old key, nothing can be re-sealed: the command says so and fails.
    let out = Command::new(env!("CARGO_BIN_EXE_scaffolder"))
        .args(["secrets", "rotate"])
        .env("DATABASE_URL", &db_url)
        .env("SCAFFOLDER__SECRETS__KEYS", &old)
        .output()
        .expect("rotate runs");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("could not be re-encrypted"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_task_loses_its_secrets() {
    let scratch = tempfile::tempdir().expect("scratch dir");
    let db_url = fresh_db();
    let key_file = scratch.path().join("shared.key");
    let fast_lease = [
        ("SCAFFOLDER__WORKER__LEASE_SECONDS", "2"),
        ("SCAFFOLDER__WORKER__HEARTBEAT_SECONDS", "1"),
        ("SCAFFOLDER__WORKER__RECOVER", "false"),
    ];
    let doomed = start_with(&db_url, &scratch.path().join("a.log"), &key_file, &fast_lease).await;
    let mut http = Recorder {
        client: reqwest::Client::new(),
        bodies: Vec::new(),
    };
    let (status, created) = http
        .post(
            format!("{}/v2/tasks", doomed.base),
            json!({"templateRef": "sentinel", "values": {"seconds": 60}, "secrets": {"token": "abandon-me"}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    // Wait until the task runs its long step, then kill its replica.
    let deadline = Instant::now() + LIMIT;
    let mut after = None::<i64>;
    'running: loop {
        assert!(Instant::now() < deadline, "the wait step never started");
        let url = match after {
            Some(a) => format!("{}/v2/tasks/{id}/events?after={a}", doomed.base),
            None => format!("{}/v2/tasks/{id}/events", doomed.base),
        };
        let (_, events) = http.get(url).await;
        for e in events.as_array().cloned().unwrap_or_default() {
            if e["body"]["stepId"] == "wait" && e["body"]["status"] == "processing" {
                break 'running;
            }
            after = e["id"].as_i64().max(after);
        }
    }
    drop(doomed);

    // Another replica, without recovery, fails the task once the lease expired.
    let janitor = start_with(&db_url, &scratch.path().join("b.log"), &key_file, &fast_lease).await;
    let events = http.until_completion(&janitor.base, &id).await;
    let end = events.last().expect("completion");
    assert!(
        end["body"]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("was abandoned")),
        "{end}"
    );
    let pool = sqlx::PgPool::connect(&db_url).await.expect("database");
    let (stored, status): (Option<String>, String) =
        sqlx::query_as("SELECT secrets, status FROM tasks WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&pool)
            .await
            .expect("row");
    pool.close().await;
    assert_eq!(status, "failed");
    assert_eq!(stored, None, "wiped when the task was abandoned");
}
