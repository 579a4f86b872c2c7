//! `github:repo:create`: creates a repository with its settings
//! (collaborators, topics, variables, secrets, OIDC template, custom
//! properties, workflow access) and pushes nothing; `github:repo:push`
//! does that. A re-run finds the repository it created and applies the
//! settings again.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use super::settings::{
    apply_settings, create_repository, default_squash_message, default_squash_title, no, yes, Collaborator,
    OidcCustomization, PropertyValue, RepoSettings, SquashMessage, SquashTitle, Visibility, WorkflowAccess,
};
use super::Target;
use crate::actions::{ActionContext, ActionError, ActionExample, ActionHandler};
use crate::scm::ScmIntegrations;

pub struct GithubRepoCreate {
    integrations: Arc<ScmIntegrations>,
}

impl GithubRepoCreate {
    pub fn new(integrations: Arc<ScmIntegrations>) -> Self {
        GithubRepoCreate { integrations }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Input {
    /// An admin of the new repository: a user other than the owner, or a team as `org/team-name`
    pub access: Option<String>,
    /// Pull requests may merge by themselves once their requirements are met. Default: `false`
    #[serde(default = "no")]
    pub allow_auto_merge: bool,
    /// Merge commits are allowed. Default: `true`
    #[serde(default = "yes")]
    pub allow_merge_commit: bool,
    /// Rebase merges are allowed. Default: `true`
    #[serde(default = "yes")]
    pub allow_rebase_merge: bool,
    /// Squash merges are allowed. Default: `true`
    #[serde(default = "yes")]
    pub allow_squash_merge: bool,
    /// Pull request branches may be updated from their base on GitHub. Default: `false`
    #[serde(default = "no")]
    pub allow_update_branch: bool,
    /// GitHub makes a first commit with an empty README. Default: `false`
    #[serde(default = "no")]
    pub auto_init: bool,
    /// More users or teams, with their permissions
    pub collaborators: Option<Vec<Collaborator>>,
    /// Custom property values (organization repositories only), as strings or lists of strings
    pub custom_properties: Option<BTreeMap<String, PropertyValue>>,
    /// Merged branches are deleted. Default: `false`
    #[serde(default = "no")]
    pub delete_branch_on_merge: bool,
    /// The repository's description
    pub description: Option<String>,
    /// Issues are on. Default: `true`
    #[serde(default = "yes")]
    pub has_issues: bool,
    /// Projects are on (GitHub's default: on, unless the organization turned them off)
    pub has_projects: Option<bool>,
    /// The wiki is on. Default: `true`
    #[serde(default = "yes")]
    pub has_wiki: bool,
    /// The repository's homepage URL
    pub homepage: Option<String>,
    /// The subject claim template of the repository's OIDC tokens
    pub oidc_customization: Option<OidcCustomization>,
    /// The new repository, as `github.com?repo=reponame&owner=owner`
    pub repo_url: String,
    /// Actions variables of the repository, by name
    pub repo_variables: Option<BTreeMap<String, String>>,
    /// Who can see the repository
    pub repo_visibility: Option<Visibility>,
    /// Actions secrets of the repository, by name (sent encrypted with the repository's public key)
    pub secrets: Option<BTreeMap<String, String>>,
    /// The default message of squash merge commits. Default: `COMMIT_MESSAGES`
    #[serde(default = "default_squash_message")]
    pub squash_merge_commit_message: SquashMessage,
    /// The default title of squash merge commits. Default: `COMMIT_OR_PR_TITLE`
    #[serde(default = "default_squash_title")]
    pub squash_merge_commit_title: SquashTitle,
    /// Watch the repository. Default: `false`
    pub subscribe: Option<bool>,
    /// A token to use instead of the integration's credentials
    pub token: Option<String>,
    /// Topics of the repository
    pub topics: Option<Vec<String>>,
    /// Which workflows outside the repository may use its actions and reusable workflows. Default: `none`
    pub workflow_access: Option<WorkflowAccess>,
}

impl Input {
    fn settings(&self) -> RepoSettings {
        RepoSettings {
            description: self.description.clone(),
            homepage: self.homepage.clone(),
            access: self.access.clone(),
            visibility: self.repo_visibility,
            delete_branch_on_merge: self.delete_branch_on_merge,
            allow_merge_commit: self.allow_merge_commit,
            allow_squash_merge: self.allow_squash_merge,
            squash_merge_commit_title: self.squash_merge_commit_title,
            squash_merge_commit_message: self.squash_merge_commit_message,
            allow_rebase_merge: self.allow_rebase_merge,
            allow_auto_merge: self.allow_auto_merge,
            allow_update_branch: self.allow_update_branch,
            has_projects: self.has_projects,
            has_wiki: self.has_wiki,
            has_issues: self.has_issues,
            auto_init: self.auto_init,
            collaborators: self.collaborators.clone().unwrap_or_default(),
            topics: self.topics.clone().unwrap_or_default(),
            variables: self.repo_variables.clone().unwrap_or_default(),
            secrets: self.secrets.clone().unwrap_or_default(),
            oidc: self.oidc_customization.clone(),
            custom_properties: self.custom_properties.clone().unwrap_or_default(),
            subscribe: self.subscribe == Some(true),
            workflow_access: self.workflow_access,
        }
    }
}

#[async_trait]
impl ActionHandler for GithubRepoCreate {
    type Input = Input;
    const ID: &'static str = "github:repo:create";
    const DESCRIPTION: &'static str =
        "Creates a GitHub repository and applies its settings, without pushing any content";

    fn output_schema(&self) -> Option<Value> {
        Some(json!({
            "type": "object",
            "properties": {
                "remoteUrl": {"type": "string", "description": "The repository's clone URL"},
                "repoContentsUrl": {"type": "string", "description": "The URL of the repository's files on its default branch"},
            },
            "required": ["remoteUrl", "repoContentsUrl"],
            "additionalProperties": false,
            "$schema": "http://json-schema.org/draft-07/schema#",
        }))
    }

    fn examples(&self) -> Vec<ActionExample> {
        vec![
            ActionExample {
                description: "Create a private repository.",
                example: "steps:\n  - action: github:repo:create\n    name: Create the repository\n    input:\n      repoUrl: github.com?repo=repo&owner=owner\n",
            },
            ActionExample {
                description: "Create an internal repository with topics, a team and a variable.",
                example: "steps:\n  - action: github:repo:create\n    name: Create the repository\n    input:\n      repoUrl: github.com?repo=repo&owner=owner\n      repoVisibility: internal\n      description: Payments API\n      topics:\n        - go\n      collaborators:\n        - team: platform\n          access: admin\n      repoVariables:\n        SERVICE: payments\n      deleteBranchOnMerge: true\n",
            },
        ]
    }

    async fn handle(&self, ctx: &mut ActionContext, input: Input) -> Result<(), ActionError> {
        let target = Target::connect(&self.integrations, ctx, &input.repo_url, input.token.as_deref()).await?;
        let settings = input.settings();
        let info = create_repository(ctx, &target.client, &target.owner, &target.repo, &settings).await?;
        apply_settings(ctx, &target.client, &target.owner, &target.repo, &settings).await?;
        let branch = info.default_branch.clone().unwrap_or_else(|| "main".into());
        ctx.output("remoteUrl", json!(info.clone_url));
        ctx.output("repoContentsUrl", json!(format!("{}/blob/{branch}", info.html_url)));
        Ok(())
    }
}
