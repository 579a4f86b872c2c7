//! Running the GitOps actions directly, a service base to register, and
//! inspecting bare repositories with the `git` command line.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use scaffolder::actions::{Action, ActionContext, ActionError, LogSink, StepLogger};
use scaffolder::scm::github::RetryPolicy;
use scaffolder::scm::integrations::{GithubCredentials, GithubHost};
use scaffolder::scm::{LocalGitHost, ScmIntegrations};
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
pub struct Log(Mutex<Vec<String>>);

#[async_trait]
impl LogSink for Log {
    async fn log(&self, _step_id: &str, message: String) {
        if let Ok(mut lines) = self.0.lock() {
            lines.push(message);
        }
    }
}

/// One task: a workspace, a task id, a user and a log.
pub struct Task {
    _dir: tempfile::TempDir,
    pub workspace: PathBuf,
    pub task_id: String,
    pub user: Value,
    pub log: Arc<Log>,
}

impl Task {
    pub fn new() -> Task {
        let dir = tempfile::tempdir().expect("tempdir");
        let workspace = dir.path().join("workspace");
        std::fs::create_dir_all(&workspace).expect("workspace");
        Task {
            _dir: dir,
            workspace,
            task_id: uuid::Uuid::new_v4().to_string(),
            user: json!({"ref": "user:default/tester"}),
            log: Arc::default(),
        }
    }

    pub fn write(&self, relative: &str, contents: &str) {
        let path = self.workspace.join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, contents).expect("write");
    }

    /// Writes the kustomize base of `service` at `deploy/<service>/base`
    /// (a Deployment with the `app-image` and `sidecar-image` placeholders
    /// and a Service) and returns that path.
    pub fn base(&self, service: &str) -> String {
        let dir = format!("deploy/{service}/base");
        self.write(
            &format!("{dir}/kustomization.yaml"),
            &format!(
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nlabels:\n  - pairs:\n      app.kubernetes.io/part-of: {service}\n    includeTemplates: true\nresources:\n  - deployment.yaml\n  - service.yaml\n"
            ),
        );
        self.write(
            &format!("{dir}/deployment.yaml"),
            &format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {service}\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: {service}\n  template:\n    metadata:\n      labels:\n        app: {service}\n    spec:\n      containers:\n        - name: app\n          image: app-image\n          resources:\n            requests:\n              cpu: 10m\n        - name: sidecar\n          image: sidecar-image\n"
            ),
        );
        self.write(
            &format!("{dir}/service.yaml"),
            &format!(
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: {service}\nspec:\n  selector:\n    app: {service}\n  ports:\n    - port: 80\n"
            ),
        );
        dir
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
            step_id: "gitops".into(),
            workspace: self.workspace.clone(),
            template_base: url::Url::parse("file:///nowhere/template.yaml").expect("url"),
            raw_input: input.clone(),
            logger: StepLogger::new(self.log.clone(), "gitops"),
            secrets: Map::new(),
            user: self.user.clone(),
            dry_run,
            cancel: CancellationToken::new(),
            integrations: ScmIntegrations::default().templating(),
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

/// The local git host in `dir`, and `github.example` served at `api_base`.
pub fn integrations(local_dir: &Path, api_base: Option<&str>) -> Arc<ScmIntegrations> {
    let github = api_base
        .map(|base| GithubHost {
            host: "github.example".into(),
            api_base_url: base.to_owned(),
            credentials: GithubCredentials::Token("t0ken".into()),
            retry: RetryPolicy {
                max_attempts: 2,
                max_wait: std::time::Duration::from_secs(1),
                backoff: std::time::Duration::from_millis(10),
            },
        })
        .into_iter()
        .collect();
    Arc::new(ScmIntegrations::new(
        github,
        Some(LocalGitHost {
            host: "git.local".into(),
            dir: local_dir.to_owned(),
        }),
    ))
}

/// `git <args>` on a bare repository; panics when it fails.
pub use crate::common::git::git_bare as git;
/// Whether `git <args>` succeeds.
pub use crate::common::git::git_bare_ok as git_ok;

/// A bare repository whose HEAD is `main`, with one commit holding
/// `README.md` when `with_commit`.
pub fn bare_repo(path: &Path, with_commit: bool) {
    std::fs::create_dir_all(path).expect("dir");
    git(path, &["init", "--quiet", "--bare"]);
    git(path, &["symbolic-ref", "HEAD", "refs/heads/main"]);
    if with_commit {
        let blob_out = crate::common::git::git_bare_command(path)
            .args(["hash-object", "-w", "--stdin"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().expect("stdin").write_all(b"# infra\n")?;
                child.wait_with_output()
            })
            .expect("hash-object");
        let blob = String::from_utf8_lossy(&blob_out.stdout).trim().to_owned();
        let tree_out = crate::common::git::git_bare_command(path)
            .arg("mktree")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(format!("100644 blob {blob}\tREADME.md\n").as_bytes())?;
                child.wait_with_output()
            })
            .expect("mktree");
        let tree = String::from_utf8_lossy(&tree_out.stdout).trim().to_owned();
        let commit = git(path, &["commit-tree", &tree, "-m", "initial"]);
        git(path, &["update-ref", "refs/heads/main", commit.trim()]);
    }
}

/// The files of `branch` checked out into a new directory.
pub fn export(repo: &Path, branch: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let tar = dir.path().join("tree.tar");
    git(
        repo,
        &["archive", "--format=tar", "-o", &tar.display().to_string(), branch],
    );
    let status = Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(dir.path())
        .status()
        .expect("tar runs");
    assert!(status.success());
    std::fs::remove_file(&tar).expect("rm tar");
    dir
}

/// Number of commits on `branch`.
pub fn commit_count(repo: &Path, branch: &str) -> usize {
    git(repo, &["rev-list", "--count", branch])
        .trim()
        .parse()
        .expect("count")
}

/// The local host's repository `acme/infra-gitops` under `dir`.
pub fn local_repo(dir: &Path) -> PathBuf {
    dir.join("acme").join("infra-gitops.git")
}

pub const LOCAL_URL: &str = "git.local?owner=acme&repo=infra-gitops";
