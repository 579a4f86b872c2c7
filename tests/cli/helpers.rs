//! Runs the real `scaffolder` binary: local runs into a temporary data
//! directory, and the client against a server the test starts (`serve` on a
//! free port, a fresh database). Waits follow process output and HTTP state
//! with deadlines.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub use crate::common::db::admin_url;

/// The binary with none of the caller's scaffolder settings, run from the
/// repository root, publishing into `data/git`.
pub fn scaffolder(data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scaffolder"));
    isolate(&mut cmd, data);
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs `cmd` (the binary, or a wrapper starting it) from the repository
/// root without the caller's scaffolder settings, publishing into `data/git`.
pub fn isolate(cmd: &mut Command, data: &Path) {
    cmd.current_dir(root());
    for (key, _) in std::env::vars() {
        if key.starts_with("SCAFFOLDER") || key == "DATABASE_URL" || key == "XDG_DATA_HOME" {
            cmd.env_remove(key);
        }
    }
    cmd.env("SCAFFOLDER__INTEGRATIONS__LOCAL_GIT__DIR", data.join("git"));
    cmd.env("NO_COLOR", "1");
    cmd.kill_on_drop(true);
}

/// A finished process.
#[derive(Debug)]
pub struct Finished {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON value ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// A running process whose stderr lines can be waited for.
pub struct Running {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

fn collect<R: tokio::io::AsyncRead + Unpin + Send + 'static>(
    reader: R,
    into: Arc<Mutex<String>>,
    lines: Option<mpsc::UnboundedSender<String>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = BufReader::new(reader).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            if let Ok(mut all) = into.lock() {
                all.push_str(&line);
                all.push('\n');
            }
            if let Some(tx) = &lines {
                let _ = tx.send(line);
            }
        }
    })
}

pub fn spawn(mut cmd: Command) -> Running {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("the scaffolder binary starts");
    let stdout = Arc::new(Mutex::new(String::new()));
    let stderr = Arc::new(Mutex::new(String::new()));
    let (tx, lines) = mpsc::unbounded_channel();
    let readers = vec![
        collect(child.stdout.take().expect("piped stdout"), stdout.clone(), None),
        collect(child.stderr.take().expect("piped stderr"), stderr.clone(), Some(tx)),
    ];
    Running {
        child,
        lines,
        stdout,
        stderr,
        readers,
    }
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the process is running")
    }

    pub fn stderr_so_far(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits for a stderr line containing `needle`.
    pub async fn wait_for_line(&mut self, needle: &str, within: Duration) -> String {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) if line.contains(needle) => return line,
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => panic!(
                    "no stderr line with {needle:?} within {within:?}; stderr so far:\n{}",
                    self.stderr_so_far()
                ),
            }
        }
    }

    pub async fn finish(mut self, within: Duration) -> Finished {
        let status = match tokio::time::timeout(within, self.child.wait()).await {
            Ok(status) => status.expect("waiting for the process"),
            Err(_) => {
                let _ = self.child.kill().await;
                panic!(
                    "the process did not end within {within:?}; stderr:\n{}",
                    self.stderr_so_far()
                );
            }
        };
        for reader in self.readers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
        }
        Finished {
            code: status.code(),
            stdout: self.stdout.lock().map(|s| s.clone()).unwrap_or_default(),
            stderr: self.stderr.lock().map(|s| s.clone()).unwrap_or_default(),
        }
    }
}

/// Runs the binary to its end (at most two minutes).
pub async fn run(data: &Path, args: &[&str]) -> Finished {
    let mut cmd = scaffolder(data);
    cmd.args(args);
    spawn(cmd).finish(Duration::from_secs(120)).await
}

pub use crate::common::git::git;

/// Clones a bare repository as `git clone <path>` would, into `into`.
pub fn clone(repo: &Path, into: &Path) -> PathBuf {
    assert!(repo.is_dir(), "{} does not exist", repo.display());
    let parent = into.parent().expect("a parent directory");
    std::fs::create_dir_all(parent).expect("clone parent");
    git(
        parent,
        &[
            "clone",
            "--quiet",
            repo.to_str().expect("UTF-8 path"),
            into.to_str().expect("UTF-8 path"),
        ],
    );
    into.to_path_buf()
}

/// `serve` on a free port against a fresh database, templates from
/// `tests/templates`.
pub struct Server {
    pub url: String,
    pub data: tempfile::TempDir,
    pub http: reqwest::Client,
    child: Running,
}

/// What a test server differs in: more environment, more template dirs.
#[derive(Default)]
pub struct ServerSetup<'a> {
    pub env: Vec<(&'a str, String)>,
    pub templates: Vec<&'a str>,
}

impl Server {
    pub async fn start() -> Server {
        Server::start_with(ServerSetup::default()).await
    }

    pub async fn start_with(setup: ServerSetup<'_>) -> Server {
        let data = tempfile::tempdir().expect("temp dir");
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            listener.local_addr().expect("local address").port()
        };
        let db = format!("{}/scaffolder_test_{}", admin_url(), uuid::Uuid::new_v4().simple());
        let mut cmd = scaffolder(data.path());
        cmd.args([
            "serve",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--templates",
            "tests/templates",
        ])
        .env("DATABASE_URL", &db)
        .env("SCAFFOLDER__LOG__FORMAT", "pretty")
        .env("SCAFFOLDER__LOG__LEVEL", "warn")
        .env("SCAFFOLDER__DATABASE__MAX_CONNECTIONS", "5");
        for dir in setup.templates {
            cmd.args(["--templates", dir]);
        }
        cmd.envs(setup.env);
        let child = spawn(cmd);
        let server = Server {
            url: format!("http://127.0.0.1:{port}"),
            data,
            http: reqwest::Client::new(),
            child,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = server.http.get(format!("{}/readyz", server.url)).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the server did not become ready; its log:\n{}",
                server.child.stderr_so_far()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server
    }

    /// The binary with `--server` pointing here.
    pub async fn cli(&self, args: &[&str]) -> Finished {
        let mut cmd = scaffolder(self.data.path());
        cmd.arg("--server").arg(&self.url).args(args);
        spawn(cmd).finish(Duration::from_secs(120)).await
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}/api/scaffolder/v2/{path}", self.url)
    }

    pub async fn create(&self, template: &str, values: serde_json::Value) -> String {
        let r = self
            .http
            .post(self.api("tasks"))
            .json(&serde_json::json!({ "templateRef": template, "values": values }))
            .send()
            .await
            .expect("POST /v2/tasks");
        assert_eq!(r.status(), 201);
        let body: serde_json::Value = r.json().await.expect("JSON");
        body["id"].as_str().expect("an id").to_owned()
    }

    pub async fn status(&self, id: &str) -> String {
        let task: serde_json::Value = self
            .http
            .get(self.api(&format!("tasks/{id}")))
            .send()
            .await
            .expect("GET task")
            .json()
            .await
            .expect("JSON");
        task["status"].as_str().unwrap_or_default().to_owned()
    }

    /// Waits until the task has `status`.
    pub async fn wait_for_status(&self, id: &str, status: &str) {
        let deadline = tokio::time::Instant::now() + crate::common::PATIENCE;
        loop {
            let now = self.status(id).await;
            if now == status {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "task {id} is {now}, not {status}; server log:\n{}",
                self.child.stderr_so_far()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the task's log holds a message containing `needle`.
    pub async fn wait_for_log(&self, id: &str, needle: &str) {
        let deadline = tokio::time::Instant::now() + crate::common::PATIENCE;
        loop {
            let events: serde_json::Value = self
                .http
                .get(self.api(&format!("tasks/{id}/events")))
                .send()
                .await
                .expect("GET events")
                .json()
                .await
                .expect("JSON");
            let found = events.as_array().is_some_and(|events| {
                events
                    .iter()
                    .any(|e| e["body"]["message"].as_str().is_some_and(|m| m.contains(needle)))
            });
            if found {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no log line {needle:?} in task {id}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
