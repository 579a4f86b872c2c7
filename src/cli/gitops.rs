//! `scaffolder gitops …`: the GitOps actions from the command line, with
//! the integrations of the configuration file.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use crate::actions::gitops::GitopsInit;
use crate::actions::{Action, ActionContext, ActionError, LogSink, StepLogger};
use crate::scm::ScmIntegrations;

#[derive(Debug, clap::Subcommand)]
pub enum GitopsCommand {
    /// Create or update the GitOps repository layout: clusters/<cluster>/…
    /// with one Argo CD ApplicationSet per cluster (the action gitops:init).
    /// Prints the outputs as JSON.
    Init {
        /// The repository, e.g. `git.local?owner=acme&repo=infra-gitops`
        /// (created when missing) or `github.com?owner=acme&repo=infra-gitops`.
        #[arg(long)]
        repo: String,
        /// Cluster names (repeatable, or comma-separated).
        #[arg(long = "cluster", required = true, num_args = 1.., value_delimiter = ',')]
        clusters: Vec<String>,
        /// The branch Argo CD follows.
        #[arg(long, default_value = "main")]
        branch: String,
        /// The repository URL written into the ApplicationSets (default: the clone URL).
        #[arg(long)]
        argocd_repo_url: Option<String>,
        /// Argo CD's namespace.
        #[arg(long, default_value = "argocd")]
        argocd_namespace: String,
        /// The commit message.
        #[arg(long)]
        message: Option<String>,
        /// Check and show what would be written; push nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Log lines go to stderr without the colour codes.
struct Stderr;

#[async_trait]
impl LogSink for Stderr {
    async fn log(&self, _step_id: &str, message: String) {
        let plain = message
            .replace("\u{1b}[32m", "")
            .replace("\u{1b}[33m", "")
            .replace("\u{1b}[39m", "");
        eprintln!("{plain}");
    }
}

/// Why a `gitops` command failed.
#[derive(Debug, thiserror::Error)]
pub enum GitopsRunError {
    #[error("cannot create a temporary directory: {0}")]
    Workspace(std::io::Error),
    #[error(transparent)]
    Action(#[from] ActionError),
}

/// Runs the command; the outputs (JSON) are returned for printing.
/// `argocd_repo_url` is the configuration's `gitops.argocd_repo_url`.
pub async fn run(
    command: GitopsCommand,
    integrations: Arc<ScmIntegrations>,
    argocd_repo_url: Option<String>,
) -> Result<Value, GitopsRunError> {
    let configured_repo_url = argocd_repo_url;
    let GitopsCommand::Init {
        repo,
        clusters,
        branch,
        argocd_repo_url,
        argocd_namespace,
        message,
        dry_run,
    } = command;
    let workspace = tempfile::tempdir().map_err(GitopsRunError::Workspace)?;
    let mut input = json!({
        "repoUrl": repo,
        "clusters": clusters,
        "branch": branch,
        "argocdNamespace": argocd_namespace,
    });
    if let Some(url) = argocd_repo_url {
        input["argocdRepoUrl"] = json!(url);
    }
    if let Some(message) = message {
        input["commitMessage"] = json!(message);
    }
    let task_id = format!("cli-{}", uuid::Uuid::new_v4());
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.cancel();
        }
    });
    let mut ctx = ActionContext {
        task_id: task_id.clone(),
        step_id: "gitops-init".into(),
        workspace: workspace.path().to_path_buf(),
        template_base: url::Url::parse("file:///").expect("a constant URL"),
        raw_input: input.clone(),
        logger: StepLogger::new(Arc::new(Stderr), "gitops-init"),
        secrets: Map::new(),
        user: json!({}),
        dry_run,
        cancel,
        integrations: integrations.templating(),
        outputs: Map::new(),
        limits: Default::default(),
        reader: None,
        approval: None,
    };
    let action = GitopsInit::new(integrations.clone()).with_argocd_repo_url(configured_repo_url);
    action.run(&mut ctx, input).await?;
    Ok(Value::Object(ctx.into_outputs()))
}
