//! `publish:github:pull-request`: commits the workspace (or `sourcePath`)
//! over the target branch into `targetPath`, pushes the branch in one `git
//! push` and opens (or updates) the pull request. On the local git host the
//! branch is pushed and there is no pull request object.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use http::Method;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{branch_lease, destination, file_url, local_repo_path, signature, BranchLease};
use crate::actions::workspace::{normalize_relative, resolve_safe_child_path};
use crate::actions::{ActionContext, ActionError, ActionExample, ActionHandler};
use crate::scm::git::{with_task_trailer, Git, Scratch, Signature};
use crate::scm::github::{seg, GithubClient};
use crate::scm::{ScmIntegrations, ScmTarget};

pub struct PublishGithubPullRequest {
    integrations: Arc<ScmIntegrations>,
}

impl PublishGithubPullRequest {
    pub fn new(integrations: Arc<ScmIntegrations>) -> PublishGithubPullRequest {
        PublishGithubPullRequest { integrations }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Input {
    /// Accepts the format `github.com?repo=reponame&owner=owner` where `reponame` is the repository name and `owner` is an organization or username
    pub repo_url: String,
    /// The name for the branch
    pub branch_name: String,
    /// Paths (from the repository's root) that the pull request's commit deletes
    pub files_to_delete: Option<Vec<String>>,
    /// The target branch name of the pull request
    pub target_branch_name: Option<String>,
    /// The name for the pull request
    pub title: String,
    /// The description of the pull request
    pub description: String,
    /// Create a draft pull request
    pub draft: Option<bool>,
    /// Subdirectory of working directory to copy changes from
    pub source_path: Option<String>,
    /// Subdirectory of repository to apply changes to
    pub target_path: Option<String>,
    /// The token to use for authorization to GitHub
    pub token: Option<String>,
    /// The users that will be added as reviewers to the pull request
    pub reviewers: Option<Vec<String>>,
    /// The users that will be assigned to the pull request
    pub assignees: Option<Vec<String>>,
    /// The teams that will be added as reviewers to the pull request
    pub team_reviewers: Option<Vec<String>>,
    /// The commit message for the pull request commit
    pub commit_message: Option<String>,
    /// Update pull request if already exists
    pub update: Option<bool>,
    /// Create pull request from a fork
    pub force_fork: Option<bool>,
    /// Sets the default author name for the commit. The default value is the authenticated user or `Scaffolder`
    pub git_author_name: Option<String>,
    /// Sets the default author email for the commit. The default value is the authenticated user or `scaffolder@backstage.io`
    pub git_author_email: Option<String>,
    /// Forces the author to be empty. This is useful when using a Github App, it permit the commit to be verified on Github
    pub force_empty_git_author: Option<bool>,
    /// Set whether to create pull request when there are no changes to commit. The default value is true. If set to false, remoteUrl is no longer a required output.
    pub create_when_empty: Option<bool>,
}

#[async_trait]
impl ActionHandler for PublishGithubPullRequest {
    type Input = Input;
    const ID: &'static str = "publish:github:pull-request";
    const DESCRIPTION: &'static str =
        "Creates a pull request on GitHub with the contents of the workspace (or a subdirectory of it).";
    const SUPPORTS_DRY_RUN: bool = true;

    fn output_schema(&self) -> Option<Value> {
        Some(json!({
            "required": [],
            "type": "object",
            "properties": {
                "targetBranchName": {"title": "Target branch name of the merge request", "type": "string"},
                "remoteUrl": {"type": "string", "title": "Pull Request URL", "description": "Link to the pull request in Github"},
                "pullRequestNumber": {"type": "number", "title": "Pull Request Number", "description": "The pull request number"},
            },
        }))
    }

    fn examples(&self) -> Vec<ActionExample> {
        vec![
            ActionExample {
                description: "Create a pull request",
                example: "steps:\n  - action: publish:github:pull-request\n    id: publish-github-pull-request\n    name: Create a pull request\n    input:\n      repoUrl: github.com?repo=repo&owner=owner\n      branchName: new-app\n      title: Create my new app\n      description: This PR is really good\n",
            },
            ActionExample {
                description: "Create a pull request with target branch name",
                example: "steps:\n  - action: publish:github:pull-request\n    id: publish-github-pull-request-target-branch\n    name: Create a pull request with target branch name\n    input:\n      repoUrl: github.com?repo=repo&owner=owner\n      branchName: new-app\n      title: Create my new app\n      description: This PR is really good\n      targetBranchName: test\n",
            },
        ]
    }

    async fn handle(&self, ctx: &mut ActionContext, input: Input) -> Result<(), ActionError> {
        let dest = destination(&self.integrations, &input.repo_url, |spec| {
            format!("No owner provided for host: {}, and repo {}", spec.host, spec.repo)
        })?;
        let source = resolve_safe_child_path(&ctx.workspace, input.source_path.as_deref().unwrap_or(""))?;
        let target_rel = normalize_relative(input.target_path.as_deref().unwrap_or(""))
            .map_err(|e| ActionError::InvalidInput(e.to_string()))?;
        if input.branch_name.trim().is_empty() {
            return Err(ActionError::InvalidInput("branchName must not be empty".into()));
        }

        if ctx.dry_run {
            ctx.logger.info("Performing dry run of creating pull request").await;
            ctx.output("targetBranchName", Value::String(input.branch_name.clone()));
            ctx.output("remoteUrl", Value::String(input.repo_url.clone()));
            ctx.output("pullRequestNumber", json!(43));
            ctx.logger.info("Dry run complete").await;
            return Ok(());
        }
        if input.force_fork == Some(true) {
            return Err(ActionError::InvalidInput(
                "forceFork is not supported by this scaffolder: the pull request branch is pushed to the repository itself".into(),
            ));
        }
        if !source.is_dir() {
            return Err(ActionError::InvalidInput(format!(
                "sourcePath '{}' is not a directory of the workspace",
                input.source_path.as_deref().unwrap_or("")
            )));
        }
        let author = signature(input.git_author_name.as_deref(), input.git_author_email.as_deref());
        let message = with_task_trailer(input.commit_message.as_deref().unwrap_or(&input.title), &ctx.task_id);
        let change = Change {
            source: &source,
            target: &target_rel.to_string_lossy(),
            branch: &input.branch_name,
            message: &message,
            author: &author,
            task_id: &ctx.task_id,
            replace_foreign: input.update == Some(true),
        };
        let repo = dest.spec.repo.clone();
        match dest.target {
            ScmTarget::Local(local) => {
                let path = local_repo_path(local, &dest.owner, &repo)?;
                if !path.exists() {
                    return Err(ActionError::Failed(format!(
                        "Repository {}/{repo} does not exist on the local git host ({})",
                        dest.owner,
                        path.display()
                    )));
                }
                let base = match input.target_branch_name.clone() {
                    Some(base) => base,
                    None => local_head_branch(&path)?,
                };
                let git = Git::new(ctx.cancel.clone());
                let remote = path.display().to_string();
                let Some(sha) = commit_and_push(&git, &remote, &base, &change, &input, ctx).await? else {
                    return Ok(());
                };
                let remote_url = file_url(&path)?;
                ctx.logger
                    .info(format!(
                        "The local git host has no pull requests: pushed {sha} to branch {} of {remote_url}; merge it into {base} with git",
                        input.branch_name
                    ))
                    .await;
                ctx.output("targetBranchName", Value::String(base));
                ctx.output("remoteUrl", Value::String(remote_url));
            }
            ScmTarget::Github(host) => {
                let owner = dest.owner.clone();
                let client = GithubClient::connect(host, input.token.as_deref(), ctx.cancel.clone()).await?;
                let info = client.get_repo(&owner, &repo).await?.ok_or_else(|| {
                    ActionError::Failed(format!("Repository {owner}/{repo} was not found on {}", host.host))
                })?;
                let base = input
                    .target_branch_name
                    .clone()
                    .or(info.default_branch.clone())
                    .unwrap_or_else(|| "main".into());
                let existing = client
                    .open_pull_for_branch(&owner, &repo, &owner, &input.branch_name)
                    .await?;
                let git = Git::new(ctx.cancel.clone()).with_token(client.git_token());
                let Some(_sha) = commit_and_push(&git, &info.clone_url, &base, &change, &input, ctx).await? else {
                    return Ok(());
                };
                let pr = match existing {
                    Some(pr) if input.update == Some(true) => {
                        ctx.logger.info(format!("Updating pull request #{}", pr.number)).await;
                        client
                            .update_pull(
                                &owner,
                                &repo,
                                pr.number,
                                &json!({"title": input.title, "body": input.description}),
                            )
                            .await?
                    }
                    Some(pr) => {
                        ctx.logger
                            .info(format!(
                                "Pull request #{} was opened by an earlier run of this task",
                                pr.number
                            ))
                            .await;
                        pr
                    }
                    None => {
                        let mut body = json!({
                            "title": input.title,
                            "body": input.description,
                            "head": input.branch_name,
                            "base": base,
                        });
                        if let Some(draft) = input.draft {
                            body["draft"] = json!(draft);
                        }
                        client.create_pull(&owner, &repo, &body).await?
                    }
                };
                let reviewers = input.reviewers.clone().unwrap_or_default();
                let mut teams = input.team_reviewers.clone().unwrap_or_default();
                teams.dedup();
                if !reviewers.is_empty() || !teams.is_empty() {
                    let path = format!(
                        "/repos/{}/{}/pulls/{}/requested_reviewers",
                        seg(&owner),
                        seg(&repo),
                        pr.number
                    );
                    let body = json!({"reviewers": reviewers, "team_reviewers": teams});
                    match client.request(Method::POST, &path, Some(&body)).await {
                        Ok(_) => {
                            ctx.logger
                                .info(format!(
                                    "Added users [{}] and teams [{}] as reviewers to Pull request {}",
                                    reviewers.join(", "),
                                    teams.join(", "),
                                    pr.number
                                ))
                                .await
                        }
                        Err(e) => {
                            ctx.logger
                                .warn(format!(
                                    "Failure when adding reviewers to Pull request {}: {e}",
                                    pr.number
                                ))
                                .await
                        }
                    }
                }
                if let Some(assignees) = input.assignees.as_ref().filter(|a| !a.is_empty()) {
                    // Assigning is a nicety, as in Backstage: a failure is logged.
                    match client.repo(&owner, &repo).add_assignees(pr.number, assignees).await {
                        Ok(()) => {
                            ctx.logger
                                .info(format!(
                                    "Assigned [{}] to Pull request {}",
                                    assignees.join(", "),
                                    pr.number
                                ))
                                .await
                        }
                        Err(e) => {
                            ctx.logger
                                .warn(format!(
                                    "Failure when adding assignees to Pull request {}: {e}",
                                    pr.number
                                ))
                                .await
                        }
                    }
                }
                let target = if pr.base_ref.is_empty() {
                    base
                } else {
                    pr.base_ref.clone()
                };
                ctx.output("targetBranchName", Value::String(target));
                ctx.output("remoteUrl", Value::String(pr.html_url.clone()));
                ctx.output("pullRequestNumber", json!(pr.number));
            }
        }
        Ok(())
    }
}

struct Change<'a> {
    source: &'a Path,
    target: &'a str,
    branch: &'a str,
    message: &'a str,
    author: &'a Signature,
    task_id: &'a str,
    replace_foreign: bool,
}

/// Builds the pull request's commit on top of `base` and pushes it as the
/// change's branch; `None` when there was nothing to commit and
/// `createWhenEmpty` is false.
async fn commit_and_push(
    git: &Git,
    remote: &str,
    base: &str,
    change: &Change<'_>,
    input: &Input,
    ctx: &ActionContext,
) -> Result<Option<String>, ActionError> {
    let branches = git.remote_branches(remote).await?;
    if !branches.iter().any(|(name, _)| name == base) {
        return Err(ActionError::Failed(format!(
            "The target branch {base} does not exist in the repository"
        )));
    }
    let scratch = git.scratch().await?;
    let lease = match branch_lease(
        &scratch,
        &branches,
        remote,
        change.branch,
        change.task_id,
        change.replace_foreign,
    )
    .await?
    {
        BranchLease::Absent => None,
        BranchLease::Replace(head) => Some(head),
        BranchLease::Foreign(_) => {
            return Err(ActionError::Failed(format!(
                "Branch {} already exists and was not pushed by this task; set `update: true` to replace it",
                change.branch
            )))
        }
    };
    scratch.checkout_remote(remote, base, change.branch).await?;
    copy_files(&scratch, change.source, change.target).await?;
    for relative in input.files_to_delete.iter().flatten() {
        delete_file(&scratch, relative)?;
    }
    let changed = scratch.stage_all(None).await?;
    if !changed && input.create_when_empty == Some(false) {
        ctx.logger
            .info("No changes to commit, pull request was not created")
            .await;
        return Ok(None);
    }
    let sha = scratch.commit(change.branch, change.message, change.author).await?;
    scratch.push(remote, change.branch, lease.as_deref()).await?;
    Ok(Some(sha))
}

/// Copies the publishable files of `source` (`.gitignore` honoured) into
/// the scratch work tree under `target`, keeping symbolic links and modes.
async fn copy_files(scratch: &Scratch, source: &Path, target: &str) -> Result<(), ActionError> {
    let root = resolve_safe_child_path(scratch.work_tree(), target)?;
    for relative in scratch.publishable_files(source).await? {
        let from = source.join(&relative);
        let to = resolve_safe_child_path(&root, &relative)?;
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(ActionError::io(format!("cannot create {}", parent.display())))?;
        }
        let meta = std::fs::symlink_metadata(&from).map_err(ActionError::io(format!("cannot read {relative}")))?;
        if let Ok(existing) = std::fs::symlink_metadata(&to) {
            if existing.is_dir() {
                std::fs::remove_dir_all(&to)
            } else {
                std::fs::remove_file(&to)
            }
            .map_err(ActionError::io(format!("cannot replace {relative}")))?;
        }
        if meta.file_type().is_symlink() {
            let link = std::fs::read_link(&from).map_err(ActionError::io(format!("cannot read {relative}")))?;
            std::os::unix::fs::symlink(&link, &to).map_err(ActionError::io(format!("cannot write {relative}")))?;
        } else {
            std::fs::copy(&from, &to).map_err(ActionError::io(format!("cannot copy {relative}")))?;
        }
    }
    Ok(())
}

/// Deletes `relative` (from the repository's root) from the scratch work
/// tree; a path the branch does not have is already deleted.
fn delete_file(scratch: &Scratch, relative: &str) -> Result<(), ActionError> {
    let path = resolve_safe_child_path(scratch.work_tree(), relative)?;
    let inside_git = path
        .strip_prefix(scratch.work_tree())
        .ok()
        .and_then(|rest| rest.components().next())
        .is_some_and(|first| first.as_os_str() == ".git");
    if path == scratch.work_tree() || inside_git {
        return Err(ActionError::InvalidInput(format!(
            "filesToDelete: '{relative}' is not a file of the repository"
        )));
    }
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&path),
        Ok(_) => std::fs::remove_file(&path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
    .map_err(ActionError::io(format!("cannot delete {relative}")))
}

/// The branch a bare repository's `HEAD` names.
fn local_head_branch(repo: &Path) -> Result<String, ActionError> {
    let head =
        std::fs::read_to_string(repo.join("HEAD")).map_err(ActionError::io("cannot read the repository HEAD"))?;
    head.trim()
        .strip_prefix("ref: refs/heads/")
        .map(str::to_owned)
        .ok_or_else(|| ActionError::Failed("the repository HEAD names no branch; set targetBranchName".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::workspace::testing::TestDirs;
    use crate::actions::Action;

    fn action() -> PublishGithubPullRequest {
        PublishGithubPullRequest::new(Arc::default())
    }

    #[test]
    fn the_input_has_backstages_properties_in_order() {
        let golden = crate::test_data::test_data_json("api-golden/actions-list-modules.json");
        let theirs = golden["response"]["body"]
            .as_array()
            .and_then(|l| l.iter().find(|a| a["id"] == "publish:github:pull-request"))
            .map(|a| a["schema"]["input"].clone())
            .unwrap();
        let ours = action().input_schema();
        let names = |s: &Value| s["properties"].as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(names(&ours), names(&theirs));
        assert_eq!(ours["properties"]["filesToDelete"]["type"], json!("array"));
    }

    #[tokio::test]
    async fn dry_run_checks_the_input_and_answers_like_backstage() {
        let t = TestDirs::new();
        let mut ctx = t.context();
        ctx.dry_run = true;
        let input =
            json!({"repoUrl": "github.com?owner=o&repo=r", "branchName": "b", "title": "t", "description": "d"});
        ctx.raw_input = input.clone();
        action().run(&mut ctx, input).await.unwrap();
        let outputs = ctx.into_outputs();
        assert_eq!(outputs["targetBranchName"], json!("b"));
        assert_eq!(outputs["remoteUrl"], json!("github.com?owner=o&repo=r"));
        assert_eq!(outputs["pullRequestNumber"], json!(43));
        assert!(t
            .log_lines()
            .contains(&"Performing dry run of creating pull request".to_string()));

        for (input, needle) in [
            (
                json!({"repoUrl": "github.com?repo=r", "branchName": "b", "title": "t", "description": "d"}),
                "missing owner",
            ),
            (
                json!({"repoUrl": "github.com?owner=o&repo=r", "branchName": "b", "title": "t", "description": "d", "targetPath": "../x"}),
                "outside its parent",
            ),
            (
                json!({"repoUrl": "github.com?owner=o&repo=r", "branchName": "b", "title": "t", "description": "d", "sourcePath": "/etc"}),
                "absolute",
            ),
        ] {
            let mut ctx = t.context();
            ctx.dry_run = true;
            let err = action().run(&mut ctx, input).await.unwrap_err();
            assert!(err.to_string().contains(needle), "{err}");
        }
    }
}
