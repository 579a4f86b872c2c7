//! `publish:github`: creates a repository on a GitHub host (or a bare
//! repository on the local git host) and pushes the workspace to it in one
//! commit.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use http::Method;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{branch_lease, destination, file_url, local_repo_path, signature};
use crate::actions::workspace::resolve_safe_child_path;
use crate::actions::{ActionContext, ActionError, ActionExample, ActionHandler};
use crate::scm::git::{with_task_trailer, Git, Signature};
use crate::scm::github::{seg, CreateRepo, GithubClient};
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

fn yes() -> bool {
    true
}
fn no() -> bool {
    false
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
fn default_squash_title() -> SquashTitle {
    SquashTitle::CommitOrPrTitle
}
fn default_squash_message() -> SquashMessage {
    SquashMessage::CommitMessages
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    Private,
    Public,
    Internal,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SquashTitle {
    PrTitle,
    CommitOrPrTitle,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SquashMessage {
    PrBody,
    CommitMessages,
    Blank,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BypassAllowances {
    pub apps: Option<Vec<String>>,
    pub users: Option<Vec<String>>,
    pub teams: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Restrictions {
    pub apps: Option<Vec<String>>,
    pub users: Vec<String>,
    pub teams: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserCollaborator {
    /// The type of access for the user
    pub access: String,
    /// The name of the user that will be added as a collaborator
    pub user: String,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamCollaborator {
    /// The type of access for the team
    pub access: String,
    /// The name of the team that will be added as a collaborator
    pub team: String,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Collaborator {
    User(UserCollaborator),
    Team(TeamCollaborator),
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OidcCustomization {
    /// Whether to use the default template or not. If true, includeClaimKeys must not be set.
    #[serde(default = "yes")]
    pub use_default: bool,
    /// Array of unique strings. Each claim key can only contain alphanumeric characters and underscores.
    pub include_claim_keys: Option<Vec<String>>,
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
    /// Custom properties to be added to the repository (note, this only works for organization repositories)
    pub custom_properties: Option<BTreeMap<String, String>>,
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
struct Published {
    remote_url: String,
    repo_contents_url: String,
    commit_hash: String,
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
    let author = signature(Some(&input.git_author_name), input.git_author_email.as_deref());
    let message = with_task_trailer(&input.git_commit_message, &ctx.task_id);
    let published = match dest.target {
        ScmTarget::Local(local) => {
            publish_local(
                ctx,
                local,
                &dest.owner,
                &dest.spec.repo,
                &input,
                &source,
                &message,
                &author,
            )
            .await?
        }
        ScmTarget::Github(host) => {
            publish_github(
                ctx,
                host,
                &dest.owner,
                &dest.spec.repo,
                &input,
                &source,
                &message,
                &author,
            )
            .await?
        }
    };
    ctx.output("remoteUrl", Value::String(published.remote_url));
    ctx.output("repoContentsUrl", Value::String(published.repo_contents_url));
    ctx.output("commitHash", Value::String(published.commit_hash));
    Ok(())
}

/// Commits `source` and pushes it as `branch`: to an empty repository, or
/// over a branch this task pushed before; anything else is a foreign
/// repository and an error.
#[allow(clippy::too_many_arguments)]
async fn push_initial_commit(
    git: &Git,
    remote: &str,
    display_name: &str,
    branch: &str,
    source: &Path,
    message: &str,
    author: &Signature,
    task_id: &str,
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
        match branch_lease(&scratch, &branches, remote, branch, task_id, false).await? {
            Ok(Some(head)) => Some(head),
            Ok(None) | Err(_) => return Err(foreign()),
        }
    };
    scratch.stage_all(Some(source)).await?;
    let sha = scratch.commit(branch, message, author).await?;
    scratch.push(remote, branch, lease.as_deref()).await?;
    Ok((sha, lease.is_some()))
}

#[allow(clippy::too_many_arguments)]
async fn publish_local(
    ctx: &ActionContext,
    local: &LocalGitHost,
    owner: &str,
    repo: &str,
    input: &Input,
    source: &Path,
    message: &str,
    author: &Signature,
) -> Result<Published, ActionError> {
    let path = local_repo_path(local, owner, repo)?;
    let git = Git::new(ctx.cancel.clone());
    if !path.exists() {
        git.init_bare(&path, &input.default_branch).await?;
        ctx.logger
            .info(format!(
                "Created repository {owner}/{repo} on the local git host at {}",
                path.display()
            ))
            .await;
    }
    let remote = path.display().to_string();
    let (sha, adopted) = push_initial_commit(
        &git,
        &remote,
        &format!("{owner}/{repo}"),
        &input.default_branch,
        source,
        message,
        author,
        &ctx.task_id,
    )
    .await?;
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
        .info(format!("Pushed {sha} to {remote_url} ({})", input.default_branch))
        .await;
    Ok(Published {
        repo_contents_url: format!("{remote_url}/blob/{}", input.default_branch),
        remote_url,
        commit_hash: sha,
    })
}

fn create_body(repo: &str, organization: bool, input: &Input) -> Value {
    let visibility = input.repo_visibility.unwrap_or(Visibility::Private);
    let mut body = json!({
        "name": repo,
        "private": visibility == Visibility::Private,
        "delete_branch_on_merge": input.delete_branch_on_merge,
        "allow_merge_commit": input.allow_merge_commit,
        "allow_squash_merge": input.allow_squash_merge,
        "squash_merge_commit_title": input.squash_merge_commit_title,
        "squash_merge_commit_message": input.squash_merge_commit_message,
        "allow_rebase_merge": input.allow_rebase_merge,
        "allow_auto_merge": input.allow_auto_merge,
        "allow_update_branch": input.allow_update_branch,
        "has_wiki": input.has_wiki,
        "has_issues": input.has_issues,
    });
    if organization {
        body["visibility"] = json!(visibility);
    }
    for (key, value) in [("description", &input.description), ("homepage", &input.homepage)] {
        if let Some(value) = value {
            body[key] = json!(value);
        }
    }
    if let Some(has_projects) = input.has_projects {
        body["has_projects"] = json!(has_projects);
    }
    body
}

fn protection_body(input: &Input) -> Value {
    let mut reviews = json!({
        "required_approving_review_count": input.required_approving_review_count.unwrap_or(1.0) as u64,
        "require_code_owner_reviews": input.require_code_owner_reviews.unwrap_or(false),
        "dismiss_stale_reviews": input.dismiss_stale_reviews.unwrap_or(false),
        "require_last_push_approval": input.require_last_push_approval,
    });
    if let Some(bypass) = &input.bypass_pull_request_allowances {
        reviews["bypass_pull_request_allowances"] = json!(bypass);
    }
    json!({
        "required_status_checks": {
            "strict": input.require_branches_to_be_up_to_date,
            "contexts": input.required_status_check_contexts.clone().unwrap_or_default(),
        },
        "restrictions": input.restrictions,
        "enforce_admins": input.protect_enforce_admins,
        "required_pull_request_reviews": reviews,
        "required_conversation_resolution": input.required_conversation_resolution.unwrap_or(false),
        "required_linear_history": input.required_linear_history.unwrap_or(false),
    })
}

#[allow(clippy::too_many_arguments)]
async fn publish_github(
    ctx: &ActionContext,
    host: &GithubHost,
    owner: &str,
    repo: &str,
    input: &Input,
    source: &Path,
    message: &str,
    author: &Signature,
) -> Result<Published, ActionError> {
    if input.secrets.as_ref().is_some_and(|s| !s.is_empty()) {
        return Err(ActionError::InvalidInput(
            "publish:github: repository `secrets` are not supported by this scaffolder yet (they need sealed-box encryption); set them after publishing".into(),
        ));
    }
    let client = GithubClient::connect(host, input.token.as_deref(), ctx.cancel.clone()).await?;
    let organization = client.is_organization(owner).await?;
    let repo_path = format!("/repos/{}/{}", seg(owner), seg(repo));
    let info = match client
        .create_repo(owner, organization, &create_body(repo, organization, input))
        .await?
    {
        CreateRepo::Created(info) => {
            ctx.logger
                .info(format!("Created repository {owner}/{repo} on {}", host.host))
                .await;
            info
        }
        CreateRepo::AlreadyExists => {
            let info = client.get_repo(owner, repo).await?.ok_or_else(|| {
                ActionError::Failed(format!(
                    "Repository {owner}/{repo} already exists on {} but cannot be read with these credentials",
                    host.host
                ))
            })?;
            ctx.logger
                .info(format!(
                    "Repository {owner}/{repo} already exists on {}; checking whether an earlier run of this task created it",
                    host.host
                ))
                .await;
            info
        }
    };
    let git = Git::new(ctx.cancel.clone()).with_token(client.git_token());
    let (sha, adopted) = push_initial_commit(
        &git,
        &info.clone_url,
        &format!("{owner}/{repo} on {}", host.host),
        &input.default_branch,
        source,
        message,
        author,
        &ctx.task_id,
    )
    .await?;
    if adopted {
        ctx.logger
            .info(format!(
                "Adopted {owner}/{repo}: it was created by an earlier run of this task"
            ))
            .await;
    }

    if let Some(access) = input.access.as_deref().filter(|a| !a.is_empty()) {
        let result = match access.split_once('/') {
            Some((org, team)) => {
                let path = format!(
                    "/orgs/{}/teams/{}/repos/{}/{}",
                    seg(org),
                    seg(team),
                    seg(owner),
                    seg(repo)
                );
                client
                    .request(Method::PUT, &path, Some(&json!({"permission": "admin"})))
                    .await
            }
            None if access != owner => {
                let path = format!("{repo_path}/collaborators/{}", seg(access));
                client
                    .request(Method::PUT, &path, Some(&json!({"permission": "admin"})))
                    .await
            }
            None => Ok(Value::Null),
        };
        result?;
    }
    for collaborator in input.collaborators.iter().flatten() {
        let (who, result) = match collaborator {
            Collaborator::User(c) => {
                let path = format!("{repo_path}/collaborators/{}", seg(&c.user));
                (
                    c.user.clone(),
                    client
                        .request(Method::PUT, &path, Some(&json!({"permission": c.access})))
                        .await,
                )
            }
            Collaborator::Team(c) => {
                let team = c.team.rsplit('/').next().unwrap_or(&c.team);
                let path = format!(
                    "/orgs/{}/teams/{}/repos/{}/{}",
                    seg(owner),
                    seg(team),
                    seg(owner),
                    seg(repo)
                );
                (
                    c.team.clone(),
                    client
                        .request(Method::PUT, &path, Some(&json!({"permission": c.access})))
                        .await,
                )
            }
        };
        if let Err(e) = result {
            ctx.logger.warn(format!("Skipping {who} access for {repo}, {e}")).await;
        }
    }
    if let Some(topics) = input.topics.as_ref().filter(|t| !t.is_empty()) {
        let names: Vec<String> = topics.iter().map(|t| t.to_lowercase()).collect();
        if let Err(e) = client
            .request(
                Method::PUT,
                &format!("{repo_path}/topics"),
                Some(&json!({"names": names})),
            )
            .await
        {
            ctx.logger
                .warn(format!("Skipping topics {}, {e}", names.join(" ")))
                .await;
        }
    }
    for (name, value) in input.repo_variables.iter().flatten() {
        client
            .request(
                Method::POST,
                &format!("{repo_path}/actions/variables"),
                Some(&json!({"name": name, "value": value})),
            )
            .await?;
    }
    if let Some(oidc) = &input.oidc_customization {
        let mut body = json!({"use_default": oidc.use_default});
        if let Some(keys) = &oidc.include_claim_keys {
            body["include_claim_keys"] = json!(keys);
        }
        client
            .request(
                Method::PUT,
                &format!("{repo_path}/actions/oidc/customization/sub"),
                Some(&body),
            )
            .await?;
    }
    if let Some(properties) = input.custom_properties.as_ref().filter(|p| !p.is_empty()) {
        let list: Vec<Value> = properties
            .iter()
            .map(|(k, v)| json!({"property_name": k, "value": v}))
            .collect();
        client
            .request(
                Method::PATCH,
                &format!("{repo_path}/properties/values"),
                Some(&json!({"properties": list})),
            )
            .await?;
    }
    if input.subscribe == Some(true) {
        client
            .request(
                Method::PUT,
                &format!("{repo_path}/subscription"),
                Some(&json!({"subscribed": true})),
            )
            .await?;
    }
    if input.protect_default_branch {
        let path = format!("{repo_path}/branches/{}/protection", seg(&input.default_branch));
        match client.request(Method::PUT, &path, Some(&protection_body(input))).await {
            Ok(_) => {
                if input.required_commit_signing == Some(true) {
                    if let Err(e) = client
                        .request(Method::POST, &format!("{path}/required_signatures"), None)
                        .await
                    {
                        ctx.logger
                            .warn(format!("Skipping: required commit signing on '{repo}', {e}"))
                            .await;
                    }
                }
            }
            Err(e) => {
                ctx.logger
                    .warn(format!("Skipping: default branch protection on '{repo}', {e}"))
                    .await
            }
        }
    }
    Ok(Published {
        repo_contents_url: format!("{}/blob/{}", info.html_url, input.default_branch),
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
    fn protection_follows_the_inputs() {
        let input: Input = serde_json::from_value(json!({
            "repoUrl": "github.com?owner=o&repo=r",
            "requireCodeOwnerReviews": true,
            "requiredStatusCheckContexts": ["ci"],
            "requiredApprovingReviewCount": 2,
        }))
        .unwrap();
        let body = protection_body(&input);
        assert_eq!(
            body["required_status_checks"],
            json!({"strict": true, "contexts": ["ci"]})
        );
        assert_eq!(
            body["required_pull_request_reviews"]["require_code_owner_reviews"],
            json!(true)
        );
        assert_eq!(
            body["required_pull_request_reviews"]["required_approving_review_count"],
            json!(2)
        );
        assert_eq!(body["enforce_admins"], json!(true));
        let create = create_body("r", true, &input);
        assert_eq!(create["visibility"], json!("private"));
        assert_eq!(create["private"], json!(true));
        assert_eq!(create["squash_merge_commit_title"], json!("COMMIT_OR_PR_TITLE"));
    }
}
