//! `POST /v2/autocomplete/{provider}/{resource}`: suggestions for form
//! fields, as Backstage's autocomplete handlers give them (`{id, title?}`).
//!
//! - `github` (Backstage's GitHub module): `repositoriesWithOwner`,
//!   `branches` (context `owner`, `repository`) and `owners`, read with the
//!   caller's token from the integration of `context.host` (`github.com`).
//! - `gitops` (ours): `clusters`, the `clusters/*` directories of the
//!   infra-gitops repository named by `context.repoUrl` (RepoUrlPicker form,
//!   e.g. `github.com?owner=soft-yt&repo=infra-gitops`) at `context.branch`
//!   (`main`), read through `scm::reader` like remote skeletons.
//! - any other provider: asked of the action bridges, whose modules register
//!   providers through Backstage's autocomplete extension point.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;
use url::Url;

use super::ServiceError;
use crate::actions::bridge::{BridgeError, Bridges};
use crate::scm::github::{seg, GithubClient, GithubError};
use crate::scm::reader::{ReadError, UrlReader};
use crate::scm::ScmIntegrations;

/// One suggestion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suggestion {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub id: String,
}

impl Suggestion {
    fn id(id: impl Into<String>) -> Suggestion {
        Suggestion {
            title: None,
            id: id.into(),
        }
    }
}

/// A request: the caller's SCM token and the field's context.
#[derive(Debug, Clone, Default)]
pub struct AutocompleteRequest {
    pub token: Option<String>,
    pub context: Map<String, Value>,
}

impl AutocompleteRequest {
    fn context(&self, key: &str) -> Option<&str> {
        self.context.get(key).and_then(Value::as_str).filter(|v| !v.is_empty())
    }
}

#[derive(Clone)]
pub struct AutocompleteService {
    integrations: Arc<ScmIntegrations>,
    reader: Arc<UrlReader>,
    bridges: Option<Arc<Bridges>>,
}

impl AutocompleteService {
    pub fn new(integrations: Arc<ScmIntegrations>, reader: Arc<UrlReader>) -> AutocompleteService {
        AutocompleteService {
            integrations,
            reader,
            bridges: None,
        }
    }

    /// Providers the service does not know are asked of these bridges.
    pub fn with_bridges(mut self, bridges: Arc<Bridges>) -> AutocompleteService {
        self.bridges = Some(bridges);
        self
    }

    async fn bridged(
        &self,
        provider: &str,
        resource: &str,
        token: &str,
        request: &AutocompleteRequest,
    ) -> Result<Vec<Suggestion>, ServiceError> {
        let unsupported = || ServiceError::Input(format!("Unsupported provider: {provider}"));
        let Some(bridges) = &self.bridges else {
            return Err(unsupported());
        };
        let results = match bridges.autocomplete(provider, resource, token, &request.context).await {
            Ok(Some(results)) => results,
            Ok(None) => return Err(unsupported()),
            Err(BridgeError::Status { message, status, .. }) if status < 500 => {
                return Err(ServiceError::Input(message))
            }
            Err(e) => {
                return Err(ServiceError::Upstream {
                    status: None,
                    message: e.to_string(),
                })
            }
        };
        Ok(results
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| {
                        Some(Suggestion {
                            title: item.get("title").and_then(Value::as_str).map(str::to_owned),
                            id: item.get("id").and_then(Value::as_str)?.to_owned(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Backstage's router checks the token, then the provider; the handler
    /// then the resource and its context.
    pub async fn complete(
        &self,
        provider: &str,
        resource: &str,
        request: &AutocompleteRequest,
    ) -> Result<Vec<Suggestion>, ServiceError> {
        let token = request
            .token
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ServiceError::Input("Missing token query parameter".into()))?;
        match provider {
            "github" => self.github(resource, token, request).await,
            "gitops" => self.gitops(resource, token, request).await,
            other => self.bridged(other, resource, token, request).await,
        }
    }

    async fn github(
        &self,
        resource: &str,
        token: &str,
        request: &AutocompleteRequest,
    ) -> Result<Vec<Suggestion>, ServiceError> {
        let host_name = request.context("host").unwrap_or("github.com");
        let host = self
            .integrations
            .github_hosts()
            .iter()
            .find(|h| h.host == host_name)
            .ok_or_else(|| ServiceError::Input(format!("No integration for host {host_name}")))?;
        let (path, field) = match resource {
            "repositoriesWithOwner" => ("/user/repos".to_owned(), "full_name"),
            "branches" => {
                let (Some(owner), Some(repository)) = (request.context("owner"), request.context("repository")) else {
                    return Err(ServiceError::Input(
                        "Missing owner and/or repository context parameter".into(),
                    ));
                };
                (format!("/repos/{}/{}/branches", seg(owner), seg(repository)), "name")
            }
            "owners" => ("/user/orgs".to_owned(), "login"),
            other => return Err(ServiceError::Input(format!("Invalid resource: {other}"))),
        };
        let client = GithubClient::connect(host, Some(token), CancellationToken::new())
            .await
            .map_err(upstream)?;
        let items = client.list_all(&path).await.map_err(upstream)?;
        Ok(items
            .iter()
            .filter_map(|item| item.get(field).and_then(Value::as_str))
            .map(Suggestion::id)
            .collect())
    }

    async fn gitops(
        &self,
        resource: &str,
        token: &str,
        request: &AutocompleteRequest,
    ) -> Result<Vec<Suggestion>, ServiceError> {
        if resource != "clusters" {
            return Err(ServiceError::Input(format!("Invalid resource: {resource}")));
        }
        let repo_url = request
            .context("repoUrl")
            .ok_or_else(|| ServiceError::Input("Missing repoUrl context parameter".into()))?;
        let spec = self
            .integrations
            .parse_repo_url(repo_url)
            .map_err(|e| ServiceError::Input(e.to_string()))?;
        let owner = spec
            .owner
            .ok_or_else(|| ServiceError::Input(format!("No owner provided for repo {repo_url}")))?;
        let branch = request.context("branch").unwrap_or("main");
        let url = Url::parse(&format!(
            "https://{}/{}/{}/tree/{}/{}",
            spec.host,
            seg(&owner),
            seg(&spec.repo),
            seg(branch),
            crate::gitops::layout::CLUSTERS_DIR
        ))
        .map_err(|e| ServiceError::Input(format!("{repo_url} does not name a repository: {e}")))?;
        let fetched = self
            .reader
            .read_tree(&url, Some(token), &CancellationToken::new())
            .await
            .map_err(|e| match e {
                ReadError::NotFound(m) => ServiceError::NotFound(m),
                ReadError::Unsupported(m) => ServiceError::Input(m),
                e => ServiceError::Upstream {
                    status: None,
                    message: e.to_string(),
                },
            })?;
        let mut clusters: Vec<String> = std::fs::read_dir(&fetched.path)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        clusters.sort();
        Ok(clusters.into_iter().map(Suggestion::id).collect())
    }
}

/// A GitHub failure as Backstage's error handler shows octokit's: the
/// upstream status, or 500.
fn upstream(e: GithubError) -> ServiceError {
    ServiceError::Upstream {
        status: e.status(),
        message: e.to_string(),
    }
}
