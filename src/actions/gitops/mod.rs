//! `gitops:init` and `gitops:overlay:register`: the GitOps repository
//! layout of `crate::gitops`, written through `crate::gitops::repo` to a
//! GitHub host or the local git host.

mod image;
mod init;
mod register;
mod unregister;

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

pub use image::{GitopsImagePromote, GitopsImageVerify};
pub use init::GitopsInit;
pub use register::GitopsOverlayRegister;
pub use unregister::GitopsOverlayUnregister;

use crate::actions::publish::local_name;
use crate::actions::{ActionContext, ActionError};
use crate::gitops::appset::AppSetSource;
use crate::gitops::repo::SyncError;
use crate::gitops::GitopsError;
use crate::scm::git::{Git, Signature};
use crate::scm::github::GithubClient;
use crate::scm::{ScmIntegrations, ScmTarget};

const DEFAULT_AUTHOR_NAME: &str = "Scaffolder";
const DEFAULT_AUTHOR_EMAIL: &str = "scaffolder@backstage.io";

impl From<GitopsError> for ActionError {
    fn from(e: GitopsError) -> ActionError {
        match e {
            GitopsError::Invalid(m) => ActionError::InvalidInput(m),
            GitopsError::NotAllowed(m) => ActionError::NotAllowed(m),
            e @ GitopsError::NeedsApproval { .. } => ActionError::NotAllowed(e.to_string()),
            GitopsError::Conflict(m) => ActionError::Failed(m),
        }
    }
}

impl From<SyncError> for ActionError {
    fn from(e: SyncError) -> ActionError {
        match e {
            SyncError::Gitops(e) => e.into(),
            SyncError::Git(e) => e.into(),
            SyncError::Cancelled => ActionError::Cancelled,
            SyncError::Io { context, source } => ActionError::Io { context, source },
            other => ActionError::Failed(other.to_string()),
        }
    }
}

/// The commit message: the `commitMessage` input unless it is blank, else
/// `default`; with the task's trailer, so a re-run recognises its commit.
fn commit_message(given: Option<&str>, default: impl FnOnce() -> String, task_id: &str) -> String {
    match given.filter(|m| !m.trim().is_empty()) {
        Some(message) => crate::scm::git::with_task_trailer(message, task_id),
        None => crate::scm::git::with_task_trailer(&default(), task_id),
    }
}

fn signature(name: Option<&str>, email: Option<&str>) -> Signature {
    Signature {
        name: name
            .filter(|n| !n.trim().is_empty())
            .unwrap_or(DEFAULT_AUTHOR_NAME)
            .to_owned(),
        email: email
            .filter(|e| !e.trim().is_empty())
            .unwrap_or(DEFAULT_AUTHOR_EMAIL)
            .to_owned(),
    }
}

/// Where a GitOps repository is.
enum Kind {
    /// A bare repository of the local git host (`url`: its file URL).
    Local { path: PathBuf, url: String },
    /// A repository of a GitHub host.
    Github {
        client: Option<Box<GithubClient>>,
        html_url: String,
        owner: String,
        repo: String,
    },
}

/// The GitOps repository named by a `repoUrl`.
struct GitopsRepo {
    kind: Kind,
    /// What `git` pushes to.
    remote: String,
    /// The repository's https clone URL (what Argo CD clones unless told
    /// otherwise); never a file URL.
    clone_url: String,
    git: Git,
}

impl GitopsRepo {
    /// A link to `commit`: the GitHub page, or `<file URL of the bare
    /// repository>/commit/<sha>` on the local host.
    fn commit_url(&self, commit: &str) -> String {
        match &self.kind {
            Kind::Local { url, .. } => format!("{url}/commit/{commit}"),
            Kind::Github { html_url, .. } => format!("{html_url}/commit/{commit}"),
        }
    }

    /// What the ApplicationSets read: the `argocdRepoUrl` input, else the
    /// installation's `gitops.argocd_repo_url`, else the repository's https
    /// clone URL. Argo CD runs in the clusters and cannot clone a path of
    /// this machine, so a `file:` URL or a bare path is refused.
    fn source(
        &self,
        argocd_repo_url: Option<&str>,
        configured: Option<&str>,
        revision: &str,
        namespace: &str,
    ) -> Result<AppSetSource, ActionError> {
        let repo_url = argocd_repo_url
            .filter(|u| !u.trim().is_empty())
            .or(configured.filter(|u| !u.trim().is_empty()))
            .unwrap_or(&self.clone_url)
            .trim()
            .to_owned();
        check_argocd_url(&repo_url)?;
        Ok(AppSetSource {
            repo_url,
            revision: revision.to_owned(),
            argocd_namespace: namespace.to_owned(),
        })
    }
}

/// Accepts the URLs Argo CD clones: `https://`, `http://`, `ssh://`,
/// `git://` and scp-like `git@host:path`.
fn check_argocd_url(url: &str) -> Result<(), ActionError> {
    let scp_like = url
        .split_once(':')
        .is_some_and(|(user_host, path)| user_host.contains('@') && !user_host.contains('/') && !path.is_empty());
    let schemed = ["https://", "http://", "ssh://", "git://"]
        .iter()
        .any(|scheme| url.len() > scheme.len() && url.starts_with(scheme));
    if scp_like || schemed {
        Ok(())
    } else {
        Err(ActionError::InvalidInput(format!(
            "Argo CD cannot clone {url:?}: the ApplicationSets need a URL the clusters reach (https://, ssh:// or git@host:path); set argocdRepoUrl or the gitops.argocd_repo_url setting"
        )))
    }
}

/// Who owns a service, from the caller: the `owner` input, else the task's
/// user (`user.ref`), else the service's own repository
/// (`repository:<host>/<owner>/<repo>` from `sourceRepoUrl`). There is no
/// shared default: an anonymous run without either is refused, so that no
/// two callers can share an owner by accident.
fn caller_owner(
    integrations: &ScmIntegrations,
    ctx: &ActionContext,
    owner: Option<&str>,
    source_repo_url: Option<&str>,
) -> Result<String, ActionError> {
    if let Some(owner) = owner.map(str::trim).filter(|o| !o.is_empty()) {
        return Ok(owner.to_owned());
    }
    if let Some(user) = ctx
        .user
        .get("ref")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|r| !r.is_empty())
    {
        return Ok(user.to_owned());
    }
    if let Some(url) = source_repo_url.map(str::trim).filter(|u| !u.is_empty()) {
        let spec = integrations
            .parse_repo_url(url)
            .map_err(|e| ActionError::InvalidInput(format!("sourceRepoUrl: {e}")))?;
        let owner = spec
            .owner
            .filter(|o| !o.is_empty())
            .ok_or_else(|| ActionError::InvalidInput(format!("sourceRepoUrl {url} names no owner")))?;
        return Ok(format!("repository:{}/{owner}/{}", spec.host, spec.repo));
    }
    Err(ActionError::InvalidInput(
        "No owner for the service: run the task as a signed-in user, or give `owner` (e.g. a group entity ref) or `sourceRepoUrl` (the service's repository)".into(),
    ))
}

/// Resolves `repo_url`. `connect: false` (dry-run) touches nothing; else a
/// missing local repository is created when `create` allows it, and a
/// GitHub repository must exist.
async fn open_repo(
    integrations: &ScmIntegrations,
    ctx: &ActionContext,
    repo_url: &str,
    token: Option<&str>,
    branch: &str,
    connect: bool,
) -> Result<GitopsRepo, ActionError> {
    let spec = integrations
        .parse_repo_url(repo_url)
        .map_err(|e| ActionError::InvalidInput(e.to_string()))?;
    let owner = spec
        .owner
        .clone()
        .filter(|o| !o.is_empty())
        .ok_or_else(|| ActionError::InvalidInput(format!("repoUrl {repo_url} names no owner")))?;
    let repo = spec.repo.clone();
    let target = integrations.target(&spec.host).ok_or_else(|| {
        ActionError::InvalidInput(format!(
            "No matching integration configuration for host {}, please check your integrations config",
            spec.host
        ))
    })?;
    let git = Git::new(ctx.cancel.clone());
    match target {
        ScmTarget::Local(local) => {
            local_name("owner", &owner)?;
            local_name("repository name", &repo)?;
            let relative = local.dir.join(&owner).join(format!("{repo}.git"));
            let path = std::path::absolute(&relative)
                .map_err(ActionError::io(format!("cannot resolve {}", relative.display())))?;
            if connect && !path.exists() {
                git.init_bare(&path, branch).await?;
                ctx.logger
                    .info(format!(
                        "Created the GitOps repository {owner}/{repo} on the local git host at {}",
                        path.display()
                    ))
                    .await;
            }
            let url = url::Url::from_file_path(&path)
                .map(String::from)
                .map_err(|()| ActionError::Failed(format!("{} cannot be written as a file URL", path.display())))?;
            // Argo CD never clones a path of this machine: the local host's
            // repository is addressed as the https host it stands in for.
            Ok(GitopsRepo {
                remote: path.display().to_string(),
                clone_url: format!("https://{}/{owner}/{repo}.git", spec.host),
                kind: Kind::Local { path, url },
                git,
            })
        }
        ScmTarget::Github(host) => {
            if !connect {
                let html_url = format!("https://{}/{owner}/{repo}", host.host);
                return Ok(GitopsRepo {
                    remote: format!("{html_url}.git"),
                    clone_url: format!("{html_url}.git"),
                    kind: Kind::Github {
                        client: None,
                        html_url,
                        owner,
                        repo,
                    },
                    git,
                });
            }
            let client = GithubClient::connect(host, token, ctx.cancel.clone()).await?;
            let info = client.get_repo(&owner, &repo).await?.ok_or_else(|| {
                ActionError::Failed(format!(
                    "The GitOps repository {owner}/{repo} was not found on {}; create it first (e.g. with publish:github)",
                    host.host
                ))
            })?;
            let git = git.with_token(client.git_token());
            Ok(GitopsRepo {
                remote: info.clone_url.clone(),
                // The page's address plus `.git`: GitHub's https clone URL,
                // also where `clone_url` is another transport (a mirror).
                clone_url: format!("{}.git", info.html_url.trim_end_matches('/')),
                kind: Kind::Github {
                    client: Some(Box::new(client)),
                    html_url: info.html_url,
                    owner,
                    repo,
                },
                git,
            })
        }
    }
}

/// How a GitOps change reaches the branch Argo CD follows.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    // Pushed onto the branch.
    #[default]
    Commit,
    // Pushed to a branch of its own, with a pull request on GitHub.
    PullRequest,
}

/// Opens (or finds) the pull request of `head` into `base` and sets the
/// output `pullRequestUrl`; on the local git host, which has no pull
/// requests, says where the branch is.
async fn pull_request(
    ctx: &mut ActionContext,
    repo: &GitopsRepo,
    head: &str,
    base: &str,
    message: &str,
    body: &str,
) -> Result<(), ActionError> {
    match &repo.kind {
        Kind::Local { path, .. } => {
            ctx.logger
                .info(format!(
                    "The local git host has no pull requests: branch {head} of {} holds the change; merge it into {base} with git",
                    path.display(),
                ))
                .await;
        }
        Kind::Github {
            client: Some(client),
            owner,
            repo: name,
            ..
        } => {
            let pr = match client.open_pull_for_branch(owner, name, owner, head).await? {
                Some(pr) => pr,
                None => {
                    let title = message.lines().next().unwrap_or_default().to_owned();
                    client
                        .create_pull(
                            owner,
                            name,
                            &json!({"title": title, "body": body, "head": head, "base": base}),
                        )
                        .await?
                }
            };
            ctx.logger.info(format!("Pull request {}", pr.html_url)).await;
            ctx.output("pullRequestUrl", json!(pr.html_url));
        }
        Kind::Github { client: None, .. } => {}
    }
    Ok(())
}

fn strings(list: &[String]) -> Value {
    Value::Array(list.iter().cloned().map(Value::String).collect())
}
