//! `github:environment:create`: a deployment environment with its
//! protection (wait timer, reviewers, self-review), deployment branch and
//! tag policies, variables and secrets. `PUT` of an environment is GitHub's
//! create-or-update and policies and variables are looked up first, so a
//! re-run converges instead of failing.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{outcome, Target};
use crate::actions::{ActionContext, ActionError, ActionExample, ActionHandler};
use crate::domain::entity_ref::parse_ref_string;
use crate::scm::github::{BranchPolicyKind, EnvironmentRequest, RefKind, Reviewer, ReviewerKind, Scope};
use crate::scm::ScmIntegrations;

pub struct GithubEnvironmentCreate {
    integrations: Arc<ScmIntegrations>,
}

impl GithubEnvironmentCreate {
    pub fn new(integrations: Arc<ScmIntegrations>) -> Self {
        GithubEnvironmentCreate { integrations }
    }
}

/// GitHub's `deployment_branch_policy`: exactly one of the two is `true`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentBranchPolicy {
    /// Only branches with branch protection may deploy (then `custom_branch_policies` is `false`)
    pub protected_branches: bool,
    /// Only branches and tags matching the custom policies may deploy (then `protected_branches` is `false`)
    pub custom_branch_policies: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Input {
    /// The repository, as `github.com?repo=reponame&owner=owner`
    pub repo_url: String,
    /// The environment's name
    pub name: String,
    /// Which branches may deploy to the environment; absent: all branches
    pub deployment_branch_policy: Option<DeploymentBranchPolicy>,
    /// Branch name patterns allowed to deploy (with `custom_branch_policies: true`).
    ///
    /// Patterns follow Ruby's `File.fnmatch`: `*` does not match `/`, so `release/*/*` matches `release/a/b`.
    pub custom_branch_policy_names: Option<Vec<String>>,
    /// Tag name patterns allowed to deploy (with `custom_branch_policies: true`).
    ///
    /// Patterns follow Ruby's `File.fnmatch`: `*` does not match `/`, so `v*/*` matches `v1/rc`.
    pub custom_tag_policy_names: Option<Vec<String>>,
    /// Variables of the environment, by name
    pub environment_variables: Option<BTreeMap<String, String>>,
    /// Secrets of the environment, by name (sent encrypted with the environment's public key)
    pub secrets: Option<BTreeMap<String, String>>,
    /// A token to use instead of the integration's credentials
    pub token: Option<String>,
    /// Minutes a deployment waits after it is triggered (0 to 43200)
    pub wait_timer: Option<f64>,
    /// Whether whoever triggered a deployment may not approve it
    pub prevent_self_review: Option<bool>,
    /// Who must approve deployments: catalog references of users (`user:default/jane`) and groups (`group:default/platform`, a team of the owner organization)
    pub reviewers: Option<Vec<String>>,
}

#[async_trait]
impl ActionHandler for GithubEnvironmentCreate {
    type Input = Input;
    const ID: &'static str = "github:environment:create";
    const DESCRIPTION: &'static str =
        "Creates or updates a deployment environment of a GitHub repository, with its protection rules, variables and secrets";

    fn examples(&self) -> Vec<ActionExample> {
        vec![
            ActionExample {
                description: "An environment without rules.",
                example: "steps:\n  - action: github:environment:create\n    name: Create the staging environment\n    input:\n      repoUrl: github.com?repo=repo&owner=owner\n      name: staging\n",
            },
            ActionExample {
                description: "A production environment: main only, a reviewer group, a wait timer, a variable and a secret.",
                example: "steps:\n  - action: github:environment:create\n    name: Create the production environment\n    input:\n      repoUrl: github.com?repo=repo&owner=owner\n      name: production\n      deploymentBranchPolicy:\n        protected_branches: false\n        custom_branch_policies: true\n      customBranchPolicyNames:\n        - main\n      customTagPolicyNames:\n        - v*\n      waitTimer: 5\n      preventSelfReview: true\n      reviewers:\n        - group:default/platform\n      environmentVariables:\n        CLUSTER: prod-eu\n      secrets:\n        DEPLOY_TOKEN: ${{ secrets.deployToken }}\n",
            },
        ]
    }

    async fn handle(&self, ctx: &mut ActionContext, input: Input) -> Result<(), ActionError> {
        let wait_timer = match input.wait_timer {
            Some(minutes) if minutes.fract() != 0.0 || !(0.0..=43200.0).contains(&minutes) => {
                return Err(ActionError::InvalidInput(format!(
                    "waitTimer must be a whole number of minutes from 0 to 43200, not {minutes}"
                )))
            }
            Some(minutes) => Some(minutes as u64),
            None => None,
        };
        if let Some(policy) = &input.deployment_branch_policy {
            if policy.protected_branches == policy.custom_branch_policies {
                return Err(ActionError::InvalidInput(
                    "deploymentBranchPolicy: exactly one of protected_branches and custom_branch_policies must be true"
                        .into(),
                ));
            }
        }
        let target = Target::connect(&self.integrations, ctx, &input.repo_url, input.token.as_deref()).await?;
        let reviewers = match &input.reviewers {
            Some(refs) => Some(resolve_reviewers(ctx, &target, refs).await?),
            None => None,
        };
        let request = EnvironmentRequest {
            wait_timer,
            prevent_self_review: input.prevent_self_review,
            reviewers: reviewers.filter(|r| !r.is_empty()),
            deployment_branch_policy: input.deployment_branch_policy.as_ref().map(|p| BranchPolicyKind {
                protected_branches: p.protected_branches,
                custom_branch_policies: p.custom_branch_policies,
            }),
        };
        let api = target.api();
        api.put_environment(&input.name, &request).await?;
        ctx.logger
            .info(format!(
                "Environment {} of {} is set up",
                input.name,
                target.full_name()
            ))
            .await;
        let policies = [
            (RefKind::Branch, &input.custom_branch_policy_names),
            (RefKind::Tag, &input.custom_tag_policy_names),
        ];
        for (kind, names) in policies {
            for pattern in names.iter().flatten() {
                let ensured = api.ensure_deployment_policy(&input.name, kind, pattern).await?;
                let what = match kind {
                    RefKind::Branch => "branch",
                    RefKind::Tag => "tag",
                };
                ctx.logger
                    .info(outcome(&format!("deployment {what} policy {pattern}"), ensured))
                    .await;
            }
        }
        let scope = Scope::Environment(&input.name);
        for (name, value) in input.environment_variables.iter().flatten() {
            api.put_variable(scope, name, value).await?;
        }
        for (name, value) in input.secrets.iter().flatten() {
            api.put_secret(scope, name, value).await?;
        }
        Ok(())
    }
}

/// Catalog references to GitHub reviewer ids: a `user:` reference names a
/// GitHub user, a `group:` reference a team of the repository's owner, as
/// Backstage resolves them. An unknown user or team, or another kind, is
/// logged and left out, as Backstage does.
async fn resolve_reviewers(
    ctx: &ActionContext,
    target: &Target,
    refs: &[String],
) -> Result<Vec<Reviewer>, ActionError> {
    let mut reviewers = Vec::new();
    for raw in refs {
        let parts = parse_ref_string(raw).map_err(|e| ActionError::InvalidInput(e.to_string()))?;
        let kind = parts.kind.map(str::to_ascii_lowercase);
        let found = match kind.as_deref() {
            Some("user") => target
                .client
                .user_id(parts.name)
                .await
                .map(|id| (ReviewerKind::User, id)),
            Some("group") => target
                .client
                .team_id(&target.owner, parts.name)
                .await
                .map(|id| (ReviewerKind::Team, id)),
            _ => {
                ctx.logger
                    .warn(format!(
                        "Reviewer {raw} is neither a user nor a group reference; skipped"
                    ))
                    .await;
                continue;
            }
        };
        match found {
            Ok((kind, id)) => reviewers.push(Reviewer { kind, id }),
            Err(e) if e.status() == Some(404) => {
                ctx.logger
                    .warn(format!("Reviewer {raw} was not found on GitHub; skipped"))
                    .await
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(reviewers)
}
