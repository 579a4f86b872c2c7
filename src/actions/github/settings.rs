//! What `publish:github`, `github:repo:create`, `github:repo:push` and
//! `github:branch-protection:create` share: the input types they have in
//! common (same names and shapes as Backstage's), the repository settings
//! applied on creation and the branch protection body. Not an action.

use std::collections::BTreeMap;

use http::Method;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::actions::{ActionContext, ActionError};
use crate::scm::github::{seg, CreateRepo, GithubClient, RepoInfo, Scope};

pub(crate) fn yes() -> bool {
    true
}
pub(crate) fn no() -> bool {
    false
}
pub(crate) fn default_squash_title() -> SquashTitle {
    SquashTitle::CommitOrPrTitle
}
pub(crate) fn default_squash_message() -> SquashMessage {
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

/// `workflowAccess` of `github:repo:create`: GitHub's `access_level`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WorkflowAccess {
    None,
    Organization,
    User,
}

impl WorkflowAccess {
    /// GitHub's `access_level`.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowAccess::None => "none",
            WorkflowAccess::Organization => "organization",
            WorkflowAccess::User => "user",
        }
    }
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
    /// The permission the user gets
    pub access: String,
    /// The login of the user to add as a collaborator
    pub user: String,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamCollaborator {
    /// The permission the team gets
    pub access: String,
    /// The slug of the team to add (`team` or `org/team`)
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
    /// Use GitHub's default subject claim template; `includeClaimKeys` must then be absent.
    #[serde(default = "yes")]
    pub use_default: bool,
    /// Claim keys of the subject template (unique; letters, digits and underscores).
    pub include_claim_keys: Option<Vec<String>>,
}

/// A custom property's value: one string, or several for multi-select properties.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum PropertyValue {
    One(String),
    Many(Vec<String>),
}

/// How a new repository is created and set up: the typed form of the
/// creation inputs shared by `publish:github` and `github:repo:create`.
#[derive(Debug, Clone)]
pub struct RepoSettings {
    pub description: Option<String>,
    pub homepage: Option<String>,
    pub access: Option<String>,
    pub visibility: Option<Visibility>,
    pub delete_branch_on_merge: bool,
    pub allow_merge_commit: bool,
    pub allow_squash_merge: bool,
    pub squash_merge_commit_title: SquashTitle,
    pub squash_merge_commit_message: SquashMessage,
    pub allow_rebase_merge: bool,
    pub allow_auto_merge: bool,
    pub allow_update_branch: bool,
    pub has_projects: Option<bool>,
    pub has_wiki: bool,
    pub has_issues: bool,
    pub auto_init: bool,
    pub collaborators: Vec<Collaborator>,
    pub topics: Vec<String>,
    pub variables: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, String>,
    pub oidc: Option<OidcCustomization>,
    pub custom_properties: BTreeMap<String, PropertyValue>,
    pub subscribe: bool,
    pub workflow_access: Option<WorkflowAccess>,
}

/// Branch protection as `publish:github`, `github:repo:push` and
/// `github:branch-protection:create` ask for it.
#[derive(Debug, Clone)]
pub struct Protection {
    pub required_approving_review_count: Option<f64>,
    pub require_code_owner_reviews: bool,
    pub dismiss_stale_reviews: bool,
    pub bypass_pull_request_allowances: Option<BypassAllowances>,
    pub restrictions: Option<Restrictions>,
    pub required_status_check_contexts: Vec<String>,
    pub require_branches_to_be_up_to_date: bool,
    pub required_conversation_resolution: bool,
    pub require_last_push_approval: bool,
    pub enforce_admins: bool,
    pub required_commit_signing: bool,
    pub required_linear_history: bool,
    pub block_creations: Option<bool>,
}

impl RepoSettings {
    /// The body of `POST /orgs/{org}/repos` or `POST /user/repos`
    /// (`visibility` exists only for organizations).
    pub fn create_body(&self, repo: &str, organization: bool) -> Value {
        let visibility = self.visibility.unwrap_or(Visibility::Private);
        let mut body = json!({
            "name": repo,
            "private": visibility == Visibility::Private,
            "delete_branch_on_merge": self.delete_branch_on_merge,
            "allow_merge_commit": self.allow_merge_commit,
            "allow_squash_merge": self.allow_squash_merge,
            "squash_merge_commit_title": self.squash_merge_commit_title,
            "squash_merge_commit_message": self.squash_merge_commit_message,
            "allow_rebase_merge": self.allow_rebase_merge,
            "allow_auto_merge": self.allow_auto_merge,
            "allow_update_branch": self.allow_update_branch,
            "has_wiki": self.has_wiki,
            "has_issues": self.has_issues,
        });
        if organization {
            body["visibility"] = json!(visibility);
        }
        if self.auto_init {
            body["auto_init"] = json!(true);
        }
        for (key, value) in [("description", &self.description), ("homepage", &self.homepage)] {
            if let Some(value) = value {
                body[key] = json!(value);
            }
        }
        if let Some(has_projects) = self.has_projects {
            body["has_projects"] = json!(has_projects);
        }
        body
    }
}

/// Creates `owner/repo`, or finds the one an earlier attempt created.
pub async fn create_repository(
    ctx: &ActionContext,
    client: &GithubClient,
    owner: &str,
    repo: &str,
    settings: &RepoSettings,
) -> Result<RepoInfo, ActionError> {
    let organization = client.is_organization(owner).await?;
    let host = client.host().to_owned();
    let info = match client
        .create_repo(owner, organization, &settings.create_body(repo, organization))
        .await?
    {
        CreateRepo::Created(info) => {
            ctx.logger
                .info(format!("Created repository {owner}/{repo} on {host}"))
                .await;
            info
        }
        CreateRepo::AlreadyExists => {
            let info = client.get_repo(owner, repo).await?.ok_or_else(|| {
                ActionError::Failed(format!(
                    "Repository {owner}/{repo} already exists on {host} but cannot be read with these credentials"
                ))
            })?;
            ctx.logger
                .info(format!(
                    "Repository {owner}/{repo} already exists on {host}; checking whether an earlier run of this task created it"
                ))
                .await;
            info
        }
    };
    Ok(info)
}

/// Applies the settings that follow creation: access, collaborators,
/// topics, variables, secrets, OIDC template, custom properties,
/// subscription and workflow access. Failed collaborators and topics are
/// warnings, as in Backstage; the rest fails the step. Each is a
/// create-or-update on GitHub, so a re-run sets the same.
pub async fn apply_settings(
    ctx: &ActionContext,
    client: &GithubClient,
    owner: &str,
    repo: &str,
    settings: &RepoSettings,
) -> Result<(), ActionError> {
    let api = client.repo(owner, repo);
    if let Some(access) = settings.access.as_deref().filter(|a| !a.is_empty()) {
        let admin = json!({"permission": "admin"});
        match access.split_once('/') {
            Some((org, team)) => {
                let path = format!(
                    "/orgs/{}/teams/{}/repos/{}/{}",
                    seg(org),
                    seg(team),
                    seg(owner),
                    seg(repo)
                );
                client.request(Method::PUT, &path, Some(&admin)).await?;
            }
            None if access != owner => {
                api.send(Method::PUT, &format!("/collaborators/{}", seg(access)), Some(&admin))
                    .await?;
            }
            None => {}
        }
    }
    for collaborator in &settings.collaborators {
        let (who, result) = match collaborator {
            Collaborator::User(c) => (
                c.user.clone(),
                api.send(
                    Method::PUT,
                    &format!("/collaborators/{}", seg(&c.user)),
                    Some(&json!({"permission": c.access})),
                )
                .await,
            ),
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
                        .await
                        .map(drop),
                )
            }
        };
        if let Err(e) = result {
            ctx.logger.warn(format!("Skipping {who} access for {repo}, {e}")).await;
        }
    }
    if !settings.topics.is_empty() {
        let names: Vec<String> = settings.topics.iter().map(|t| t.to_lowercase()).collect();
        if let Err(e) = api.send(Method::PUT, "/topics", Some(&json!({"names": names}))).await {
            ctx.logger
                .warn(format!("Skipping topics {}, {e}", names.join(" ")))
                .await;
        }
    }
    for (name, value) in &settings.variables {
        api.put_variable(Scope::Repository, name, value).await?;
    }
    for (name, value) in &settings.secrets {
        api.put_secret(Scope::Repository, name, value).await?;
    }
    if let Some(oidc) = &settings.oidc {
        let mut body = json!({"use_default": oidc.use_default});
        if let Some(keys) = &oidc.include_claim_keys {
            body["include_claim_keys"] = json!(keys);
        }
        api.send(Method::PUT, "/actions/oidc/customization/sub", Some(&body))
            .await?;
    }
    if !settings.custom_properties.is_empty() {
        let list: Vec<Value> = settings
            .custom_properties
            .iter()
            .map(|(k, v)| json!({"property_name": k, "value": v}))
            .collect();
        api.send(Method::PATCH, "/properties/values", Some(&json!({"properties": list})))
            .await?;
    }
    if settings.subscribe {
        api.send(Method::PUT, "/subscription", Some(&json!({"subscribed": true})))
            .await?;
    }
    if let Some(level) = settings.workflow_access {
        api.set_workflow_access(level.as_str()).await?;
    }
    Ok(())
}

impl Protection {
    /// The body of `PUT /repos/{owner}/{repo}/branches/{branch}/protection`.
    pub fn body(&self) -> Value {
        let mut reviews = json!({
            "required_approving_review_count": self.required_approving_review_count.unwrap_or(1.0) as u64,
            "require_code_owner_reviews": self.require_code_owner_reviews,
            "dismiss_stale_reviews": self.dismiss_stale_reviews,
            "require_last_push_approval": self.require_last_push_approval,
        });
        if let Some(bypass) = &self.bypass_pull_request_allowances {
            reviews["bypass_pull_request_allowances"] = json!(bypass);
        }
        let mut body = json!({
            "required_status_checks": {
                "strict": self.require_branches_to_be_up_to_date,
                "contexts": self.required_status_check_contexts,
            },
            "restrictions": self.restrictions,
            "enforce_admins": self.enforce_admins,
            "required_pull_request_reviews": reviews,
            "required_conversation_resolution": self.required_conversation_resolution,
            "required_linear_history": self.required_linear_history,
        });
        if let Some(block) = self.block_creations {
            body["block_creations"] = json!(block);
        }
        body
    }

    /// Protects `branch` (GitHub replaces the whole protection, so a re-run
    /// sets the same), then requires signed commits when asked.
    pub async fn apply(&self, client: &GithubClient, owner: &str, repo: &str, branch: &str) -> Result<(), ActionError> {
        let api = client.repo(owner, repo);
        api.protect_branch(branch, &self.body()).await?;
        if self.required_commit_signing {
            api.require_signatures(branch).await?;
        }
        Ok(())
    }

    /// `apply`, a failure being a warning: how publishing protects the
    /// branch it pushed (Backstage's "Skipping: default branch protection").
    pub async fn apply_or_warn(
        &self,
        ctx: &ActionContext,
        client: &GithubClient,
        owner: &str,
        repo: &str,
        branch: &str,
    ) {
        if let Err(e) = self.apply(client, owner, repo, branch).await {
            ctx.logger
                .warn(format!("Skipping: default branch protection on '{repo}', {e}"))
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protection() -> Protection {
        Protection {
            required_approving_review_count: Some(2.0),
            require_code_owner_reviews: true,
            dismiss_stale_reviews: false,
            bypass_pull_request_allowances: None,
            restrictions: None,
            required_status_check_contexts: vec!["ci".into()],
            require_branches_to_be_up_to_date: true,
            required_conversation_resolution: false,
            require_last_push_approval: false,
            enforce_admins: true,
            required_commit_signing: false,
            required_linear_history: false,
            block_creations: None,
        }
    }

    #[test]
    fn protection_follows_the_inputs() {
        let body = protection().body();
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
        assert_eq!(body["restrictions"], Value::Null);
        assert!(body.get("block_creations").is_none());
        let blocked = Protection {
            block_creations: Some(true),
            ..protection()
        };
        assert_eq!(blocked.body()["block_creations"], json!(true));
    }
}
