//! `publish:github`: creates a repository on a GitHub host (or a bare
//! repository on the local git host) and pushes the workspace to it in one
//! commit.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{branch_lease, destination, file_url, local_repo_path, signature, BranchLease};
use crate::actions::github::settings::{
    apply_settings, create_repository, default_squash_message, default_squash_title, no, yes, BypassAllowances,
    Collaborator, OidcCustomization, PropertyValue, Protection, RepoSettings, Restrictions, SquashMessage, SquashTitle,
    Visibility,
};
use crate::actions::workspace::resolve_safe_child_path;
use crate::actions::{ActionContext, ActionError, ActionExample, ActionHandler};
use crate::scm::git::{with_task_trailer, Git, Signature};
use crate::scm::github::GithubClient;
use crate::scm::integrations::{GithubHost, LocalGitHost};
use crate::scm::{ScmIntegrations, ScmTarget};

pub struct PublishGithub {
    integrations: Arc<ScmIntegrations>,
}

impl PublishGithub {
    pub fn new(integrations: Arc<ScmIntegrations>) -> PublishGithub {
        PublishGithub { integrations }
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
    /// Accepts the format `github.com?repo=reponame&owner=owner` where `reponame` is the new repository name and `owner` is an organization or username
    pub repo_url: String,
    /// Repository Description
    pub description: Option<String>,
    /// Repository Homepage
    pub homepage: Option<String>,
    /// Sets an admin collaborator on the repository. Can either be a user reference different from `owner` in `repoUrl` or team reference, eg. `org/team-name`
    pub access: Option<String>,
    /// Allow specific users, teams, or apps to bypass pull request requirements.
    pub bypass_pull_request_allowances: Option<BypassAllowances>,
    /// Specify the number of reviewers required to approve pull requests. Use a number between `1` and `6` or `0` to not require reviewers. Defaults to `1`.
    pub required_approving_review_count: Option<f64>,
    /// Restrict who can push to the protected branch. User, app, and team restrictions are only available for organization-owned repositories.
    pub restrictions: Option<Restrictions>,
    /// Require an approved review in PR including files with a designated Code Owner
    pub require_code_owner_reviews: Option<bool>,
    /// New reviewable commits pushed to a matching branch will dismiss pull request review approvals.
    pub dismiss_stale_reviews: Option<bool>,
    /// The list of status checks to require in order to merge into this branch
    pub required_status_check_contexts: Option<Vec<String>>,
    /// Require branches to be up to date before merging. The default value is `true`
    #[serde(default = "yes")]
    pub require_branches_to_be_up_to_date: bool,
    /// Requires all conversations on code to be resolved before a pull request can be merged into this branch
    pub required_conversation_resolution: Option<bool>,
    /// Whether the most recent push to a PR must be approved by someone other than the person who pushed it. The default value is `false`
    #[serde(default = "no")]
    pub require_last_push_approval: bool,
    /// Repository Visibility
    pub repo_visibility: Option<Visibility>,
    /// Sets the default branch on the repository. The default value is 'master'
    #[serde(default = "default_branch")]
    pub default_branch: String,
    /// Protect the default branch after creating the repository. The default value is `true`
    #[serde(default = "yes")]
    pub protect_default_branch: bool,
    /// Enforce admins to adhere to default branch protection. The default value is `true`
    #[serde(default = "yes")]
    pub protect_enforce_admins: bool,
    /// Delete the branch after merging the PR. The default value is `false`
    #[serde(default = "no")]
    pub delete_branch_on_merge: bool,
    /// Sets the commit message on the repository. The default value is `initial commit`
    #[serde(default = "default_message")]
    pub git_commit_message: String,
    /// Sets the default author name for the commit. The default value is `Scaffolder`
    #[serde(default = "default_author")]
    pub git_author_name: String,
    /// Sets the default author email for the commit.
    pub git_author_email: Option<String>,
    /// Allow merge commits. The default value is `true`
    #[serde(default = "yes")]
    pub allow_merge_commit: bool,
    /// Allow squash merges. The default value is `true`
    #[serde(default = "yes")]
    pub allow_squash_merge: bool,
    /// Sets the default value for a squash merge commit title. The default value is `COMMIT_OR_PR_TITLE`
    #[serde(default = "default_squash_title")]
    pub squash_merge_commit_title: SquashTitle,
    /// Sets the default value for a squash merge commit message. The default value is `COMMIT_MESSAGES`
    #[serde(default = "default_squash_message")]
    pub squash_merge_commit_message: SquashMessage,
    /// Allow rebase merges. The default value is `true`
    #[serde(default = "yes")]
    pub allow_rebase_merge: bool,
    /// Allow individual PRs to merge automatically when all merge requirements are met. The default value is `false`
    #[serde(default = "no")]
    pub allow_auto_merge: bool,
    /// Allow branch to be updated. The default value is `false`
    #[serde(default = "no")]
    pub allow_update_branch: bool,
    /// Path within the workspace that will be used as the repository root. If omitted, the entire workspace will be published as the repository.
    pub source_path: Option<String>,
    /// Provide additional users or teams with permissions
    pub collaborators: Option<Vec<Collaborator>>,
    /// Enable projects for the repository. The default value is `true` unless the organization has disabled repository projects
    pub has_projects: Option<bool>,
    /// Enable the wiki for the repository. The default value is `true`
    #[serde(default = "yes")]
    pub has_wiki: bool,
    /// Enable issues for the repository. The default value is `true`
    #[serde(default = "yes")]
    pub has_issues: bool,
    /// The token to use for authorization to GitHub
    pub token: Option<String>,
    /// Adds topics to the repository
    pub topics: Option<Vec<String>>,
    /// Variables attached to the repository
    pub repo_variables: Option<BTreeMap<String, String>>,
    /// Secrets attached to the repository
    pub secrets: Option<BTreeMap<String, String>>,
    /// OIDC customization template attached to the repository.
    pub oidc_customization: Option<OidcCustomization>,
    /// Require commit signing so that you must sign commits on this branch.
    pub required_commit_signing: Option<bool>,
    /// Prevent merge commits from being pushed to matching branches.
    pub required_linear_history: Option<bool>,
    /// Custom properties to be added to the repository (note, this only works for organization repositories). All values must be strings
    pub custom_properties: Option<BTreeMap<String, PropertyValue>>,
    /// Subscribe to the repository. The default value is 'false'
    pub subscribe: Option<bool>,
}

#[async_trait]
impl ActionHandler for PublishGithub {
    type Input = Input;
    const ID: &'static str = "publish:github";
    const DESCRIPTION: &'static str =
        "Initializes a git repository of contents in workspace and publishes it to GitHub.";

    fn output_schema(&self) -> Option<Value> {
        Some(output_schema())
    }

    fn examples(&self) -> Vec<ActionExample> {
        examples("publish:github")
    }

    async fn handle(&self, ctx: &mut ActionContext, input: Input) -> Result<(), ActionError> {
        publish(&self.integrations, ctx, input).await
    }
}

/// `publish:git`: the same action under a host-neutral name, for templates
/// that publish to the local git host.
pub struct PublishGit(PublishGithub);

impl PublishGit {
    pub fn new(integrations: Arc<ScmIntegrations>) -> PublishGit {
        PublishGit(PublishGithub::new(integrations))
    }
}

#[async_trait]
impl ActionHandler for PublishGit {
    type Input = Input;
    const ID: &'static str = "publish:git";
    const DESCRIPTION: &'static str = "Initializes a git repository of contents in workspace and publishes it to the git host named in `repoUrl` (the local git host or a GitHub host); the same inputs and outputs as publish:github.";

    fn output_schema(&self) -> Option<Value> {
        Some(output_schema())
    }

    fn examples(&self) -> Vec<ActionExample> {
        examples("publish:git")
    }

    async fn handle(&self, ctx: &mut ActionContext, input: Input) -> Result<(), ActionError> {
        publish(&self.0.integrations, ctx, input).await
    }
}

fn output_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "remoteUrl": {"type": "string", "description": "A URL to the repository with the provider"},
            "repoContentsUrl": {"type": "string", "description": "A URL to the root of the repository"},
            "commitHash": {"type": "string", "description": "The git commit hash of the initial commit"},
        },
    })
}

fn examples(id: &'static str) -> Vec<ActionExample> {
    if id == "publish:git" {
        return vec![ActionExample {
            description: "Publishes the workspace to a bare repository of the local git host.",
            example: "steps:\n  - id: publish\n    action: publish:git\n    name: Publish\n    input:\n      repoUrl: git.local?repo=repo&owner=owner\n      defaultBranch: main\n",
        }];
    }
    vec![
        ActionExample {
            description: "Initializes a git repository with the content in the workspace, and publishes it to GitHub with the default configuration.",
            example: "steps:\n  - id: publish\n    action: publish:github\n    name: Publish to GitHub\n    input:\n      repoUrl: github.com?repo=repo&owner=owner\n",
        },
        ActionExample {
            description: "Initializes a GitHub repository with a description.",
            example: "steps:\n  - id: publish\n    action: publish:github\n    name: Publish to GitHub\n    input:\n      repoUrl: github.com?repo=repo&owner=owner\n      description: Initialize a git repository\n",
        },
        ActionExample {
            description: "Initializes a GitHub repository with public repo visibility, if not set defaults to private",
            example: "steps:\n  - id: publish\n    action: publish:github\n    name: Publish to GitHub\n    input:\n      repoUrl: github.com?repo=repo&owner=owner\n      repoVisibility: public\n",
        },
    ]
}

/// What every publish produces.
pub(crate) struct Published {
    pub remote_url: String,
    pub repo_contents_url: String,
    pub commit_hash: String,
}

/// One publish as the handler prepared it: the destination, the typed
/// input, and the commit to push.
struct Publication<'a> {
    owner: &'a str,
    repo: &'a str,
    input: &'a Input,
    commit: InitialCommit<'a>,
}

/// The one commit a publish pushes as the repository's first branch.
pub(crate) struct InitialCommit<'a> {
    pub branch: &'a str,
    pub source: &'a Path,
    /// The message, with this task's trailer.
    pub message: String,
    pub author: Signature,
    pub task_id: &'a str,
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
            auto_init: false,
            collaborators: self.collaborators.clone().unwrap_or_default(),
            topics: self.topics.clone().unwrap_or_default(),
            variables: self.repo_variables.clone().unwrap_or_default(),
            secrets: self.secrets.clone().unwrap_or_default(),
            oidc: self.oidc_customization.clone(),
            custom_properties: self.custom_properties.clone().unwrap_or_default(),
            subscribe: self.subscribe == Some(true),
            workflow_access: None,
        }
    }

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

async fn publish(integrations: &ScmIntegrations, ctx: &mut ActionContext, input: Input) -> Result<(), ActionError> {
    let dest = destination(integrations, &input.repo_url, |_| {
        "Invalid repository owner provided in repoUrl".to_owned()
    })?;
    let source = resolve_safe_child_path(&ctx.workspace, input.source_path.as_deref().unwrap_or(""))?;
    if !source.is_dir() {
        return Err(ActionError::InvalidInput(format!(
            "sourcePath '{}' is not a directory of the workspace",
            input.source_path.as_deref().unwrap_or("")
        )));
    }
    let task_id = ctx.task_id.clone();
    let publication = Publication {
        owner: &dest.owner,
        repo: &dest.spec.repo,
        input: &input,
        commit: InitialCommit {
            branch: &input.default_branch,
            source: &source,
            message: with_task_trailer(&input.git_commit_message, &task_id),
            author: signature(Some(&input.git_author_name), input.git_author_email.as_deref()),
            task_id: &task_id,
        },
    };
    let published = match dest.target {
        ScmTarget::Local(local) => publish_local(ctx, local, &publication).await?,
        ScmTarget::Github(host) => publish_github(ctx, host, &publication).await?,
    };
    ctx.output("remoteUrl", Value::String(published.remote_url));
    ctx.output("repoContentsUrl", Value::String(published.repo_contents_url));
    ctx.output("commitHash", Value::String(published.commit_hash));
    Ok(())
}

/// Commits `commit.source` and pushes it as `commit.branch`: to an empty
/// repository, or over a branch this task pushed before; anything else is a
/// foreign repository and an error. Answers the commit and whether it
/// replaced an earlier attempt's.
pub(crate) async fn push_initial_commit(
    git: &Git,
    remote: &str,
    display_name: &str,
    commit: &InitialCommit<'_>,
) -> Result<(String, bool), ActionError> {
    let branches = git.remote_branches(remote).await?;
    let scratch = git.scratch().await?;
    let foreign = || {
        ActionError::Failed(format!(
            "Repository {display_name} already exists and has commits that this task did not make; refusing to publish into it. Choose another repository name or remove the existing repository"
        ))
    };
    let lease = if branches.is_empty() {
        None
    } else {
        match branch_lease(&scratch, &branches, remote, commit.branch, commit.task_id, false).await? {
            BranchLease::Replace(head) => Some(head),
            BranchLease::Absent | BranchLease::Foreign(_) => return Err(foreign()),
        }
    };
    scratch.stage_all(Some(commit.source)).await?;
    let sha = scratch.commit(commit.branch, &commit.message, &commit.author).await?;
    scratch.push(remote, commit.branch, lease.as_deref()).await?;
    Ok((sha, lease.is_some()))
}

async fn publish_local(
    ctx: &ActionContext,
    local: &LocalGitHost,
    publication: &Publication<'_>,
) -> Result<Published, ActionError> {
    let Publication {
        owner,
        repo,
        input,
        commit,
    } = publication;
    let path = local_repo_path(local, owner, repo)?;
    let git = Git::new(ctx.cancel.clone());
    if !path.exists() {
        git.init_bare(&path, commit.branch).await?;
        ctx.logger
            .info(format!(
                "Created repository {owner}/{repo} on the local git host at {}",
                path.display()
            ))
            .await;
    }
    let remote = path.display().to_string();
    let (sha, adopted) = push_initial_commit(&git, &remote, &format!("{owner}/{repo}"), commit).await?;
    if adopted {
        ctx.logger
            .info(format!(
                "Replaced the commit an earlier run of this task pushed to {owner}/{repo}"
            ))
            .await;
    }
    let ignored: Vec<&str> = [
        ("topics", input.topics.is_some()),
        ("collaborators", input.collaborators.is_some()),
        ("access", input.access.is_some()),
        ("repoVisibility", input.repo_visibility.is_some()),
        ("repoVariables", input.repo_variables.is_some()),
        ("secrets", input.secrets.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    if !ignored.is_empty() {
        ctx.logger
            .info(format!(
                "The local git host has no settings for {}; they are ignored",
                ignored.join(", ")
            ))
            .await;
    }
    let remote_url = file_url(&path)?;
    ctx.logger
        .info(format!("Pushed {sha} to {remote_url} ({})", commit.branch))
        .await;
    Ok(Published {
        repo_contents_url: format!("{remote_url}/blob/{}", commit.branch),
        remote_url,
        commit_hash: sha,
    })
}

/// Pushes the initial commit to a GitHub repository.
pub(crate) async fn push_to_github(
    ctx: &ActionContext,
    client: &GithubClient,
    target: (&str, &str),
    clone_url: &str,
    commit: &InitialCommit<'_>,
) -> Result<String, ActionError> {
    let (owner, repo) = target;
    let git = Git::new(ctx.cancel.clone()).with_token(client.git_token());
    let (sha, adopted) =
        push_initial_commit(&git, clone_url, &format!("{owner}/{repo} on {}", client.host()), commit).await?;
    if adopted {
        ctx.logger
            .info(format!(
                "Adopted {owner}/{repo}: it was created by an earlier run of this task"
            ))
            .await;
    }
    Ok(sha)
}

async fn publish_github(
    ctx: &ActionContext,
    host: &GithubHost,
    publication: &Publication<'_>,
) -> Result<Published, ActionError> {
    let Publication {
        owner,
        repo,
        input,
        commit,
    } = publication;
    let client = GithubClient::connect(host, input.token.as_deref(), ctx.cancel.clone()).await?;
    let settings = input.settings();
    let info = create_repository(ctx, &client, owner, repo, &settings).await?;
    // The push comes first: it refuses a repository with someone else's
    // commits before any setting of it is touched.
    let sha = push_to_github(ctx, &client, (owner, repo), &info.clone_url, commit).await?;
    apply_settings(ctx, &client, owner, repo, &settings).await?;
    if input.protect_default_branch {
        input
            .protection()
            .apply_or_warn(ctx, &client, owner, repo, commit.branch)
            .await;
    }
    Ok(Published {
        repo_contents_url: format!("{}/blob/{}", info.html_url, commit.branch),
        remote_url: info.clone_url,
        commit_hash: sha,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::Action;

    #[test]
    fn the_schema_has_backstages_properties_and_defaults() {
        let schema = Action::input_schema(&PublishGithub::new(Arc::default()));
        let props = schema["properties"].as_object().unwrap();
        for name in [
            "repoUrl",
            "description",
            "homepage",
            "access",
            "bypassPullRequestAllowances",
            "requiredApprovingReviewCount",
            "restrictions",
            "requireCodeOwnerReviews",
            "dismissStaleReviews",
            "requiredStatusCheckContexts",
            "requireBranchesToBeUpToDate",
            "requiredConversationResolution",
            "requireLastPushApproval",
            "repoVisibility",
            "defaultBranch",
            "protectDefaultBranch",
            "protectEnforceAdmins",
            "deleteBranchOnMerge",
            "gitCommitMessage",
            "gitAuthorName",
            "gitAuthorEmail",
            "allowMergeCommit",
            "allowSquashMerge",
            "squashMergeCommitTitle",
            "squashMergeCommitMessage",
            "allowRebaseMerge",
            "allowAutoMerge",
            "sourcePath",
            "collaborators",
            "hasProjects",
            "hasWiki",
            "hasIssues",
            "token",
            "topics",
            "repoVariables",
            "secrets",
            "oidcCustomization",
            "requiredCommitSigning",
            "requiredLinearHistory",
            "customProperties",
            "subscribe",
        ] {
            assert!(props.contains_key(name), "{name} missing");
        }
        assert_eq!(schema["required"], json!(["repoUrl"]));
        assert_eq!(props["defaultBranch"]["default"], json!("master"));
        assert_eq!(props["gitCommitMessage"]["default"], json!("initial commit"));
        assert_eq!(
            props["repoVisibility"]["enum"],
            json!(["private", "public", "internal"])
        );
        assert_eq!(
            props["repoUrl"]["description"],
            json!("Accepts the format `github.com?repo=reponame&owner=owner` where `reponame` is the new repository name and `owner` is an organization or username")
        );
        assert!(
            !Action::supports_dry_run(&PublishGithub::new(Arc::default())),
            "Backstage's publish:github does not support dry-run"
        );
    }

    #[test]
    fn the_inputs_become_the_typed_settings() {
        let input: Input = serde_json::from_value(json!({
            "repoUrl": "github.com?owner=o&repo=r",
            "requireCodeOwnerReviews": true,
            "requiredStatusCheckContexts": ["ci"],
            "requiredApprovingReviewCount": 2,
            "customProperties": {"team": "a", "tags": ["x", "y"]},
        }))
        .unwrap();
        let body = input.protection().body();
        assert_eq!(
            body["required_status_checks"],
            json!({"strict": true, "contexts": ["ci"]})
        );
        assert_eq!(body["enforce_admins"], json!(true));
        let create = input.settings().create_body("r", true);
        assert_eq!(create["visibility"], json!("private"));
        assert_eq!(create["private"], json!(true));
        assert_eq!(create["squash_merge_commit_title"], json!("COMMIT_OR_PR_TITLE"));
        assert_eq!(
            serde_json::to_value(&input.settings().custom_properties).unwrap(),
            json!({"tags": ["x", "y"], "team": "a"})
        );
    }
}
