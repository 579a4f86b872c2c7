//! The three-way merge of a template change into a generated repository,
//! done by git itself in a throw-away repository: a commit of the old
//! version's render (the base), a commit of the new version's render on top
//! of it (the template's side), and a commit of the repository's current
//! tree on top of the base (the repository's side). `git merge` of the two
//! sides gives the proposed tree: added, deleted and renamed files are
//! handled as git handles them, and conflicting hunks keep their markers.

use std::path::{Path, PathBuf};

use super::git::{Git, GitError};

const MERGER_NAME: &str = "Scaffolder";
const MERGER_EMAIL: &str = "scaffolder@backstage.io";

/// A change to one file between the repository and the proposed tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// `A`dded, `M`odified or `D`eleted.
    pub status: char,
    pub path: String,
}

/// What merging a template change gives.
#[derive(Debug)]
pub struct Merged {
    /// The merged tree equals the repository's: nothing to propose.
    pub up_to_date: bool,
    /// The update branch already holds exactly this tree (an earlier run
    /// proposed the same change).
    pub already_proposed: bool,
    pub changes: Vec<FileChange>,
    /// Files left with conflict markers.
    pub conflicts: Vec<String>,
    /// `git diff` from the repository's head to the proposed tree.
    pub diff: String,
    /// The proposed tree, checked out (no `.git`); removed with `self`.
    pub tree_dir: PathBuf,
    _dir: tempfile::TempDir,
}

/// A repository's default branch, fetched into a throw-away repository.
pub struct UpdateRepo {
    git: Git,
    dir: tempfile::TempDir,
    work: PathBuf,
    remote: String,
    /// The default branch's name.
    pub branch: String,
    /// Its head commit.
    pub head: String,
}

impl UpdateRepo {
    /// Fetches the default branch (the remote's `HEAD`) of `remote`.
    pub async fn fetch(git: &Git, remote: &str) -> Result<UpdateRepo, GitError> {
        let (dir, work) = git.init_temporary("scaffolder-update-").await?;
        let (_, symref) = git
            .exec(&work, ["ls-remote", "--symref", "--", remote, "HEAD"], &[], &[])
            .await?;
        let branch = symref
            .lines()
            .find_map(|l| l.strip_prefix("ref: refs/heads/"))
            .and_then(|l| l.split('\t').next())
            .map(str::to_owned)
            .ok_or_else(|| GitError::Failed {
                command: "ls-remote".into(),
                status: "no HEAD".into(),
                stderr: format!("{remote} has no default branch (an empty repository?)"),
            })?;
        git.exec(
            &work,
            [
                "fetch",
                "--quiet",
                "--depth=1",
                "--",
                remote,
                &format!("refs/heads/{branch}"),
            ],
            &[],
            &[],
        )
        .await?;
        let (_, head) = git.exec(&work, ["rev-parse", "FETCH_HEAD"], &[], &[]).await?;
        Ok(UpdateRepo {
            git: git.clone(),
            dir,
            work,
            remote: remote.to_owned(),
            branch,
            head: head.trim().to_owned(),
        })
    }

    /// A file of the default branch, `None` when it has none.
    pub async fn read(&self, path: &str) -> Result<Option<String>, GitError> {
        let (code, out) = self
            .git
            .exec(
                &self.work,
                ["cat-file", "-p", &format!("{}:{path}", self.head)],
                &[],
                &[128],
            )
            .await?;
        Ok((code == 0).then_some(out))
    }

    async fn git(&self, args: &[&str], env: &[(&str, &str)], allowed: &[i32]) -> Result<(i32, String), GitError> {
        self.git.exec(&self.work, args, env, allowed).await
    }

    /// The tree of everything `git add` takes in `dir` (its `.gitignore`
    /// honoured), through an index of its own.
    async fn tree_of(&self, dir: &Path, name: &str) -> Result<String, GitError> {
        let index = self.dir.path().join(format!("{name}.index"));
        let index = index.to_string_lossy().into_owned();
        let git_dir = format!("--git-dir={}", self.work.join(".git").display());
        let work_tree = format!("--work-tree={}", dir.display());
        let env = [("GIT_INDEX_FILE", index.as_str())];
        self.git
            .exec(dir, [git_dir.as_str(), work_tree.as_str(), "add", "-A"], &env, &[])
            .await?;
        let (_, tree) = self.git.exec(dir, [git_dir.as_str(), "write-tree"], &env, &[]).await?;
        Ok(tree.trim().to_owned())
    }

    async fn commit_tree(&self, tree: &str, parent: Option<&str>, message: &str) -> Result<String, GitError> {
        let mut args = vec!["commit-tree", tree, "-m", message];
        if let Some(parent) = parent {
            args.extend(["-p", parent]);
        }
        let (_, sha) = self.git(&args, &identity(), &[]).await?;
        Ok(sha.trim().to_owned())
    }

    /// Merges the change from `base` (the recorded version's render) to
    /// `new` (the new version's render) into the default branch, and
    /// compares the result with `proposal_branch` if the remote has it.
    pub async fn merge(self, base: &Path, new: &Path, proposal_branch: &str) -> Result<Merged, GitError> {
        let base_tree = self.tree_of(base, "base").await?;
        let new_tree = self.tree_of(new, "new").await?;
        let base_commit = self.commit_tree(&base_tree, None, "template: recorded version").await?;
        let new_commit = self
            .commit_tree(&new_tree, Some(&base_commit), "template: new version")
            .await?;
        let head_tree = format!("{}^{{tree}}", self.head);
        let ours = self
            .commit_tree(&head_tree, Some(&base_commit), "the repository")
            .await?;
        self.git(&["branch", "-f", "template", &new_commit], &[], &[]).await?;
        self.git(&["checkout", "--quiet", "-f", "-B", "repository", &ours], &[], &[])
            .await?;
        self.git(
            &[
                "merge",
                "--quiet",
                "--no-edit",
                "--no-ff",
                "-m",
                "template update",
                "template",
            ],
            &identity(),
            &[1],
        )
        .await?;
        let (_, unmerged) = self
            .git(&["diff", "--name-only", "-z", "--diff-filter=U"], &[], &[])
            .await?;
        let mut conflicts: Vec<String> = unmerged
            .split('\0')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
        conflicts.dedup();
        self.git(&["add", "-A"], &[], &[]).await?;
        let (_, merged_tree) = self.git(&["write-tree"], &[], &[]).await?;
        let merged_tree = merged_tree.trim().to_owned();
        let (_, head_tree) = self.git(&["rev-parse", &head_tree], &[], &[]).await?;
        let up_to_date = merged_tree == head_tree.trim();

        let (_, status) = self
            .git(
                &["diff", "--no-renames", "--name-status", "-z", &self.head, &merged_tree],
                &[],
                &[],
            )
            .await?;
        let mut changes = Vec::new();
        let mut fields = status.split('\0').filter(|f| !f.is_empty());
        while let (Some(kind), Some(path)) = (fields.next(), fields.next()) {
            changes.push(FileChange {
                status: kind.chars().next().unwrap_or('M'),
                path: path.to_owned(),
            });
        }
        let (_, diff) = self
            .git(&["diff", "--no-renames", &self.head, &merged_tree], &[], &[])
            .await?;

        let proposed = self.proposed_tree(proposal_branch).await?;
        let already_proposed = !up_to_date && proposed.as_deref() == Some(merged_tree.as_str());

        let tree_dir = self.dir.path().join("proposed");
        std::fs::create_dir_all(&tree_dir).map_err(|source| GitError::Io {
            context: format!("cannot create {}", tree_dir.display()),
            source,
        })?;
        let out = format!("--work-tree={}", tree_dir.display());
        self.git(&[out.as_str(), "checkout", &merged_tree, "--", "."], &[], &[])
            .await?;
        Ok(Merged {
            up_to_date,
            already_proposed,
            changes,
            conflicts,
            diff,
            tree_dir,
            _dir: self.dir,
        })
    }

    /// The tree at the head of `branch` of the remote, if it has the branch.
    async fn proposed_tree(&self, branch: &str) -> Result<Option<String>, GitError> {
        let (_, heads) = self
            .git(
                &[
                    "ls-remote",
                    "--heads",
                    "--",
                    &self.remote,
                    &format!("refs/heads/{branch}"),
                ],
                &[],
                &[],
            )
            .await?;
        if heads.trim().is_empty() {
            return Ok(None);
        }
        self.git(
            &[
                "fetch",
                "--quiet",
                "--depth=1",
                "--",
                &self.remote,
                &format!("refs/heads/{branch}"),
            ],
            &[],
            &[],
        )
        .await?;
        let (_, tree) = self.git(&["rev-parse", "FETCH_HEAD^{tree}"], &[], &[]).await?;
        Ok(Some(tree.trim().to_owned()))
    }
}

fn identity() -> [(&'static str, &'static str); 4] {
    [
        ("GIT_AUTHOR_NAME", MERGER_NAME),
        ("GIT_AUTHOR_EMAIL", MERGER_EMAIL),
        ("GIT_COMMITTER_NAME", MERGER_NAME),
        ("GIT_COMMITTER_EMAIL", MERGER_EMAIL),
    ]
}
