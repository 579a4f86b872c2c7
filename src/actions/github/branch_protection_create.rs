//! `github:branch-protection:create`: protects a branch (the repository's
//! default branch unless named). GitHub replaces the whole protection on
//! each call, so a re-run sets the same rules again.

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;

use super::settings::{no, yes, BypassAllowances, Protection, Restrictions};
use super::Target;
use crate::actions::{ActionContext, ActionError, ActionExample, ActionHandler};
use crate::scm::ScmIntegrations;

pub struct GithubBranchProtectionCreate {
    integrations: Arc<ScmIntegrations>,
}

impl GithubBranchProtectionCreate {
    pub fn new(integrations: Arc<ScmIntegrations>) -> Self {
        GithubBranchProtectionCreate { integrations }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Input {
    /// The repository, as `github.com?repo=reponame&owner=owner`
    pub repo_url: String,
    /// The branch to protect; the repository's default branch when absent
    pub branch: Option<String>,
    /// Apply the rules to administrators too. Default: `true`
    #[serde(default = "yes")]
    pub enforce_admins: bool,
    /// Approvals a pull request needs, `0` to `6`. Default: `1`
    pub required_approving_review_count: Option<f64>,
    /// Changes to files with a code owner need the code owner's approval
    pub require_code_owner_reviews: Option<bool>,
    /// A new push dismisses earlier approvals
    pub dismiss_stale_reviews: Option<bool>,
    /// Users, teams or apps that may merge without the required reviews
    pub bypass_pull_request_allowances: Option<BypassAllowances>,
    /// Only these users, teams or apps may push (organization repositories only)
    pub restrictions: Option<Restrictions>,
    /// Status checks that must pass before merging
    pub required_status_check_contexts: Option<Vec<String>>,
    /// A branch must be up to date with the base before merging. Default: `true`
    #[serde(default = "yes")]
    pub require_branches_to_be_up_to_date: bool,
    /// Every review conversation must be resolved before merging
    pub required_conversation_resolution: Option<bool>,
    /// The last push must be approved by someone other than its pusher. Default: `false`
    #[serde(default = "no")]
    pub require_last_push_approval: bool,
    /// Commits pushed to the branch must be signed
    pub required_commit_signing: Option<bool>,
    /// Merge commits may not be pushed to the branch
    pub required_linear_history: Option<bool>,
    /// Only those allowed to push (see `restrictions`) may create matching branches. Default: `false`
    #[serde(default = "no")]
    pub block_creations: bool,
    /// A token to use instead of the integration's credentials
    pub token: Option<String>,
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
            enforce_admins: self.enforce_admins,
            required_commit_signing: self.required_commit_signing == Some(true),
            required_linear_history: self.required_linear_history.unwrap_or(false),
            block_creations: Some(self.block_creations),
        }
    }
}

#[async_trait]
impl ActionHandler for GithubBranchProtectionCreate {
    type Input = Input;
    const ID: &'static str = "github:branch-protection:create";
    const DESCRIPTION: &'static str = "Protects a branch of a GitHub repository";

    fn examples(&self) -> Vec<ActionExample> {
        vec![
            ActionExample {
                description: "Protect the default branch with the defaults.",
                example: "steps:\n  - action: github:branch-protection:create\n    name: Protect the default branch\n    input:\n      repoUrl: github.com?repo=repo&owner=owner\n",
            },
            ActionExample {
                description: "Protect a release branch: two approvals, CI green, signed commits.",
                example: "steps:\n  - action: github:branch-protection:create\n    name: Protect the release branch\n    input:\n      repoUrl: github.com?repo=repo&owner=owner\n      branch: release\n      requiredApprovingReviewCount: 2\n      requiredStatusCheckContexts:\n        - ci\n      requiredCommitSigning: true\n",
            },
        ]
    }

    async fn handle(&self, ctx: &mut ActionContext, input: Input) -> Result<(), ActionError> {
        let target = Target::connect(&self.integrations, ctx, &input.repo_url, input.token.as_deref()).await?;
        let branch = match input.branch.clone().filter(|b| !b.is_empty()) {
            Some(branch) => branch,
            None => {
                let info = target
                    .client
                    .get_repo(&target.owner, &target.repo)
                    .await?
                    .ok_or_else(|| ActionError::Failed(format!("Repository {} was not found", target.full_name())))?;
                info.default_branch.ok_or_else(|| {
                    ActionError::Failed(format!(
                        "Repository {} has no default branch yet; name the branch to protect",
                        target.full_name()
                    ))
                })?
            }
        };
        input
            .protection()
            .apply(&target.client, &target.owner, &target.repo, &branch)
            .await?;
        ctx.logger
            .info(format!("Protected branch {branch} of {}", target.full_name()))
            .await;
        Ok(())
    }
}
