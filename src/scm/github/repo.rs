//! Typed operations on one repository (`GithubClient::repo`): the request
//! bodies and answers of the GitHub REST operations the `github:*` actions
//! and publishing call, by GitHub's own field names. Every answer is read
//! into a struct: a missing field is `GithubError::Unexpected` naming it.
//!
//! Idempotency lives here where GitHub offers no "create or update": each
//! `ensure_*` looks the object up first (or reads GitHub's "already exists"
//! answer) so a retried step finds what an earlier attempt made instead of
//! failing or making a second one.

use http::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{sealed, seg, GithubClient, GithubError};

/// Where an Actions secret or variable lives.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    Repository,
    Environment(&'a str),
}

/// What an `ensure_*` call found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    Created,
    /// It existed (made by an earlier attempt or by someone else) and was
    /// updated to the requested settings, or needed no change.
    Existing,
}

/// `GET …/secrets/public-key`.
#[derive(Debug, Deserialize)]
pub struct PublicKey {
    pub key_id: String,
    pub key: String,
}

#[derive(Debug, Deserialize)]
pub struct Identified {
    pub id: u64,
}

#[derive(Debug, Deserialize)]
struct Hook {
    id: u64,
    config: HookConfigAnswer,
}

#[derive(Debug, Deserialize)]
struct HookConfigAnswer {
    url: Option<String>,
}

/// `POST /repos/{owner}/{repo}/hooks` and `PATCH …/hooks/{hook_id}`.
#[derive(Debug, Serialize)]
pub struct HookRequest<'a> {
    pub config: HookConfig<'a>,
    pub events: &'a [String],
    pub active: bool,
}

#[derive(Debug, Serialize)]
pub struct HookConfig<'a> {
    pub url: &'a str,
    pub content_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<&'a str>,
    /// GitHub's `"0"` (verify) or `"1"` (do not verify).
    pub insecure_ssl: &'a str,
}

#[derive(Debug, Deserialize)]
struct Autolink {
    key_prefix: String,
}

/// `POST /repos/{owner}/{repo}/autolinks`.
#[derive(Debug, Serialize)]
pub struct AutolinkRequest<'a> {
    pub key_prefix: &'a str,
    pub url_template: &'a str,
    pub is_alphanumeric: bool,
}

#[derive(Debug, Deserialize)]
struct DeployKey {
    key: String,
}

/// `PUT /repos/{owner}/{repo}/environments/{environment_name}`.
#[derive(Debug, Default, Serialize)]
pub struct EnvironmentRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_timer: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prevent_self_review: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reviewers: Option<Vec<Reviewer>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_branch_policy: Option<BranchPolicyKind>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BranchPolicyKind {
    pub protected_branches: bool,
    pub custom_branch_policies: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Reviewer {
    #[serde(rename = "type")]
    pub kind: ReviewerKind,
    pub id: u64,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub enum ReviewerKind {
    User,
    Team,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RefKind {
    Branch,
    Tag,
}

#[derive(Debug, Deserialize)]
struct BranchPolicies {
    branch_policies: Vec<BranchPolicy>,
}

#[derive(Debug, Deserialize)]
struct BranchPolicy {
    name: String,
    #[serde(rename = "type", default)]
    kind: Option<RefKind>,
}

#[derive(Debug, Deserialize)]
struct Ruleset {
    id: u64,
    name: String,
}

/// An issue as `POST /repos/{owner}/{repo}/issues` answers it.
#[derive(Debug, Deserialize)]
pub struct Issue {
    pub number: u64,
    pub html_url: String,
}

/// What `POST …/dispatches` answers with `return_run_details`.
#[derive(Debug, Deserialize)]
pub struct WorkflowRun {
    pub workflow_run_id: u64,
    pub run_url: String,
    pub html_url: String,
}

#[derive(Debug, Serialize)]
struct Variable<'a> {
    name: &'a str,
    value: &'a str,
}

#[derive(Debug, Serialize)]
struct Secret<'a> {
    encrypted_value: &'a str,
    key_id: &'a str,
}

impl GithubClient {
    /// The operations on `owner/repo`.
    pub fn repo(&self, owner: &str, repo: &str) -> RepoApi<'_> {
        RepoApi {
            client: self,
            base: format!("/repos/{}/{}", seg(owner), seg(repo)),
        }
    }

    /// One request with a typed body, its answer read as `T`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, GithubError> {
        let answer = self.call_value(method.clone(), path, body).await?;
        self.decode(&format!("{method} {path}"), answer)
    }

    /// One request with a typed body whose answer is not needed.
    pub async fn call_unit(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<(), GithubError> {
        self.call_value(method, path, body).await.map(drop)
    }

    async fn call_value(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<Value, GithubError> {
        let body = body
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| GithubError::Setup {
                host: self.host.clone(),
                message: format!("cannot write the body of {method} {path}: {e}"),
            })?;
        self.request(method, path, body.as_ref()).await
    }

    /// The numeric id of a user (`GET /users/{username}`).
    pub async fn user_id(&self, login: &str) -> Result<u64, GithubError> {
        let user: Identified = self.get_as(&format!("/users/{}", seg(login))).await?;
        Ok(user.id)
    }

    /// The numeric id of a team (`GET /orgs/{org}/teams/{team_slug}`).
    pub async fn team_id(&self, org: &str, slug: &str) -> Result<u64, GithubError> {
        let team: Identified = self.get_as(&format!("/orgs/{}/teams/{}", seg(org), seg(slug))).await?;
        Ok(team.id)
    }
}

/// `GithubClient::repo`: paths under `/repos/{owner}/{repo}`.
pub struct RepoApi<'a> {
    client: &'a GithubClient,
    base: String,
}

const NONE: Option<&()> = None;

impl RepoApi<'_> {
    fn path(&self, rest: &str) -> String {
        format!("{}{rest}", self.base)
    }

    fn scope_path(&self, scope: Scope<'_>) -> String {
        match scope {
            Scope::Repository => self.path("/actions"),
            Scope::Environment(name) => self.path(&format!("/environments/{}", seg(name))),
        }
    }

    /// Creates or updates an Actions secret: sealed with the scope's public key.
    pub async fn put_secret(&self, scope: Scope<'_>, name: &str, value: &str) -> Result<(), GithubError> {
        let base = self.scope_path(scope);
        let key: PublicKey = self.client.get_as(&format!("{base}/secrets/public-key")).await?;
        let encrypted = sealed::seal(&key.key, value.as_bytes()).map_err(|message| GithubError::Unexpected {
            host: self.client.host.clone(),
            request: format!("GET {base}/secrets/public-key"),
            message,
        })?;
        let body = Secret {
            encrypted_value: &encrypted,
            key_id: &key.key_id,
        };
        self.client
            .call_unit(Method::PUT, &format!("{base}/secrets/{}", seg(name)), Some(&body))
            .await
    }

    /// Creates an Actions variable, or updates it when it exists (409).
    pub async fn put_variable(&self, scope: Scope<'_>, name: &str, value: &str) -> Result<Ensured, GithubError> {
        let base = self.scope_path(scope);
        let body = Variable { name, value };
        match self
            .client
            .call_unit(Method::POST, &format!("{base}/variables"), Some(&body))
            .await
        {
            Ok(()) => Ok(Ensured::Created),
            Err(e) if e.status() == Some(409) => {
                self.client
                    .call_unit(Method::PATCH, &format!("{base}/variables/{}", seg(name)), Some(&body))
                    .await?;
                Ok(Ensured::Existing)
            }
            Err(e) => Err(e),
        }
    }

    /// `PUT …/environments/{name}`: GitHub's create-or-update.
    pub async fn put_environment(&self, name: &str, body: &EnvironmentRequest) -> Result<(), GithubError> {
        self.client
            .call_unit(
                Method::PUT,
                &self.path(&format!("/environments/{}", seg(name))),
                Some(body),
            )
            .await
    }

    /// Adds a deployment branch or tag policy unless the environment has it.
    pub async fn ensure_deployment_policy(
        &self,
        environment: &str,
        kind: RefKind,
        pattern: &str,
    ) -> Result<Ensured, GithubError> {
        let path = self.path(&format!(
            "/environments/{}/deployment-branch-policies",
            seg(environment)
        ));
        let existing: BranchPolicies = self.client.get_as(&format!("{path}?per_page=100")).await?;
        if existing
            .branch_policies
            .iter()
            .any(|p| p.name == pattern && p.kind.unwrap_or(RefKind::Branch) == kind)
        {
            return Ok(Ensured::Existing);
        }
        #[derive(Serialize)]
        struct Policy<'a> {
            name: &'a str,
            #[serde(rename = "type")]
            kind: RefKind,
        }
        self.client
            .call_unit(Method::POST, &path, Some(&Policy { name: pattern, kind }))
            .await?;
        Ok(Ensured::Created)
    }

    /// Creates the webhook, or updates the one already delivering to the same URL.
    pub async fn ensure_hook(&self, hook: &HookRequest<'_>) -> Result<Ensured, GithubError> {
        let path = self.path("/hooks");
        let hooks: Vec<Value> = self.client.list_all(&path).await?;
        for value in hooks {
            let existing: Hook = self.client.decode(&format!("GET {path}"), value)?;
            if existing.config.url.as_deref() == Some(hook.config.url) {
                self.client
                    .call_unit(Method::PATCH, &format!("{path}/{}", existing.id), Some(hook))
                    .await?;
                return Ok(Ensured::Existing);
            }
        }
        #[derive(Serialize)]
        struct Create<'a, 'b> {
            name: &'static str,
            #[serde(flatten)]
            hook: &'a HookRequest<'b>,
        }
        self.client
            .call_unit(Method::POST, &path, Some(&Create { name: "web", hook }))
            .await?;
        Ok(Ensured::Created)
    }

    /// Creates the autolink unless one with the same key prefix exists.
    pub async fn ensure_autolink(&self, link: &AutolinkRequest<'_>) -> Result<Ensured, GithubError> {
        let path = self.path("/autolinks");
        let links: Vec<Autolink> = self.client.get_as(&path).await?;
        if links.iter().any(|l| l.key_prefix == link.key_prefix) {
            return Ok(Ensured::Existing);
        }
        self.client.call_unit(Method::POST, &path, Some(link)).await?;
        Ok(Ensured::Created)
    }

    /// Adds the deploy key unless the repository has the same public key.
    pub async fn ensure_deploy_key(&self, title: &str, key: &str) -> Result<Ensured, GithubError> {
        let path = self.path("/keys");
        let keys: Vec<Value> = self.client.list_all(&path).await?;
        let wanted = key_material(key);
        for value in keys {
            let existing: DeployKey = self.client.decode(&format!("GET {path}"), value)?;
            if key_material(&existing.key) == wanted {
                return Ok(Ensured::Existing);
            }
        }
        #[derive(Serialize)]
        struct Create<'a> {
            title: &'a str,
            key: &'a str,
            read_only: bool,
        }
        // Backstage's action leaves `read_only` at GitHub's default (false).
        let body = Create {
            title,
            key,
            read_only: false,
        };
        self.client.call_unit(Method::POST, &path, Some(&body)).await?;
        Ok(Ensured::Created)
    }

    /// Creates the ruleset, or updates the repository's ruleset of the same
    /// name; answers its id.
    pub async fn ensure_ruleset(&self, name: &str, body: &Value) -> Result<(u64, Ensured), GithubError> {
        let path = self.path("/rulesets");
        // Only the repository's own: an organization's ruleset of the same
        // name is not this action's to change.
        let rulesets: Vec<Value> = self.client.list_all(&format!("{path}?includes_parents=false")).await?;
        for value in rulesets {
            let existing: Ruleset = self.client.decode(&format!("GET {path}"), value)?;
            if existing.name == name {
                let updated: Identified = self
                    .client
                    .call(Method::PUT, &format!("{path}/{}", existing.id), Some(body))
                    .await?;
                return Ok((updated.id, Ensured::Existing));
            }
        }
        let created: Identified = self.client.call(Method::POST, &path, Some(body)).await?;
        Ok((created.id, Ensured::Created))
    }

    /// `POST …/issues/{number}/labels`: adding a label twice is a no-op on GitHub.
    pub async fn add_labels(&self, number: u64, labels: &[String]) -> Result<(), GithubError> {
        #[derive(Serialize)]
        struct Labels<'a> {
            labels: &'a [String],
        }
        self.client
            .call_unit(
                Method::POST,
                &self.path(&format!("/issues/{number}/labels")),
                Some(&Labels { labels }),
            )
            .await
    }

    /// `POST …/issues/{number}/assignees` (pull requests are issues too).
    pub async fn add_assignees(&self, number: u64, assignees: &[String]) -> Result<(), GithubError> {
        #[derive(Serialize)]
        struct Assignees<'a> {
            assignees: &'a [String],
        }
        self.client
            .call_unit(
                Method::POST,
                &self.path(&format!("/issues/{number}/assignees")),
                Some(&Assignees { assignees }),
            )
            .await
    }

    pub async fn create_issue(&self, body: &Value) -> Result<Issue, GithubError> {
        self.client.call(Method::POST, &self.path("/issues"), Some(body)).await
    }

    /// Enables GitHub Pages; when they are enabled already (409), updates
    /// their build type and source instead.
    pub async fn enable_pages(&self, body: &Value) -> Result<Ensured, GithubError> {
        let path = self.path("/pages");
        match self.client.call_unit(Method::POST, &path, Some(body)).await {
            Ok(()) => Ok(Ensured::Created),
            Err(e) if e.status() == Some(409) => {
                self.client.call_unit(Method::PUT, &path, Some(body)).await?;
                Ok(Ensured::Existing)
            }
            Err(e) => Err(e),
        }
    }

    /// `POST …/actions/workflows/{workflow_id}/dispatches`; with
    /// `return_run_details` GitHub answers the run it started.
    pub async fn dispatch_workflow(&self, workflow: &str, body: &Value) -> Result<Option<WorkflowRun>, GithubError> {
        let path = self.path(&format!("/actions/workflows/{}/dispatches", seg(workflow)));
        let answer = self.client.call_value(Method::POST, &path, Some(body)).await?;
        if body.get("return_run_details") == Some(&Value::Bool(true)) {
            self.client.decode(&format!("POST {path}"), answer).map(Some)
        } else {
            Ok(None)
        }
    }

    /// `PUT …/branches/{branch}/protection` (GitHub's replace-all).
    pub async fn protect_branch(&self, branch: &str, body: &Value) -> Result<(), GithubError> {
        self.client
            .call_unit(Method::PUT, &self.protection_path(branch), Some(body))
            .await
    }

    /// `POST …/branches/{branch}/protection/required_signatures`.
    pub async fn require_signatures(&self, branch: &str) -> Result<(), GithubError> {
        self.client
            .call_unit(
                Method::POST,
                &format!("{}/required_signatures", self.protection_path(branch)),
                NONE,
            )
            .await
    }

    fn protection_path(&self, branch: &str) -> String {
        self.path(&format!("/branches/{}/protection", seg(branch)))
    }

    /// `PUT …/actions/permissions/access`: who outside the repository may
    /// use its workflows (`none`, `user`, `organization`).
    pub async fn set_workflow_access(&self, level: &str) -> Result<(), GithubError> {
        #[derive(Serialize)]
        struct Access<'a> {
            access_level: &'a str,
        }
        self.client
            .call_unit(
                Method::PUT,
                &self.path("/actions/permissions/access"),
                Some(&Access { access_level: level }),
            )
            .await
    }

    /// A request under this repository with a JSON body, for the settings
    /// `publish:github` and `github:repo:create` apply after creation.
    pub async fn send(&self, method: Method, rest: &str, body: Option<&Value>) -> Result<(), GithubError> {
        self.client.request(method, &self.path(rest), body).await.map(drop)
    }
}

/// The type and base64 parts of an OpenSSH public key, without its comment:
/// GitHub answers deploy keys without the comment they were added with.
fn key_material(key: &str) -> String {
    key.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deploy_keys_compare_without_their_comments() {
        assert_eq!(
            key_material("ssh-ed25519 AAAAC3Nz me@laptop"),
            key_material("ssh-ed25519   AAAAC3Nz")
        );
        assert_ne!(key_material("ssh-ed25519 AAAA1"), key_material("ssh-ed25519 AAAA2"));
    }

    #[test]
    fn hook_bodies_use_githubs_names() {
        let events = vec!["push".to_owned()];
        let body = serde_json::to_value(HookRequest {
            config: HookConfig {
                url: "https://argocd.example/api/webhook",
                content_type: "json",
                secret: None,
                insecure_ssl: "0",
            },
            events: &events,
            active: true,
        })
        .unwrap();
        assert_eq!(
            body,
            serde_json::json!({"config": {"url": "https://argocd.example/api/webhook", "content_type": "json", "insecure_ssl": "0"}, "events": ["push"], "active": true})
        );
    }
}
