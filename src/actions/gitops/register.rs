//! `gitops:overlay:register`: vendors a service's kustomize base into the
//! GitOps repository and writes one overlay per cluster, checked before
//! anything is pushed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{caller_owner, commit_message, open_repo, pull_request, signature, strings, Mode};
use crate::actions::workspace::resolve_safe_child_path;
use crate::actions::{ActionContext, ActionError, ActionExample, ActionHandler};
use crate::gitops::base::BaseFiles;
use crate::gitops::overlay::{check_owner, ImageSpec, ResourceSpec};
use crate::gitops::plan::{plan_clusters, ClusterSettings, DroppedOverlays, EmptyTree, Plan, Registration, RepoView};
use crate::gitops::repo::{commit_plan, CommitRequest, PushRetry, RepoLocks};
use crate::gitops::{layout, GitopsError};
use crate::scm::ScmIntegrations;

/// The largest base vendored (all files together).
const MAX_BASE_BYTES: u64 = 5 * 1024 * 1024;

pub struct GitopsOverlayRegister {
    integrations: Arc<ScmIntegrations>,
    retry: PushRetry,
    locks: Arc<RepoLocks>,
    argocd_repo_url: Option<String>,
}

impl GitopsOverlayRegister {
    pub fn new(integrations: Arc<ScmIntegrations>) -> GitopsOverlayRegister {
        GitopsOverlayRegister {
            integrations,
            retry: PushRetry::default(),
            locks: Arc::default(),
            argocd_repo_url: None,
        }
    }

    /// The installation's `gitops.argocd_repo_url`: what ApplicationSets
    /// written by `initClusters` read, unless the input says otherwise.
    pub fn with_argocd_repo_url(mut self, url: Option<String>) -> GitopsOverlayRegister {
        self.argocd_repo_url = url;
        self
    }

    /// The same action taking turns with the writers of `locks` only (the
    /// tests simulate several replicas with it).
    pub fn with_locks(mut self, locks: Arc<RepoLocks>) -> GitopsOverlayRegister {
        self.locks = locks;
        self
    }

    /// The same action with another push retry policy.
    pub fn with_retry(mut self, retry: PushRetry) -> GitopsOverlayRegister {
        self.retry = retry;
        self
    }
}

fn default_branch() -> String {
    "main".into()
}
fn default_namespace() -> String {
    "argocd".into()
}
fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OverlayInput {
    /// The cluster (overlay) name
    pub cluster: String,
    /// Images of this cluster; they replace the shared `images` entries with the same name
    #[serde(default)]
    pub images: Vec<ImageSpec>,
    /// Replicas of every Deployment
    pub replicas: Option<u32>,
    /// Resources of every container of every Deployment
    pub resources: Option<ResourceSpec>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Input {
    /// The GitOps repository, e.g. `github.com?owner=acme&repo=infra-gitops` or `git.local?owner=acme&repo=infra-gitops`
    pub repo_url: String,
    /// The service name (a DNS label); the Argo CD applications are `<service>-<cluster>`
    pub service: String,
    /// Path in the workspace of the service's kustomize base, e.g. `deploy/kustomize/apps/<service>/base`
    pub base_path: String,
    /// Clusters to deploy to: one overlay `apps/<service>/overlays/<cluster>` each
    #[serde(default)]
    pub clusters: Vec<String>,
    /// Images set in the overlay of every cluster
    #[serde(default)]
    pub images: Vec<ImageSpec>,
    /// Per-cluster settings (a cluster listed here gets an overlay even when not in `clusters`)
    #[serde(default)]
    pub overlays: Vec<OverlayInput>,
    /// `commit` (push to `branch`) or `pull-request` (push `scaffolder/<service>` and open a pull request)
    #[serde(default)]
    pub mode: Mode,
    /// The commit message
    pub commit_message: Option<String>,
    /// The commit author's name. Defaults to `Scaffolder`
    pub git_author_name: Option<String>,
    /// The commit author's email. Defaults to `scaffolder@backstage.io`
    pub git_author_email: Option<String>,
    /// The branch Argo CD follows. Defaults to `main`
    #[serde(default = "default_branch")]
    pub branch: String,
    /// Who owns the service (recorded in `apps/<service>/.scaffolder.yaml`; another owner's registration is refused). Defaults to the user running the task, else the repository of `sourceRepoUrl`; without either the registration is refused
    pub owner: Option<String>,
    /// The service's own repository (`github.com?owner=acme&repo=webapp`): the owner when neither `owner` nor a signed-in user is given
    pub source_repo_url: Option<String>,
    /// Overlays of clusters this registration no longer lists: `refuse` (fail and name them) or `remove` (delete them; Argo CD prunes those applications). Defaults to `refuse`
    #[serde(default)]
    pub dropped_overlays: DroppedOverlays,
    /// Write `clusters/<cluster>/…` for clusters the repository does not know yet (as `gitops:init` would). Defaults to `true`
    #[serde(default = "yes")]
    pub init_clusters: bool,
    /// The repository URL for ApplicationSets written by `initClusters`. Defaults to the `gitops.argocd_repo_url` setting, else the repository's https clone URL (never a file URL)
    pub argocd_repo_url: Option<String>,
    /// Argo CD's namespace for ApplicationSets written by `initClusters`. Defaults to `argocd`
    #[serde(default = "default_namespace")]
    pub argocd_namespace: String,
    /// A token for the GitHub host, instead of the integration's credentials
    pub token: Option<String>,
}

/// Reads the base directory: regular files only, inside the workspace.
fn read_base(workspace: &Path, base_path: &str) -> Result<BaseFiles, ActionError> {
    let root = resolve_safe_child_path(workspace, base_path)?;
    if !root.is_dir() {
        return Err(ActionError::InvalidInput(format!(
            "basePath '{base_path}' is not a directory of the workspace"
        )));
    }
    let mut files = BTreeMap::new();
    let mut total = 0u64;
    for entry in walkdir::WalkDir::new(&root).follow_links(false).sort_by_file_name() {
        let entry = entry.map_err(|e| ActionError::Failed(format!("cannot read the base {base_path}: {e}")))?;
        let relative = entry
            .path()
            .strip_prefix(&root)
            .map_err(|_| ActionError::Failed(format!("cannot read the base {base_path}")))?;
        let shown = relative.to_string_lossy().replace('\\', "/");
        if entry.file_type().is_dir() {
            if entry.file_name() == ".git" {
                return Err(GitopsError::NotAllowed(format!("The base holds a .git directory ({shown})")).into());
            }
            continue;
        }
        if !entry.file_type().is_file() {
            return Err(GitopsError::NotAllowed(format!(
                "The base holds {shown}, which is not a regular file (symbolic links are not vendored)"
            ))
            .into());
        }
        let Some(text_path) = relative.to_str() else {
            return Err(GitopsError::Invalid(format!("The base file name {shown} is not UTF-8")).into());
        };
        total += entry.metadata().map(|m| m.len()).unwrap_or(0);
        if total > MAX_BASE_BYTES {
            return Err(GitopsError::Invalid(format!("The base is larger than {MAX_BASE_BYTES} bytes")).into());
        }
        let bytes = std::fs::read(entry.path()).map_err(ActionError::io(format!("cannot read {shown}")))?;
        files.insert(text_path.replace('\\', "/"), bytes);
    }
    Ok(BaseFiles { files })
}

#[async_trait]
impl ActionHandler for GitopsOverlayRegister {
    type Input = Input;
    const ID: &'static str = "gitops:overlay:register";
    const DESCRIPTION: &'static str = "Registers a service in the GitOps repository: vendors its kustomize base to apps/<service>/base and writes apps/<service>/overlays/<cluster> for each cluster (Argo CD applications <service>-<cluster>), validated before anything is pushed.";
    const SUPPORTS_DRY_RUN: bool = true;

    fn output_schema(&self) -> Option<Value> {
        Some(json!({
            "type": "object",
            "properties": {
                "commitHash": {"type": "string", "description": "The commit made, or the existing one when nothing changed (`dry-run` in a dry run)"},
                "commitUrl": {"type": "string", "description": "A link to the commit (the GitHub page, or `<file URL of the repository>/commit/<sha>` on the local git host)"},
                "pullRequestUrl": {"type": "string", "description": "The pull request (mode pull-request on GitHub)"},
                "branch": {"type": "string", "description": "The branch the commit is on"},
                "changed": {"type": "boolean", "description": "Whether a commit was made"},
                "applications": {"type": "array", "items": {"type": "string"}, "description": "Argo CD application names <service>-<cluster>"},
                "overlayPaths": {"type": "array", "items": {"type": "string"}, "description": "apps/<service>/overlays/<cluster>"},
                "removedApplications": {"type": "array", "items": {"type": "string"}, "description": "Applications whose overlays were removed (`droppedOverlays: remove`)"},
            },
        }))
    }

    fn examples(&self) -> Vec<ActionExample> {
        vec![ActionExample {
            description: "Deploy a service to two clusters",
            example: "steps:\n  - id: gitops\n    action: gitops:overlay:register\n    input:\n      repoUrl: github.com?owner=acme&repo=infra-gitops\n      service: webapp\n      basePath: deploy/kustomize/apps/webapp/base\n      clusters: [onprem-dev, yc-prod]\n      images:\n        - name: backend-image\n          newName: ghcr.io/acme/webapp-backend\n          newTag: main\n      overlays:\n        - cluster: yc-prod\n          replicas: 3\n",
        }]
    }

    async fn handle(&self, ctx: &mut ActionContext, input: Input) -> Result<(), ActionError> {
        layout::check_dns_label("service", &input.service)?;
        layout::check_dns_label("Argo CD namespace", &input.argocd_namespace)?;
        let base = read_base(&ctx.workspace, &input.base_path)?;
        let owner = caller_owner(
            &self.integrations,
            ctx,
            input.owner.as_deref(),
            input.source_repo_url.as_deref(),
        )?;
        let settings: Vec<ClusterSettings> = input
            .overlays
            .iter()
            .map(|o| ClusterSettings {
                cluster: o.cluster.clone(),
                images: o.images.clone(),
                replicas: o.replicas,
                resources: o.resources.clone(),
            })
            .collect();
        let registration = Registration::new(&input.service, &owner, base, &input.clusters, &input.images, &settings)?;
        let clusters = registration.clusters();
        for image in registration.base_info.images.iter() {
            let set = registration
                .overlays
                .iter()
                .all(|o| o.images.iter().any(|i| &i.name == image));
            if !set {
                ctx.logger
                    .warn(format!(
                        "The base's image {image} is not set by every overlay; it is deployed as written in the base"
                    ))
                    .await;
            }
        }
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
        let removed = std::sync::Mutex::new(Vec::<String>::new());
        let planner = |view: &dyn RepoView| -> Result<Plan, GitopsError> {
            let mut plan = if input.init_clusters {
                plan_clusters(&clusters, &source, false, &[], view)?
            } else {
                Plan::default()
            };
            let registered = registration.plan(view, input.dropped_overlays)?;
            if let Ok(mut removed) = removed.lock() {
                *removed = registration.dropped(view);
            }
            plan.merge(registered);
            Ok(plan)
        };
        if ctx.dry_run {
            let plan = planner(&EmptyTree)?;
            plan.check_yaml()?;
            for path in plan.paths() {
                ctx.logger.info(format!("Would write {path}")).await;
            }
            ctx.logger
                .info(format!(
                    "Dry run: would register {} in {} ({}) for {}",
                    input.service,
                    input.repo_url,
                    input.branch,
                    clusters.join(", ")
                ))
                .await;
            ctx.output("commitHash", json!("dry-run"));
            ctx.output("commitUrl", json!(repo.commit_url("dry-run")));
            ctx.output("changed", json!(false));
            ctx.output("applications", strings(&registration.applications()));
            ctx.output("overlayPaths", strings(&registration.overlay_paths()));
            return Ok(());
        }

        let message = commit_message(
            input.commit_message.as_deref(),
            || format!("gitops: register {} on {}", input.service, clusters.join(", ")),
            &ctx.task_id,
        );
        let author = signature(input.git_author_name.as_deref(), input.git_author_email.as_deref());
        let pr_branch = format!("scaffolder/{}", input.service);
        let service_dir = layout::service_dir(&input.service);
        let marker_path = layout::marker_path(&input.service);
        let request = CommitRequest {
            remote: &repo.remote,
            base_branch: &input.branch,
            push_branch: (input.mode == Mode::PullRequest).then_some(pr_branch.as_str()),
            message: &message,
            author: &author,
            unchanged_path: Some(&service_dir),
            guard_path: Some(&marker_path),
        };
        let service = input.service.clone();
        let guard_owner = owner.clone();
        let guard = move |marker: Option<&str>| check_owner(&service, &guard_owner, marker, false);
        let outcome = commit_plan(
            &repo.git,
            &ctx.cancel,
            &self.locks,
            &request,
            &self.retry,
            &guard,
            planner,
        )
        .await?;
        let commit = outcome.commit.clone().unwrap_or_default();
        let removed = removed.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !removed.is_empty() {
            ctx.logger
                .info(format!(
                    "Removed the overlays of {} on {} (no longer listed); Argo CD deletes {}",
                    input.service,
                    removed.join(", "),
                    removed
                        .iter()
                        .map(|c| layout::app_name(&input.service, c))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .await;
        }
        ctx.output(
            "removedApplications",
            strings(
                &removed
                    .iter()
                    .map(|c| layout::app_name(&input.service, c))
                    .collect::<Vec<_>>(),
            ),
        );
        if outcome.changed {
            ctx.logger
                .info(format!(
                    "Committed {commit} to {} after {} attempt(s): {}",
                    outcome.branch,
                    outcome.attempts,
                    outcome.paths.join(", ")
                ))
                .await;
        } else {
            ctx.logger
                .info(format!(
                    "{} is already registered with this content on {}; nothing to commit (existing commit {commit})",
                    input.service, outcome.branch
                ))
                .await;
        }
        ctx.output("commitHash", json!(commit));
        ctx.output("commitUrl", json!(repo.commit_url(&commit)));
        ctx.output("branch", json!(outcome.branch));
        ctx.output("changed", json!(outcome.changed));
        ctx.output("applications", strings(&registration.applications()));
        ctx.output("overlayPaths", strings(&registration.overlay_paths()));

        if input.mode == Mode::PullRequest && outcome.branch == pr_branch {
            let body = format!(
                "Registers {} in the GitOps repository: Argo CD applications {}.\n\nOpened by the scaffolder (task {}).",
                input.service,
                registration.applications().join(", "),
                ctx.task_id
            );
            pull_request(ctx, &repo, &pr_branch, &input.branch, &message, &body).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::Action;

    #[test]
    fn the_schema_names_the_inputs_and_the_examples_parse() {
        let action = GitopsOverlayRegister::new(Arc::default());
        let schema = Action::input_schema(&action);
        assert_eq!(schema["required"], json!(["repoUrl", "service", "basePath"]));
        assert_eq!(schema["properties"]["mode"]["enum"], json!(["commit", "pull-request"]));
        assert_eq!(schema["properties"]["branch"]["default"], json!("main"));
        assert!(Action::supports_dry_run(&action));
        for example in Action::examples(&action) {
            let parsed: serde_norway::Value = serde_norway::from_str(example.example).unwrap();
            assert_eq!(parsed["steps"][0]["action"].as_str(), Some("gitops:overlay:register"));
        }
    }
}
