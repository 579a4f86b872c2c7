//! `github:repo:push`: pushes the workspace (or `sourcePath`) as the first
//! commit of an existing, empty GitHub repository and protects the branch.
//! A re-run replaces the commit its own earlier attempt pushed (the
//! `Scaffolder-Task` trailer says whose it is); a branch with anyone
//! else's commits is refused.

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use super::settings::{no, yes, BypassAllowances, Protection, Restrictions};
use super::Target;
use crate::actions::publish::{push_to_github, signature, InitialCommit};
use crate::actions::workspace::resolve_safe_child_path;
use crate::actions::{ActionContext, ActionError, ActionExample, ActionHandler};
use crate::scm::git::with_task_trailer;
use crate::scm::ScmIntegrations;

pub struct GithubRepoPush {
    integrations: Arc<ScmIntegrations>,
}

impl GithubRepoPush {
    pub fn new(integrations: Arc<ScmIntegrations>) -> Self {
        GithubRepoPush { integrations }
    }
}

fn default_branch() -> String {
    "master".into()
}
fn default_message() -> String {
    "initial commit".into()
}
fn default_author() -> String {
    "Scaffolder".into()
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Input {
    /// The repository, as `github.com?repo=reponame&owner=owner`
    pub repo_url: String,
    /// Changes to files with a code owner need the code owner's approval
    pub require_code_owner_reviews: Option<bool>,
    /// A new push dismisses earlier approvals
    pub dismiss_stale_reviews: Option<bool>,
    /// Status checks that must pass before merging
    pub required_status_check_contexts: Option<Vec<String>>,
    /// Users, teams or apps that may merge without the required reviews
    pub bypass_pull_request_allowances: Option<BypassAllowances>,
    /// Approvals a pull request needs, `0` to `6`. Default: `1`
    pub required_approving_review_count: Option<f64>,
    /// Only these users, teams or apps may push (organization repositories only)
    pub restrictions: Option<Restrictions>,
    /// A branch must be up to date with the base before merging. Default: `true`
    #[serde(default = "yes")]
    pub require_branches_to_be_up_to_date: bool,
    /// Every review conversation must be resolved before merging
    pub required_conversation_resolution: Option<bool>,
    /// The last push must be approved by someone other than its pusher. Default: `false`
    #[serde(default = "no")]
    pub require_last_push_approval: bool,
    /// The branch to push. Default: `master`
    #[serde(default = "default_branch")]
    pub default_branch: String,
    /// Protect the pushed branch. Default: `true`
    #[serde(default = "yes")]
    pub protect_default_branch: bool,
    /// Apply the protection to administrators too. Default: `true`
    #[serde(default = "yes")]
    pub protect_enforce_admins: bool,
    /// The commit's message. Default: `initial commit`
    #[serde(default = "default_message")]
    pub git_commit_message: String,
    /// The commit's author name. Default: `Scaffolder`
    #[serde(default = "default_author")]
    pub git_author_name: String,
    /// The commit's author email
    pub git_author_email: Option<String>,
    /// The workspace folder to push as the repository's root; the whole workspace when absent
    pub source_path: Option<String>,
    /// A token to use instead of the integration's credentials
    pub token: Option<String>,
    /// Commits pushed to the branch must be signed
    pub required_commit_signing: Option<bool>,
    /// Merge commits may not be pushed to the branch
    pub required_linear_history: Option<bool>,
}

impl Input {
    fn protection(&self) -> Protection {
        Protection {
            required_approving_review_count: self.required_approving_review_count,
            require_code_owner_reviews: self.require_code_owner_reviews.unwrap_or(false),
            dismiss_stale_reviews: self.dismiss_stale_reviews.unwrap_or(false),
            bypass_pull_request_allowances: self.bypass_pull_request_allowances.clone(),
            restrictions: self.restrictions.clone(),
            required_status_check_contexts: self.required_status_check_contexts.clone().unwrap_or_default(),
            require_branches_to_be_up_to_date: self.require_branches_to_be_up_to_date,
            required_conversation_resolution: self.required_conversation_resolution.unwrap_or(false),
            require_last_push_approval: self.require_last_push_approval,
            enforce_admins: self.protect_enforce_admins,
            required_commit_signing: self.required_commit_signing == Some(true),
            required_linear_history: self.required_linear_history.unwrap_or(false),
            block_creations: None,
        }
    }
}

#[async_trait]
impl ActionHandler for GithubRepoPush {
    type Input = Input;
    const ID: &'static str = "github:repo:push";
    const DESCRIPTION: &'static str =
        "Pushes the workspace as the first commit of an existing GitHub repository and protects its branch";

    fn output_schema(&self) -> Option<Value> {
        Some(json!({
            "type": "object",
            "properties": {
                "remoteUrl": {"type": "string", "description": "The repository's clone URL"},
                "repoContentsUrl": {"type": "string", "description": "The URL of the pushed files"},
                "commitHash": {"type": "string", "description": "The pushed commit"},
            },
            "required": ["remoteUrl", "repoContentsUrl", "commitHash"],
            "additionalProperties": false,
            "$schema": "http://json-schema.org/draft-07/schema#",
        }))
    }

    fn examples(&self) -> Vec<ActionExample> {
        vec![
            ActionExample {
                description: "Push the workspace to main and protect it.",
                example: "steps:\n  - action: github:repo:push\n    name: Push the skeleton\n    input:\n      repoUrl: github.com?repo=repo&owner=owner\n      defaultBranch: main\n",
            },
            ActionExample {
                description: "Push without branch protection.",
                example: "steps:\n  - action: github:repo:push\n    name: Push the skeleton\n    input:\n      repoUrl: github.com?repo=repo&owner=owner\n      defaultBranch: main\n      protectDefaultBranch: false\n",
            },
        ]
    }

    async fn handle(&self, ctx: &mut ActionContext, input: Input) -> Result<(), ActionError> {
        let source = resolve_safe_child_path(&ctx.workspace, input.source_path.as_deref().unwrap_or(""))?;
        if !source.is_dir() {
            return Err(ActionError::InvalidInput(format!(
                "sourcePath '{}' is not a directory of the workspace",
                input.source_path.as_deref().unwrap_or("")
            )));
        }
        let target = Target::connect(&self.integrations, ctx, &input.repo_url, input.token.as_deref()).await?;
        let info = target
            .client
            .get_repo(&target.owner, &target.repo)
            .await?
            .ok_or_else(|| ActionError::Failed(format!("Repository {} was not found", target.full_name())))?;
        let task_id = ctx.task_id.clone();
        let commit = InitialCommit {
            branch: &input.default_branch,
            source: &source,
            message: with_task_trailer(&input.git_commit_message, &task_id),
            author: signature(Some(&input.git_author_name), input.git_author_email.as_deref()),
            task_id: &task_id,
        };
        let sha = push_to_github(
            ctx,
            &target.client,
            (&target.owner, &target.repo),
            &info.clone_url,
            &commit,
        )
        .await?;
        if input.protect_default_branch {
            input
                .protection()
                .apply_or_warn(ctx, &target.client, &target.owner, &target.repo, &input.default_branch)
                .await;
        }
        ctx.logger
            .info(format!(
                "Pushed {sha} to {} ({})",
                target.full_name(),
                input.default_branch
            ))
            .await;
        ctx.output("remoteUrl", json!(info.clone_url));
        ctx.output(
            "repoContentsUrl",
            json!(format!("{}/blob/{}", info.html_url, input.default_branch)),
        );
        ctx.output("commitHash", json!(sha));
        Ok(())
    }
}
