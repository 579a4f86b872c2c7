//! Applying a [`Plan`] to the GitOps repository with `scm::git`: clone the
//! branch's tip, apply, commit, push; when another writer pushed first
//! (not a fast forward, a lost lease, a locked ref), start again from the
//! new tip after a jittered backoff, up to a bound. Nothing is committed
//! when the plan changes nothing.

use std::collections::HashMap;
use std::path::{Component, Path};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::plan::{Plan, RepoView};
use super::GitopsError;
use crate::backoff::{Backoff, Jitter};
use crate::domain::paths::resolve_safe_child_path;
use crate::scm::git::{Git, GitError, Signature};

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Gitops(#[from] GitopsError),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("gave up after {attempts} attempts to push to {branch}: others kept pushing first ({last})")]
    Contended {
        attempts: u32,
        branch: String,
        last: GitError,
    },
    #[error("the branch {0} does not exist in the GitOps repository")]
    MissingBase(String),
    #[error("the GitOps change was cancelled")]
    Cancelled,
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> SyncError {
    let context = context.into();
    move |source| SyncError::Io { context, source }
}

/// How often a push that lost a race is retried.
#[derive(Debug, Clone)]
pub struct PushRetry {
    /// Attempts in total (the first one included).
    pub max_attempts: u32,
    /// Upper bound of the first backoff (doubles per attempt, jittered).
    pub base: Duration,
    /// Largest backoff.
    pub cap: Duration,
}

impl Default for PushRetry {
    fn default() -> Self {
        PushRetry {
            max_attempts: 40,
            base: Duration::from_millis(50),
            cap: Duration::from_secs(2),
        }
    }
}

impl PushRetry {
    /// Full jitter: a random wait up to `min(cap, base·2^attempt)`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        Backoff::doubling(self.base)
            .capped(self.cap)
            .jittered(Jitter::Full)
            .delay(attempt)
    }
}

/// Writers of this process take turns per repository: tasks of one
/// replica queue instead of racing each other's pushes (which the retry
/// loop would also resolve, at the price of wasted attempts). Other
/// replicas are still raced, and the retry loop handles them.
#[derive(Default)]
pub struct RepoLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl RepoLocks {
    fn lock_for(&self, remote: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        locks.entry(remote.to_owned()).or_default().clone()
    }
}

/// Where and how to commit.
pub struct CommitRequest<'a> {
    /// A path or URL `git` can push to.
    pub remote: &'a str,
    /// The branch the change is built on.
    pub base_branch: &'a str,
    /// The branch pushed to: `None` pushes onto `base_branch` (fast forward
    /// only); `Some` replaces that branch (a pull request branch), with a
    /// lease on its current head.
    pub push_branch: Option<&'a str>,
    pub message: &'a str,
    pub author: &'a Signature,
    /// When nothing changes, the commit reported is the last one that
    /// touched this path (else the branch's head).
    pub unchanged_path: Option<&'a str>,
    /// When `push_branch` already exists, this file at its head is given to
    /// `branch_guard` (which may refuse to replace the branch).
    pub guard_path: Option<&'a str>,
}

pub type BranchGuard<'a> = dyn Fn(Option<&str>) -> Result<(), GitopsError> + Send + Sync + 'a;

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The new commit, or the existing one when nothing changed.
    pub commit: Option<String>,
    pub changed: bool,
    /// The branch the commit is on.
    pub branch: String,
    pub attempts: u32,
    pub paths: Vec<String>,
}

/// The scratch work tree as a [`RepoView`].
struct WorkTree<'a>(&'a Path);

impl RepoView for WorkTree<'_> {
    fn read(&self, path: &str) -> Option<String> {
        let full = resolve_safe_child_path(self.0, path).ok()?;
        std::fs::read_to_string(full).ok()
    }
    fn exists(&self, path: &str) -> bool {
        resolve_safe_child_path(self.0, path).is_ok_and(|p| std::fs::symlink_metadata(p).is_ok())
    }
    fn subdirs(&self, dir: &str) -> Vec<String> {
        let Ok(full) = resolve_safe_child_path(self.0, dir) else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(full) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .collect()
    }
}

/// Refuses a path that is absolute, leaves the tree or enters `.git`.
fn check_repo_path(path: &str) -> Result<(), GitopsError> {
    let refused = path.is_empty()
        || path.contains('\0')
        || path.contains('\\')
        || Path::new(path).components().any(|c| match c {
            Component::Normal(name) => name == ".git",
            _ => true,
        });
    if refused {
        Err(GitopsError::NotAllowed(format!(
            "Refusing to write {path:?}: paths in the GitOps repository must be relative, inside it and outside .git"
        )))
    } else {
        Ok(())
    }
}

fn remove_any(path: &Path) -> Result<(), SyncError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            std::fs::remove_dir_all(path).map_err(io(format!("cannot remove {}", path.display())))
        }
        Ok(_) => std::fs::remove_file(path).map_err(io(format!("cannot remove {}", path.display()))),
        Err(_) => Ok(()),
    }
}

fn write_file(root: &Path, path: &str, bytes: &[u8]) -> Result<(), SyncError> {
    check_repo_path(path)?;
    let full = resolve_safe_child_path(root, path).map_err(|e| GitopsError::NotAllowed(e.to_string()))?;
    if let Some(parent) = full.parent() {
        std::fs::create_dir_all(parent).map_err(io(format!("cannot create {}", parent.display())))?;
    }
    // Re-check now that the parents exist (a symbolic link on the way).
    resolve_safe_child_path(root, path).map_err(|e| GitopsError::NotAllowed(e.to_string()))?;
    if std::fs::symlink_metadata(&full).is_ok_and(|m| !m.is_file()) {
        remove_any(&full)?;
    }
    std::fs::write(&full, bytes).map_err(io(format!("cannot write {path}")))
}

/// Writes `plan` into the work tree at `root`.
pub fn apply_plan(root: &Path, plan: &Plan) -> Result<(), SyncError> {
    for path in &plan.remove {
        check_repo_path(path)?;
        let full = resolve_safe_child_path(root, path).map_err(|e| GitopsError::NotAllowed(e.to_string()))?;
        remove_any(&full)?;
    }
    for (dir, files) in &plan.replace_dirs {
        check_repo_path(dir)?;
        let full = resolve_safe_child_path(root, dir).map_err(|e| GitopsError::NotAllowed(e.to_string()))?;
        remove_any(&full)?;
        for (relative, bytes) in files {
            write_file(root, &format!("{dir}/{relative}"), bytes)?;
        }
    }
    for (path, bytes) in &plan.files {
        write_file(root, path, bytes)?;
    }
    Ok(())
}

async fn sleep(cancel: &CancellationToken, wait: Duration) -> Result<(), SyncError> {
    tokio::select! {
        _ = cancel.cancelled() => Err(SyncError::Cancelled),
        _ = tokio::time::sleep(wait) => Ok(()),
    }
}

/// Builds the change on the current tip of the base branch with `planner`
/// and pushes it; on a lost race, starts again from the new tip.
pub async fn commit_plan<F>(
    git: &Git,
    cancel: &CancellationToken,
    locks: &RepoLocks,
    request: &CommitRequest<'_>,
    retry: &PushRetry,
    branch_guard: &BranchGuard<'_>,
    mut planner: F,
) -> Result<Outcome, SyncError>
where
    F: FnMut(&dyn RepoView) -> Result<Plan, GitopsError>,
{
    let target = request.push_branch.unwrap_or(request.base_branch);
    let lock = locks.lock_for(request.remote);
    let _turn = tokio::select! {
        _ = cancel.cancelled() => return Err(SyncError::Cancelled),
        turn = lock.lock() => turn,
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        match try_once(git, request, branch_guard, &mut planner).await {
            Ok(mut outcome) => {
                outcome.attempts = attempt;
                return Ok(outcome);
            }
            Err(SyncError::Git(e)) if e.is_push_rejected() => {
                if attempt >= retry.max_attempts {
                    return Err(SyncError::Contended {
                        attempts: attempt,
                        branch: target.to_owned(),
                        last: e,
                    });
                }
                tracing::debug!(attempt, branch = target, "push lost a race, retrying from the new tip");
                sleep(cancel, retry.backoff(attempt)).await?;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn try_once<F>(
    git: &Git,
    request: &CommitRequest<'_>,
    branch_guard: &BranchGuard<'_>,
    planner: &mut F,
) -> Result<Outcome, SyncError>
where
    F: FnMut(&dyn RepoView) -> Result<Plan, GitopsError>,
{
    let branches = git.remote_branches(request.remote).await?;
    let head_of = |name: &str| branches.iter().find(|(b, _)| b == name).map(|(_, sha)| sha.clone());
    let base_head = head_of(request.base_branch);
    let target = request.push_branch.unwrap_or(request.base_branch);
    let scratch = git.scratch().await?;
    if base_head.is_some() {
        scratch
            .checkout_remote(request.remote, request.base_branch, target)
            .await?;
    } else if request.push_branch.is_some() {
        return Err(SyncError::MissingBase(request.base_branch.to_owned()));
    }
    // An existing pull request branch: its owner must agree, and it is
    // replaced under a lease on its head.
    let mut lease = None;
    if let Some(branch) = request.push_branch {
        if let Some(head) = head_of(branch) {
            scratch
                .fetch(request.remote, &format!("refs/heads/{branch}"), Some(1))
                .await?;
            let guarded = match request.guard_path {
                Some(path) => scratch.show_file(&head, path).await?,
                None => None,
            };
            branch_guard(guarded.as_deref())?;
            lease = Some(head);
        }
    }
    let plan = planner(&WorkTree(scratch.work_tree()))?;
    plan.check_yaml()?;
    apply_plan(scratch.work_tree(), &plan)?;
    let paths = plan.paths();
    let changed = scratch.stage_all(None).await?;
    if !changed {
        let commit = match (&base_head, request.unchanged_path) {
            (Some(_), Some(path)) => {
                scratch
                    .fetch(request.remote, &format!("refs/heads/{}", request.base_branch), None)
                    .await?;
                scratch
                    .last_commit_touching("FETCH_HEAD", path)
                    .await?
                    .or(base_head.clone())
            }
            _ => base_head.clone(),
        };
        return Ok(Outcome {
            commit,
            changed: false,
            branch: request.base_branch.to_owned(),
            attempts: 0,
            paths,
        });
    }
    if let Some(head) = &lease {
        // The pull request branch already holds exactly this change.
        let ours = scratch.write_index_tree().await?;
        if scratch.rev_parse(&format!("{head}^{{tree}}")).await?.as_deref() == Some(ours.as_str()) {
            return Ok(Outcome {
                commit: Some(head.clone()),
                changed: false,
                branch: target.to_owned(),
                attempts: 0,
                paths,
            });
        }
    }
    let sha = scratch.commit(target, request.message, request.author).await?;
    scratch.push(request.remote, target, lease.as_deref()).await?;
    Ok(Outcome {
        commit: Some(sha),
        changed: true,
        branch: target.to_owned(),
        attempts: 0,
        paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_paths_stay_inside_and_out_of_git() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            ".git/config",
            "apps/.git/x",
            "a\\b",
        ] {
            assert!(check_repo_path(bad).is_err(), "{bad}");
        }
        assert!(check_repo_path("apps/web/base/deploy.yaml").is_ok());
    }

    #[test]
    fn backoff_is_bounded() {
        let retry = PushRetry::default();
        for attempt in 0..50 {
            assert!(retry.backoff(attempt) <= retry.cap);
        }
    }
}
