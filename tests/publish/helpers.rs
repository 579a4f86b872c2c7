//! Contexts for running one action, and git inspection of bare repositories.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use scaffolder::actions::{Action, ActionContext, ActionError, LogSink, StepLogger};
use scaffolder::scm::github::RetryPolicy;
use scaffolder::scm::integrations::{GithubCredentials, GithubHost};
use scaffolder::scm::{LocalGitHost, ScmIntegrations};
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
pub struct Lines(pub Mutex<Vec<String>>);

#[async_trait]
impl LogSink for Lines {
    async fn log(&self, _step_id: &str, message: String) {
        if let Ok(mut lines) = self.0.lock() {
            lines.push(message);
        }
    }
}

/// A workspace, a log and a task id for running actions directly.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub workspace: PathBuf,
    pub log: Arc<Lines>,
    pub task_id: String,
    pub secrets: Map<String, Value>,
}

impl Harness {
    pub fn new() -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let workspace = dir.path().join("workspace");
        std::fs::create_dir_all(&workspace).expect("workspace");
        Harness {
            dir,
            workspace,
            log: Arc::default(),
            task_id: uuid::Uuid::new_v4().to_string(),
            secrets: Map::new(),
        }
    }

    pub fn write(&self, relative: &str, contents: &str) {
        let path = self.workspace.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("parent");
        }
        std::fs::write(path, contents).expect("write");
    }

    pub async fn run(&self, action: &dyn Action, input: Value) -> Result<Map<String, Value>, ActionError> {
        self.run_with(action, input, false).await
    }

    pub async fn run_with(
        &self,
        action: &dyn Action,
        input: Value,
        dry_run: bool,
    ) -> Result<Map<String, Value>, ActionError> {
        let mut ctx = ActionContext {
            task_id: self.task_id.clone(),
            step_id: "step".into(),
            workspace: self.workspace.clone(),
            template_base: url::Url::parse("file:///nowhere/template.yaml").expect("url"),
            raw_input: input.clone(),
            logger: StepLogger::new(self.log.clone(), "step"),
            secrets: self.secrets.clone(),
            user: json!({}),
            dry_run,
            cancel: CancellationToken::new(),
            integrations: Default::default(),
            extensions: Default::default(),
            outputs: Map::new(),
            limits: Default::default(),
            reader: None,
            run: Default::default(),
            approval: None,
        };
        action.run(&mut ctx, input).await?;
        Ok(ctx.into_outputs())
    }

    pub fn log_text(&self) -> String {
        self.log.0.lock().map(|l| l.join("\n")).unwrap_or_default()
    }
}

pub fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        max_wait: Duration::from_secs(5),
        backoff: Duration::from_millis(50),
    }
}

/// `github.example` served by the fake at `api_base`, plus the local host.
pub fn integrations(api_base: &str, token: Option<&str>, local_dir: &Path) -> Arc<ScmIntegrations> {
    Arc::new(ScmIntegrations::new(
        vec![GithubHost {
            host: "github.example".into(),
            api_base_url: api_base.to_owned(),
            credentials: token.map_or(GithubCredentials::None, |t| GithubCredentials::Token(t.into())),
            retry: fast_retries(),
        }],
        Some(LocalGitHost {
            host: "git.local".into(),
            dir: local_dir.to_owned(),
        }),
    ))
}

/// `git` against a bare repository, panicking on failure.
pub use crate::common::git::git_bare as git;

/// Creates a bare repository (optionally with one foreign commit on `main`).
pub fn bare_repo(path: &Path, with_commit: bool) {
    std::fs::create_dir_all(path).expect("dir");
    git(path, &["init", "--quiet", "--bare"]);
    git(path, &["symbolic-ref", "HEAD", "refs/heads/main"]);
    if with_commit {
        let tree = git(path, &["write-tree"]);
        let out = std::process::Command::new("git")
            .arg(format!("--git-dir={}", path.display()))
            .args(["commit-tree", tree.trim(), "-m", "someone else's work"])
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "Other")
            .env("GIT_AUTHOR_EMAIL", "other@example.com")
            .env("GIT_COMMITTER_NAME", "Other")
            .env("GIT_COMMITTER_EMAIL", "other@example.com")
            .output()
            .expect("git runs");
        assert!(out.status.success());
        let sha = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        git(path, &["update-ref", "refs/heads/main", &sha]);
    }
}
