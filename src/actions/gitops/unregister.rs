//! `gitops:overlay:unregister`: removes a service's overlays from chosen
//! clusters, or the whole `apps/<service>` when no cluster is left (or none
//! is named), so that Argo CD prunes the Applications. Only the owner
//! recorded by `gitops:overlay:register` may do so.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{caller_owner, commit_message, open_repo, pull_request, signature, strings, Mode};
use crate::actions::{ActionContext, ActionError, ActionExample, ActionHandler};
use crate::gitops::layout;
use crate::gitops::overlay::check_owner;
use crate::gitops::plan::{Plan, Removal, RepoView, Unregistration};
use crate::gitops::repo::{commit_plan, CommitRequest, PushRetry, RepoLocks};
use crate::gitops::GitopsError;
use crate::scm::ScmIntegrations;

pub struct GitopsOverlayUnregister {
    integrations: Arc<ScmIntegrations>,
    retry: PushRetry,
    locks: Arc<RepoLocks>,
}

impl GitopsOverlayUnregister {
    pub fn new(integrations: Arc<ScmIntegrations>) -> GitopsOverlayUnregister {
        GitopsOverlayUnregister {
            integrations,
            retry: PushRetry::default(),
            locks: Arc::default(),
        }
    }

    /// Shares the per-repository turns with the other GitOps writers.
    pub fn with_locks(mut self, locks: Arc<RepoLocks>) -> GitopsOverlayUnregister {
        self.locks = locks;
        self
    }
}

fn default_branch() -> String {
    "main".into()
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Input {
    /// The GitOps repository, e.g. `github.com?owner=acme&repo=infra-gitops`
    pub repo_url: String,
    /// The service to remove (a DNS label)
    pub service: String,
    /// Clusters to remove the service from. Omit it to remove the service everywhere (the whole `apps/<service>`); removing the last overlay removes it too
    pub clusters: Option<Vec<String>>,
    /// Who asks; must be the owner recorded in `apps/<service>/.scaffolder.yaml`. Defaults to the user running the task, else the repository of `sourceRepoUrl`
    pub owner: Option<String>,
    /// The service's own repository: the owner when neither `owner` nor a signed-in user is given
    pub source_repo_url: Option<String>,
    /// `commit` (push to `branch`) or `pull-request` (push `scaffolder-unregister/<service>`, built on `branch`, and open a pull request)
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
    /// A token for the GitHub host, instead of the integration's credentials
    pub token: Option<String>,
}

#[async_trait]
impl ActionHandler for GitopsOverlayUnregister {
    type Input = Input;
    const ID: &'static str = "gitops:overlay:unregister";
    const DESCRIPTION: &'static str = "Removes a service from the GitOps repository: its overlays apps/<service>/overlays/<cluster> on the chosen clusters, or all of apps/<service> (every cluster) when no cluster is named or none is left; Argo CD then prunes the applications <service>-<cluster>. Only the service's owner may do so.";
    const SUPPORTS_DRY_RUN: bool = true;

    fn output_schema(&self) -> Option<Value> {
        Some(json!({
            "type": "object",
            "properties": {
                "commitHash": {"type": "string", "description": "The commit made, or the branch's head when nothing was there to remove (`dry-run` in a dry run)"},
                "commitUrl": {"type": "string", "description": "A link to the commit"},
                "pullRequestUrl": {"type": "string", "description": "The pull request (mode pull-request on GitHub)"},
                "branch": {"type": "string", "description": "The branch the commit is on"},
                "changed": {"type": "boolean", "description": "Whether a commit was made"},
                "removedApplications": {"type": "array", "items": {"type": "string"}, "description": "Argo CD applications <service>-<cluster> whose overlays were removed"},
                "serviceRemoved": {"type": "boolean", "description": "Whether all of apps/<service> was removed"},
            },
        }))
    }

    fn examples(&self) -> Vec<ActionExample> {
        vec![
            ActionExample {
                description: "Remove a service from one cluster",
                example: "steps:\n  - id: unregister\n    action: gitops:overlay:unregister\n    input:\n      repoUrl: github.com?owner=acme&repo=infra-gitops\n      service: webapp\n      clusters: [yc-prod]\n",
            },
            ActionExample {
                description: "Decommission a service everywhere",
                example: "steps:\n  - id: decommission\n    action: gitops:overlay:unregister\n    input:\n      repoUrl: github.com?owner=acme&repo=infra-gitops\n      service: webapp\n      commitMessage: 'chore(webapp): decommission'\n",
            },
        ]
    }

    async fn handle(&self, ctx: &mut ActionContext, input: Input) -> Result<(), ActionError> {
        let owner = caller_owner(
            &self.integrations,
            ctx,
            input.owner.as_deref(),
            input.source_repo_url.as_deref(),
        )?;
        let unregistration = Unregistration::new(&input.service, &owner, input.clusters.as_deref())?;
        let repo = open_repo(
            &self.integrations,
            ctx,
            &input.repo_url,
            input.token.as_deref(),
            &input.branch,
            !ctx.dry_run,
        )
        .await?;
        let where_ = match &unregistration.clusters {
            Some(clusters) => clusters.join(", "),
            None => "every cluster".to_owned(),
        };
        if ctx.dry_run {
            // A dry run does not read the repository: it reports what would
            // be removed if the service were registered on those clusters.
            let paths: Vec<String> = match &unregistration.clusters {
                Some(clusters) => clusters
                    .iter()
                    .map(|c| layout::overlay_dir(&input.service, c))
                    .collect(),
                None => vec![layout::service_dir(&input.service)],
            };
            for path in &paths {
                ctx.logger.info(format!("Would remove {path} (if present)")).await;
            }
            ctx.logger
                .info(format!(
                    "Dry run: would remove {} from {where_} in {} ({}), as {owner}",
                    input.service, input.repo_url, input.branch
                ))
                .await;
            let apps: Vec<String> = unregistration
                .clusters
                .iter()
                .flatten()
                .map(|c| layout::app_name(&input.service, c))
                .collect();
            ctx.output("commitHash", json!("dry-run"));
            ctx.output("commitUrl", json!(repo.commit_url("dry-run")));
            ctx.output("changed", json!(false));
            ctx.output("removedApplications", strings(&apps));
            ctx.output("serviceRemoved", json!(unregistration.clusters.is_none()));
            return Ok(());
        }

        let message = commit_message(
            input.commit_message.as_deref(),
            || format!("gitops: remove {} from {where_}", input.service),
            &ctx.task_id,
        );
        let author = signature(input.git_author_name.as_deref(), input.git_author_email.as_deref());
        let pr_branch = format!("scaffolder-unregister/{}", input.service);
        let marker_path = layout::marker_path(&input.service);
        let request = CommitRequest {
            remote: &repo.remote,
            base_branch: &input.branch,
            push_branch: (input.mode == Mode::PullRequest).then_some(pr_branch.as_str()),
            message: &message,
            author: &author,
            unchanged_path: None,
            guard_path: Some(&marker_path),
        };
        // An existing removal branch is replaced only by the service's
        // owner (a branch that removed all of apps/<service> has no marker).
        let service = input.service.clone();
        let guard_owner = owner.clone();
        let guard = move |marker: Option<&str>| check_owner(&service, &guard_owner, marker, false);
        let last = Mutex::new(Removal::default());
        let planner = |view: &dyn RepoView| -> Result<Plan, GitopsError> {
            let removal = unregistration.plan(view)?;
            let plan = removal.plan.clone();
            if let Ok(mut last) = last.lock() {
                *last = removal;
            }
            Ok(plan)
        };
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
        let removal = last.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
        let commit = outcome.commit.clone().unwrap_or_default();
        if !removal.absent.is_empty() {
            ctx.logger
                .info(format!(
                    "{} has no overlay on {}; nothing to remove there",
                    input.service,
                    removal.absent.join(", ")
                ))
                .await;
        }
        if outcome.changed {
            ctx.logger
                .info(format!(
                    "Committed {commit} to {}: removed {}",
                    outcome.branch,
                    removal.plan.remove.iter().cloned().collect::<Vec<_>>().join(", ")
                ))
                .await;
        } else {
            ctx.logger
                .info(format!(
                    "{} is not deployed on {where_}; nothing to commit",
                    input.service
                ))
                .await;
        }
        let apps: Vec<String> = removal
            .clusters
            .iter()
            .map(|c| layout::app_name(&input.service, c))
            .collect();
        ctx.output("commitHash", json!(commit));
        ctx.output("commitUrl", json!(repo.commit_url(&commit)));
        ctx.output("changed", json!(outcome.changed));
        ctx.output("branch", json!(outcome.branch));
        ctx.output("removedApplications", strings(&apps));
        ctx.output("serviceRemoved", json!(removal.service_removed));
        if input.mode == Mode::PullRequest && outcome.branch == pr_branch {
            let body = format!(
                "Removes {} from {where_} in the GitOps repository: Argo CD prunes {}.\n\nOpened by the scaffolder (task {}).",
                input.service,
                if apps.is_empty() { "nothing".to_owned() } else { apps.join(", ") },
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
        let action = GitopsOverlayUnregister::new(Arc::default());
        let schema = Action::input_schema(&action);
        assert_eq!(schema["required"], json!(["repoUrl", "service"]));
        assert_eq!(schema["properties"]["mode"]["enum"], json!(["commit", "pull-request"]));
        assert!(Action::supports_dry_run(&action));
        for example in Action::examples(&action) {
            let parsed: serde_norway::Value = serde_norway::from_str(example.example).unwrap();
            assert_eq!(parsed["steps"][0]["action"].as_str(), Some("gitops:overlay:unregister"));
        }
    }
}
