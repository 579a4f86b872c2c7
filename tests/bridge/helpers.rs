//! The action bridge as a real child process (`node bridge/index.js`), and
//! the service configured to use it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use scaffolder::config::{BridgeSettings, Settings};

use crate::api::helpers::{spawn_app_with, TestApp};
use crate::common::data::{current_test, skip_or_fail, test_data_dir};
use crate::common::PATIENCE;

pub const TOKEN: &str = "bridge-test-token";

/// `bridge/` with its dependencies installed (`npm ci`, as `.ci/run` does),
/// or `SCAFFOLDER_BRIDGE_DIR`. `None` (one `skipped:` line; a failure under
/// `SCAFFOLDER_REQUIRE_SHARED`) when they are not installed or `node` is
/// missing.
pub fn bridge_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("SCAFFOLDER_BRIDGE_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("bridge"),
    };
    let installed = dir
        .join("node_modules/@backstage/backend-defaults/package.json")
        .is_file();
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if installed && node {
        return Some(dir);
    }
    skip_or_fail(&format!(
        "{}needs the action bridge's dependencies and `node`: run `npm ci` in {} (.ci/run does) or set SCAFFOLDER_BRIDGE_DIR",
        current_test(),
        dir.display()
    ));
    None
}

/// The scaffolder modules a bridge loads.
#[derive(Clone, Copy)]
pub enum Modules {
    /// The test module of `tests/data/bridge-module` only.
    TestModule,
    /// The official modules of `bridge/modules.js`.
    Official,
}

/// A running bridge; killed (SIGKILL) when dropped.
pub struct Bridge {
    child: Child,
    pub url: String,
    pub port: u16,
    log: tempfile::NamedTempFile,
    dir: PathBuf,
    modules: Modules,
    path: Option<PathBuf>,
}

pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a port");
    listener.local_addr().expect("local address").port()
}

impl Bridge {
    pub async fn start(dir: &Path, modules: Modules) -> Bridge {
        Bridge::start_with(dir, modules, None, free_port()).await
    }

    /// `path`: a directory put first on the bridge's `PATH` (cookiecutter).
    pub async fn start_with(dir: &Path, modules: Modules, path: Option<PathBuf>, port: u16) -> Bridge {
        let log = tempfile::NamedTempFile::new().expect("log file");
        let mut command = Command::new("node");
        command
            .arg("index.js")
            .current_dir(dir)
            .env("ACTION_BRIDGE_TOKEN", TOKEN)
            .env("ACTION_BRIDGE_PORT", port.to_string())
            .env("NODE_PATH", dir.join("node_modules"))
            .env("NODE_ENV", "production")
            .stdin(Stdio::null())
            .stdout(log.reopen().expect("log"))
            .stderr(log.reopen().expect("log"));
        if let Modules::TestModule = modules {
            command.env("ACTION_BRIDGE_MODULES", test_data_dir().join("bridge-module"));
        }
        if let Some(extra) = &path {
            let joined = std::env::join_paths(
                std::iter::once(extra.clone())
                    .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
            )
            .expect("PATH");
            command.env("PATH", joined);
        }
        let child = command.spawn().expect("start node");
        let mut bridge = Bridge {
            child,
            url: format!("http://127.0.0.1:{port}"),
            port,
            log,
            dir: dir.to_owned(),
            modules,
            path,
        };
        bridge.wait_healthy().await;
        bridge
    }

    /// Polls the health endpoint until it answers, within `PATIENCE`.
    async fn wait_healthy(&mut self) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let client = reqwest::Client::new();
        let health = format!("{}/api/scaffolder/bridge/v1/health", self.url);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the action bridge exited ({status}):\n{}", self.log());
            }
            if client.get(&health).send().await.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the action bridge did not answer within {PATIENCE:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What the bridge printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A new bridge process on the same port, with the same modules.
    pub async fn restart(&mut self) {
        self.kill();
        let next = Bridge::start_with(&self.dir.clone(), self.modules, self.path.clone(), self.port).await;
        *self = next;
    }

    pub fn settings(&self, shared_workspace: bool) -> BridgeSettings {
        BridgeSettings {
            url: self.url.clone(),
            token: TOKEN.into(),
            shared_workspace,
            refresh_seconds: 1,
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The service with `bridge` configured, the templates of `templates`, and
/// the local git host in `git`.
pub async fn app_with_bridge(bridge: &Bridge, shared_workspace: bool, templates: &Path, git: &Path) -> TestApp {
    let settings = bridge.settings(shared_workspace);
    let (templates, git) = (templates.to_owned(), git.to_owned());
    spawn_app_with(move |s: &mut Settings| {
        s.actions.bridges = vec![settings];
        s.templates.dirs = vec![templates];
        s.integrations.local_git.dir = Some(git);
    })
    .await
}

pub fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
    std::fs::write(path, text).expect("write");
}

/// Waits until `path` exists (something another process writes), within `PATIENCE`.
pub async fn wait_for_file(path: &Path) -> String {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} did not appear within {PATIENCE:?}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
