//! Publishing the workspace: `publish:github` (and its `publish:git` alias)
//! and `publish:github:pull-request`, on GitHub hosts or on the local git
//! host (bare repositories in a directory).
//!
//! Every commit carries a `Scaffolder-Task: <task id>` trailer; a re-run of
//! the same task finds it and adopts what the earlier attempt pushed
//! instead of failing on "already exists".

mod github;
mod pull_request;

use std::path::{Path, PathBuf};

use crate::actions::ActionError;
use crate::scm::git::{has_task_trailer, GitError, Scratch, Signature};
use crate::scm::github::GithubError;
use crate::scm::{LocalGitHost, ScmIntegrations, ScmTarget};
use crate::templating::RepoSpec;

pub(crate) use github::{push_to_github, InitialCommit};
pub use github::{PublishGit, PublishGithub};
pub use pull_request::PublishGithubPullRequest;

const DEFAULT_AUTHOR_NAME: &str = "Scaffolder";
const DEFAULT_AUTHOR_EMAIL: &str = "scaffolder@backstage.io";

impl From<GitError> for ActionError {
    fn from(e: GitError) -> ActionError {
        match e {
            GitError::Cancelled => ActionError::Cancelled,
            other => ActionError::Failed(other.to_string()),
        }
    }
}

impl From<GithubError> for ActionError {
    fn from(e: GithubError) -> ActionError {
        match e {
            GithubError::Cancelled => ActionError::Cancelled,
            other => ActionError::Failed(other.to_string()),
        }
    }
}

pub(crate) fn signature(name: Option<&str>, email: Option<&str>) -> Signature {
    Signature {
        name: name.filter(|n| !n.is_empty()).unwrap_or(DEFAULT_AUTHOR_NAME).to_owned(),
        email: email
            .filter(|e| !e.is_empty())
            .unwrap_or(DEFAULT_AUTHOR_EMAIL)
            .to_owned(),
    }
}

/// Where a `repoUrl` points, with its owner.
struct Destination<'a> {
    spec: RepoSpec,
    owner: String,
    target: ScmTarget<'a>,
}

fn destination<'a>(
    integrations: &'a ScmIntegrations,
    repo_url: &str,
    missing_owner: impl FnOnce(&RepoSpec) -> String,
) -> Result<Destination<'a>, ActionError> {
    let spec = integrations
        .parse_repo_url(repo_url)
        .map_err(|e| ActionError::InvalidInput(e.to_string()))?;
    let owner = match spec.owner.clone().filter(|o| !o.is_empty()) {
        Some(owner) => owner,
        None => return Err(ActionError::InvalidInput(missing_owner(&spec))),
    };
    let target = integrations.target(&spec.host).ok_or_else(|| {
        ActionError::InvalidInput(format!(
            "No matching integration configuration for host {}, please check your integrations config",
            spec.host
        ))
    })?;
    Ok(Destination { spec, owner, target })
}

/// A name usable as one directory of the local git host.
pub(crate) fn local_name(kind: &str, name: &str) -> Result<(), ActionError> {
    let valid = !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(ActionError::InvalidInput(format!(
            "Invalid {kind} '{name}' for the local git host: use letters, digits, '-', '_' and '.' (not first)"
        )))
    }
}

/// `<dir>/<owner>/<repo>.git`, absolute.
fn local_repo_path(local: &LocalGitHost, owner: &str, repo: &str) -> Result<PathBuf, ActionError> {
    local_name("owner", owner)?;
    local_name("repository name", repo)?;
    let path = local.dir.join(owner).join(format!("{repo}.git"));
    std::path::absolute(&path).map_err(ActionError::io(format!("cannot resolve {}", path.display())))
}

fn file_url(path: &Path) -> Result<String, ActionError> {
    url::Url::from_file_path(path)
        .map(String::from)
        .map_err(|()| ActionError::Failed(format!("{} cannot be written as a file URL", path.display())))
}

/// What a push may do to an existing branch of the remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BranchLease {
    /// The branch does not exist: the push creates it.
    Absent,
    /// The branch's head is this one, made by this task (or replacing a
    /// foreign head was allowed): the push replaces it, with this head as
    /// the lease.
    Replace(String),
    /// The branch's head was made by someone else.
    Foreign(String),
}

/// The lease for replacing `branch` of `remote`: `Replace` when its head was
/// made by this task (or `replace_foreign` allows replacing it).
async fn branch_lease(
    scratch: &Scratch,
    branches: &[(String, String)],
    remote: &str,
    branch: &str,
    task_id: &str,
    replace_foreign: bool,
) -> Result<BranchLease, ActionError> {
    let Some((_, head)) = branches.iter().find(|(name, _)| name == branch) else {
        return Ok(BranchLease::Absent);
    };
    if replace_foreign {
        return Ok(BranchLease::Replace(head.clone()));
    }
    let message = scratch.commit_message(remote, head).await?;
    Ok(if has_task_trailer(&message, task_id) {
        BranchLease::Replace(head.clone())
    } else {
        BranchLease::Foreign(head.clone())
    })
}

/// Where the repository `repo_url` can be fetched from, and a `git` that may
/// fetch it (GitHub: the integration's token; the local git host: its bare
/// repository). Template updates read generated repositories through it.
pub async fn repository_remote(
    integrations: &ScmIntegrations,
    repo_url: &str,
    cancel: tokio_util::sync::CancellationToken,
) -> Result<(crate::scm::git::Git, String), ActionError> {
    let dest = destination(integrations, repo_url, |spec| {
        format!("No owner provided for host: {}, and repo {}", spec.host, spec.repo)
    })?;
    match dest.target {
        ScmTarget::Local(local) => {
            let path = local_repo_path(local, &dest.owner, &dest.spec.repo)?;
            if !path.exists() {
                return Err(ActionError::Failed(format!(
                    "Repository {}/{} does not exist on the local git host ({})",
                    dest.owner,
                    dest.spec.repo,
                    path.display()
                )));
            }
            Ok((crate::scm::git::Git::new(cancel), path.display().to_string()))
        }
        ScmTarget::Github(host) => {
            let client = crate::scm::github::GithubClient::connect(host, None, cancel.clone()).await?;
            let info = client.get_repo(&dest.owner, &dest.spec.repo).await?.ok_or_else(|| {
                ActionError::Failed(format!(
                    "Repository {}/{} was not found on {}",
                    dest.owner, dest.spec.repo, host.host
                ))
            })?;
            let git = crate::scm::git::Git::new(cancel).with_token(client.git_token());
            Ok((git, info.clone_url))
        }
    }
}
