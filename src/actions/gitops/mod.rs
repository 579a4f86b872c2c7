//! `gitops:init` and `gitops:overlay:register`: the GitOps repository
//! layout of `crate::gitops`, written through `crate::gitops::repo` to a
//! GitHub host or the local git host.

mod init;
mod register;

use std::path::PathBuf;

use serde_json::Value;

pub use init::GitopsInit;
pub use register::GitopsOverlayRegister;

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
    /// A bare repository of the local git host.
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
    /// What Argo CD clones.
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

    fn source(&self, argocd_repo_url: Option<&str>, revision: &str, namespace: &str) -> AppSetSource {
        AppSetSource {
            repo_url: argocd_repo_url
                .filter(|u| !u.trim().is_empty())
                .unwrap_or(&self.clone_url)
                .to_owned(),
            revision: revision.to_owned(),
            argocd_namespace: namespace.to_owned(),
        }
    }
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
            Ok(GitopsRepo {
                remote: path.display().to_string(),
                clone_url: url.clone(),
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
                clone_url: info.clone_url.clone(),
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

fn strings(list: &[String]) -> Value {
    Value::Array(list.iter().cloned().map(Value::String).collect())
}
