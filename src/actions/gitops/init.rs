//! `gitops:init`: creates or updates the cluster layout of the GitOps
//! repository (`clusters/<cluster>/…` with one ApplicationSet per cluster).

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{commit_message, open_repo, signature, strings};
use crate::actions::{ActionContext, ActionError, ActionExample, ActionHandler};
use crate::gitops::cluster::ClusterInput;
use crate::gitops::layout;
use crate::gitops::plan::{plan_clusters, EmptyTree};
use crate::gitops::repo::{commit_plan, CommitRequest, PushRetry, RepoLocks};
use crate::scm::ScmIntegrations;

pub struct GitopsInit {
    integrations: Arc<ScmIntegrations>,
    retry: PushRetry,
    locks: Arc<RepoLocks>,
    argocd_repo_url: Option<String>,
}

impl GitopsInit {
    pub fn new(integrations: Arc<ScmIntegrations>) -> GitopsInit {
        GitopsInit {
            integrations,
            retry: PushRetry::default(),
            locks: Arc::default(),
            argocd_repo_url: None,
        }
    }

    /// The installation's `gitops.argocd_repo_url`: what the ApplicationSets
    /// read, unless the input says otherwise.
    pub fn with_argocd_repo_url(mut self, url: Option<String>) -> GitopsInit {
        self.argocd_repo_url = url;
        self
    }

    /// Shares the per-repository turns with the other GitOps writers of the
    /// application.
    pub fn with_locks(mut self, locks: Arc<RepoLocks>) -> GitopsInit {
        self.locks = locks;
        self
    }
}

fn default_branch() -> String {
    "main".into()
}
fn default_namespace() -> String {
    "argocd".into()
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Input {
    /// The GitOps repository, e.g. `github.com?owner=acme&repo=infra-gitops` or `git.local?owner=acme&repo=infra-gitops` (created on the local git host when missing)
    pub repo_url: String,
    /// Cluster names (DNS labels), e.g. `onprem-dev`, `yc-prod`
    #[schemars(length(min = 1))]
    pub clusters: Vec<String>,
    /// The branch Argo CD follows and the layout is committed to. Defaults to `main`
    #[serde(default = "default_branch")]
    pub branch: String,
    /// The repository URL written into the ApplicationSets, when Argo CD reaches the repository differently (e.g. over SSH). Defaults to the `gitops.argocd_repo_url` setting, else the repository's https clone URL (never a file URL)
    pub argocd_repo_url: Option<String>,
    /// The namespace of Argo CD, where the ApplicationSets and Applications live. Defaults to `argocd`
    #[serde(default = "default_namespace")]
    pub argocd_namespace: String,
    /// Typed settings of clusters (`clusters/<cluster>/cluster.yaml`): provider, stage, baseDomain, ingress, tlsIssuer, ageRecipient, secretStore, registryPullSecret, workloads. A cluster listed here has its file rewritten; the others keep theirs (or get one inferred from the name `<provider>-<stage>`)
    #[serde(default)]
    pub settings: Vec<ClusterInput>,
    /// The commit message
    pub commit_message: Option<String>,
    /// The commit author's name. Defaults to `Scaffolder`
    pub git_author_name: Option<String>,
    /// The commit author's email. Defaults to `scaffolder@backstage.io`
    pub git_author_email: Option<String>,
    /// A token for the GitHub host, instead of the integration's credentials
    pub token: Option<String>,
}

#[async_trait]
impl ActionHandler for GitopsInit {
    type Input = Input;
    const ID: &'static str = "gitops:init";
    const DESCRIPTION: &'static str = "Creates or updates the GitOps repository layout: clusters/<cluster>/{cluster.yaml, kustomization.yaml, argocd/apps-appset.yaml} with one Argo CD ApplicationSet per cluster over apps/*/overlays/<cluster>.";
    const SUPPORTS_DRY_RUN: bool = true;

    fn output_schema(&self) -> Option<Value> {
        Some(json!({
            "type": "object",
            "properties": {
                "commitHash": {"type": "string", "description": "The commit made, or the existing head when nothing changed (`dry-run` in a dry run)"},
                "commitUrl": {"type": "string", "description": "A link to the commit"},
                "changed": {"type": "boolean", "description": "Whether a commit was made"},
                "applicationSets": {"type": "array", "items": {"type": "string"}, "description": "Paths of the ApplicationSets"},
            },
        }))
    }

    fn examples(&self) -> Vec<ActionExample> {
        vec![ActionExample {
            description: "Prepare infra-gitops for four clusters",
            example: "steps:\n  - id: gitops-init\n    action: gitops:init\n    input:\n      repoUrl: github.com?owner=acme&repo=infra-gitops\n      clusters: [onprem-dev, yc-prod, sber-prod, vk-prod]\n      settings:\n        - name: sber-prod\n          baseDomain: apps.sber.soft-yt.ru\n          ingress: istio\n          ageRecipient: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\n",
        }]
    }

    async fn handle(&self, ctx: &mut ActionContext, input: Input) -> Result<(), ActionError> {
        let mut clusters: Vec<String> = Vec::new();
        for cluster in &input.clusters {
            layout::check_dns_label("cluster", cluster)?;
            if !clusters.contains(cluster) {
                clusters.push(cluster.clone());
            }
        }
        if clusters.is_empty() {
            return Err(ActionError::InvalidInput("Give at least one cluster".into()));
        }
        layout::check_dns_label("Argo CD namespace", &input.argocd_namespace)?;
        let appsets: Vec<String> = clusters.iter().map(|c| layout::appset_path(c)).collect();
        let repo = open_repo(
            &self.integrations,
            ctx,
            &input.repo_url,
            input.token.as_deref(),
            &input.branch,
            !ctx.dry_run,
        )
        .await?;
        let source = repo.source(
            input.argocd_repo_url.as_deref(),
            self.argocd_repo_url.as_deref(),
            &input.branch,
            &input.argocd_namespace,
        )?;
        if ctx.dry_run {
            let plan = plan_clusters(&clusters, &source, true, &input.settings, &EmptyTree)?;
            plan.check_yaml()?;
            for path in plan.paths() {
                ctx.logger.info(format!("Would write {path}")).await;
            }
            ctx.output("commitHash", json!("dry-run"));
            ctx.output("commitUrl", json!(repo.commit_url("dry-run")));
            ctx.output("changed", json!(false));
            ctx.output("applicationSets", strings(&appsets));
            return Ok(());
        }
        let message = commit_message(
            input.commit_message.as_deref(),
            || format!("gitops: initialise clusters {}", clusters.join(", ")),
            &ctx.task_id,
        );
        let author = signature(input.git_author_name.as_deref(), input.git_author_email.as_deref());
        let request = CommitRequest {
            remote: &repo.remote,
            base_branch: &input.branch,
            push_branch: None,
            message: &message,
            author: &author,
            unchanged_path: None,
            guard_path: None,
        };
        let outcome = commit_plan(
            &repo.git,
            &ctx.cancel,
            &self.locks,
            &request,
            &self.retry,
            &|_| Ok(()),
            |view| plan_clusters(&clusters, &source, true, &input.settings, view),
        )
        .await?;
        let commit = outcome.commit.clone().unwrap_or_default();
        if outcome.changed {
            ctx.logger
                .info(format!(
                    "Committed {commit} to {} ({} attempt(s)): {}",
                    input.branch,
                    outcome.attempts,
                    outcome.paths.join(", ")
                ))
                .await;
        } else {
            ctx.logger
                .info(format!(
                    "The layout is up to date on {}; nothing to commit",
                    input.branch
                ))
                .await;
        }
        ctx.output("commitHash", json!(commit));
        ctx.output("commitUrl", json!(repo.commit_url(&commit)));
        ctx.output("changed", json!(outcome.changed));
        ctx.output("applicationSets", strings(&appsets));
        Ok(())
    }
}
