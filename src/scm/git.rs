//! The `git` command line, run with a clean environment: no user or system
//! configuration, no terminal prompts, credentials only through an
//! environment-provided `http.extraHeader`, killed when its future is dropped
//! (task cancellation drops it).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use base64::Engine;
use tokio_util::sync::CancellationToken;

/// Appended to every commit the scaffolder makes, so a re-run of the same
/// task recognises (and adopts) what an earlier attempt pushed.
pub const TASK_TRAILER: &str = "Scaffolder-Task";

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run git: {0}")]
    Spawn(std::io::Error),
    #[error("git {command} failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("the git operation was cancelled")]
    Cancelled,
}

impl GitError {
    /// Whether a push failed because the remote branch moved (not a fast
    /// forward, a failed lease) or its ref was locked by a concurrent push:
    /// fetching the new tip and trying again can succeed.
    pub fn is_push_rejected(&self) -> bool {
        match self {
            GitError::Failed { command, stderr, .. } if command == "push" => {
                let stderr = stderr.to_ascii_lowercase();
                [
                    "rejected",
                    "non-fast-forward",
                    "fetch first",
                    "stale info",
                    "cannot lock ref",
                    "failed to lock",
                    "failed to update ref",
                ]
                .iter()
                .any(|needle| stderr.contains(needle))
            }
            _ => false,
        }
    }
}

/// Who a commit is from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub name: String,
    pub email: String,
}

/// A `git` runner bound to one task's cancellation token and credentials.
#[derive(Clone)]
pub struct Git {
    env: Vec<(String, String)>,
    cancel: CancellationToken,
}

impl Git {
    pub fn new(cancel: CancellationToken) -> Git {
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
        let env = [
            ("PATH", path.as_str()),
            ("LC_ALL", "C"),
            ("GIT_TERMINAL_PROMPT", "0"),
            ("GIT_CONFIG_NOSYSTEM", "1"),
            ("GIT_CONFIG_GLOBAL", "/dev/null"),
            ("GIT_SSH_COMMAND", "ssh -o BatchMode=yes"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Git { env, cancel }
    }

    /// Sends `token` as HTTP basic credentials (`x-access-token`, as GitHub
    /// expects) on every HTTP(S) request. The header travels in the
    /// environment, never on the command line or in a remote URL.
    pub fn with_token(mut self, token: Option<&str>) -> Git {
        if let Some(token) = token.filter(|t| !t.is_empty()) {
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
            self.env.push(("GIT_CONFIG_COUNT".into(), "1".into()));
            self.env.push(("GIT_CONFIG_KEY_0".into(), "http.extraHeader".into()));
            self.env
                .push(("GIT_CONFIG_VALUE_0".into(), format!("Authorization: Basic {basic}")));
        }
        self
    }

    /// Runs `git <args>` in `cwd` and returns its exit code and stdout; a
    /// non-zero code is an error unless listed in `allowed_codes`.
    pub(super) async fn exec<I, S>(
        &self,
        cwd: &Path,
        args: I,
        extra_env: &[(&str, &str)],
        allowed_codes: &[i32],
    ) -> Result<(i32, String), GitError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let (code, stdout) = self.exec_bytes(cwd, args, extra_env, allowed_codes).await?;
        Ok((code, String::from_utf8_lossy(&stdout).into_owned()))
    }

    /// [`Git::exec`] with stdout as bytes (archives, blobs).
    async fn exec_bytes<I, S>(
        &self,
        cwd: &Path,
        args: I,
        extra_env: &[(&str, &str)],
        allowed_codes: &[i32],
    ) -> Result<(i32, Vec<u8>), GitError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let mut cmd = tokio::process::Command::new("git");
        cmd.args(&args)
            .current_dir(cwd)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(extra_env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = cmd.spawn().map_err(GitError::Spawn)?;
        let output = tokio::select! {
            biased;
            _ = self.cancel.cancelled() => return Err(GitError::Cancelled),
            out = child.wait_with_output() => out.map_err(GitError::Spawn)?,
        };
        let code = output.status.code().unwrap_or(-1);
        if output.status.success() || allowed_codes.contains(&code) {
            return Ok((code, output.stdout));
        }
        let command = subcommand(&args);
        Err(GitError::Failed {
            command,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }

    async fn run<I, S>(&self, cwd: &Path, args: I) -> Result<String, GitError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.exec(cwd, args, &[], &[]).await.map(|(_, out)| out)
    }

    /// Runs `git <args>` in `cwd` and returns its stdout as bytes.
    pub async fn output<I, S>(&self, cwd: &Path, args: I) -> Result<Vec<u8>, GitError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.exec_bytes(cwd, args, &[], &[]).await.map(|(_, out)| out)
    }

    /// Creates a bare repository whose `HEAD` names `branch` (idempotent).
    pub async fn init_bare(&self, path: &Path, branch: &str) -> Result<(), GitError> {
        std::fs::create_dir_all(path).map_err(|source| GitError::Io {
            context: format!("cannot create {}", path.display()),
            source,
        })?;
        self.run(path, ["init", "--quiet", "--bare"]).await?;
        self.run(path, ["symbolic-ref", "HEAD", &format!("refs/heads/{branch}")])
            .await?;
        Ok(())
    }

    /// The branches of `remote`: `(name, commit)`.
    pub async fn remote_branches(&self, remote: &str) -> Result<Vec<(String, String)>, GitError> {
        let cwd = std::env::temp_dir();
        let out = self.run(&cwd, ["ls-remote", "--heads", "--", remote]).await?;
        Ok(out
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .filter_map(|(sha, name)| Some((name.strip_prefix("refs/heads/")?.to_owned(), sha.to_owned())))
            .collect())
    }

    /// An empty repository in a new temporary directory (`prefix…/work`):
    /// the directory, removed when dropped, and the work tree.
    pub(crate) async fn init_temporary(&self, prefix: &str) -> Result<(tempfile::TempDir, PathBuf), GitError> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .map_err(|source| GitError::Io {
                context: "cannot create a temporary directory".into(),
                source,
            })?;
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).map_err(|source| GitError::Io {
            context: "cannot create a temporary directory".into(),
            source,
        })?;
        self.run(&work, ["init", "--quiet"]).await?;
        Ok((dir, work))
    }

    /// A scratch repository in a temporary directory.
    pub async fn scratch(&self) -> Result<Scratch, GitError> {
        let (dir, work) = self.init_temporary("scaffolder-git-").await?;
        Ok(Scratch {
            git: self.clone(),
            _dir: dir,
            work,
        })
    }
}

/// A throw-away repository (`work/.git`) used to build one commit.
pub struct Scratch {
    git: Git,
    _dir: tempfile::TempDir,
    work: PathBuf,
}

impl Scratch {
    fn git_dir_arg(&self) -> String {
        format!("--git-dir={}", self.work.join(".git").display())
    }

    /// The scratch repository's own work tree.
    pub fn work_tree(&self) -> &Path {
        &self.work
    }

    /// Files of `dir` that `git add` would take (honouring `.gitignore`),
    /// relative, `/`-separated.
    pub async fn publishable_files(&self, dir: &Path) -> Result<Vec<String>, GitError> {
        let probe = self.git.scratch().await?;
        let out = self
            .git
            .run(
                dir,
                [
                    probe.git_dir_arg(),
                    format!("--work-tree={}", dir.display()),
                    "ls-files".into(),
                    "-z".into(),
                    "--others".into(),
                    "--exclude-standard".into(),
                ],
            )
            .await?;
        Ok(out.split('\0').filter(|p| !p.is_empty()).map(str::to_owned).collect())
    }

    /// Fetches `branch` of `remote` and checks it out as `new_branch`.
    pub async fn checkout_remote(&self, remote: &str, branch: &str, new_branch: &str) -> Result<(), GitError> {
        self.git
            .run(
                &self.work,
                [
                    "fetch",
                    "--quiet",
                    "--depth=1",
                    "--",
                    remote,
                    &format!("refs/heads/{branch}"),
                ],
            )
            .await?;
        self.git
            .run(&self.work, ["checkout", "--quiet", "-B", new_branch, "FETCH_HEAD"])
            .await?;
        Ok(())
    }

    /// Stages everything of `tree` (the scratch work tree when `None`);
    /// returns whether anything differs from `HEAD` (or anything at all,
    /// before the first commit).
    pub async fn stage_all(&self, tree: Option<&Path>) -> Result<bool, GitError> {
        let tree = tree.unwrap_or(&self.work);
        let work_tree = format!("--work-tree={}", tree.display());
        self.git
            .run(tree, [self.git_dir_arg(), work_tree.clone(), "add".into(), "-A".into()])
            .await?;
        let has_head = self
            .git
            .exec(&self.work, ["rev-parse", "--verify", "--quiet", "HEAD"], &[], &[1])
            .await?
            .0
            == 0;
        let args: Vec<String> = if has_head {
            vec![self.git_dir_arg(), "diff".into(), "--cached".into(), "--quiet".into()]
        } else {
            vec![self.git_dir_arg(), "ls-files".into(), "--cached".into()]
        };
        let (code, out) = self.git.exec(&self.work, args, &[], &[1]).await?;
        Ok(if has_head { code == 1 } else { !out.trim().is_empty() })
    }

    /// Commits the index (`--allow-empty`) on `branch`, returning the hash.
    pub async fn commit(&self, branch: &str, message: &str, author: &Signature) -> Result<String, GitError> {
        let env = [
            ("GIT_AUTHOR_NAME", author.name.as_str()),
            ("GIT_AUTHOR_EMAIL", author.email.as_str()),
            ("GIT_COMMITTER_NAME", author.name.as_str()),
            ("GIT_COMMITTER_EMAIL", author.email.as_str()),
        ];
        self.git
            .run(
                &self.work,
                [
                    self.git_dir_arg(),
                    "symbolic-ref".into(),
                    "HEAD".into(),
                    format!("refs/heads/{branch}"),
                ],
            )
            .await?;
        self.git
            .exec(
                &self.work,
                [
                    self.git_dir_arg(),
                    "-c".into(),
                    "commit.gpgsign=false".into(),
                    "commit".into(),
                    "--quiet".into(),
                    "--no-verify".into(),
                    "--allow-empty".into(),
                    "--cleanup=verbatim".into(),
                    "-m".into(),
                    message.to_owned(),
                ],
                &env,
                &[],
            )
            .await?;
        let sha = self
            .git
            .run(&self.work, [self.git_dir_arg(), "rev-parse".into(), "HEAD".into()])
            .await?;
        Ok(sha.trim().to_owned())
    }

    /// Pushes `HEAD` to `branch` of `remote`. `replace` names the commit the
    /// branch must currently point at to be overwritten (a lease), `None`
    /// pushes only when the branch is new or fast-forwards.
    pub async fn push(&self, remote: &str, branch: &str, replace: Option<&str>) -> Result<(), GitError> {
        let mut args = vec![self.git_dir_arg(), "push".into(), "--quiet".into()];
        if let Some(expected) = replace {
            args.push(format!("--force-with-lease=refs/heads/{branch}:{expected}"));
        }
        args.push("--".into());
        args.push(remote.to_owned());
        args.push(format!("HEAD:refs/heads/{branch}"));
        self.git.run(&self.work, args).await?;
        Ok(())
    }

    /// Fetches `git_ref` (a branch `refs/heads/…` or a commit) of `remote`,
    /// `depth` commits deep (`None`: the whole history, unshallowing an
    /// earlier shallow fetch); returns the fetched commit.
    pub async fn fetch(&self, remote: &str, git_ref: &str, depth: Option<u32>) -> Result<String, GitError> {
        let mut args = vec!["fetch".to_owned(), "--quiet".to_owned()];
        match depth {
            Some(depth) => args.push(format!("--depth={depth}")),
            None => {
                let shallow = self
                    .git
                    .run(&self.work, ["rev-parse", "--is-shallow-repository"])
                    .await?;
                if shallow.trim() == "true" {
                    args.push("--unshallow".into());
                }
            }
        }
        args.extend(["--".to_owned(), remote.to_owned(), git_ref.to_owned()]);
        self.git.run(&self.work, args).await?;
        let sha = self.git.run(&self.work, ["rev-parse", "FETCH_HEAD"]).await?;
        Ok(sha.trim().to_owned())
    }

    /// The object `rev` names in the scratch repository (e.g. `HEAD^{tree}`),
    /// `None` when it names nothing.
    pub async fn rev_parse(&self, rev: &str) -> Result<Option<String>, GitError> {
        let (code, out) = self
            .git
            .exec(
                &self.work,
                ["rev-parse", "--verify", "--quiet", "--end-of-options", rev],
                &[],
                &[1],
            )
            .await?;
        Ok((code == 0).then(|| out.trim().to_owned()))
    }

    /// The contents of `path` at `rev` (a fetched commit), `None` when the
    /// file does not exist there.
    pub async fn show_file(&self, rev: &str, path: &str) -> Result<Option<String>, GitError> {
        let (code, out) = self
            .git
            .exec(&self.work, ["cat-file", "-p", &format!("{rev}:{path}")], &[], &[128])
            .await?;
        Ok((code == 0).then_some(out))
    }

    /// The tree of the index (what a commit made now would hold).
    pub async fn write_index_tree(&self) -> Result<String, GitError> {
        let out = self
            .git
            .run(&self.work, [self.git_dir_arg(), "write-tree".into()])
            .await?;
        Ok(out.trim().to_owned())
    }

    /// The newest commit reachable from `rev` that changed something under
    /// `path` (the history must have been fetched, see [`Scratch::fetch`]).
    pub async fn last_commit_touching(&self, rev: &str, path: &str) -> Result<Option<String>, GitError> {
        let out = self
            .git
            .run(&self.work, ["log", "-1", "--format=%H", rev, "--", path])
            .await?;
        Ok(Some(out.trim().to_owned()).filter(|s| !s.is_empty()))
    }

    /// The full message of a commit of `remote` (fetched shallowly).
    pub async fn commit_message(&self, remote: &str, commit: &str) -> Result<String, GitError> {
        self.git
            .run(&self.work, ["fetch", "--quiet", "--depth=1", "--", remote, commit])
            .await?;
        self.git.run(&self.work, ["log", "-1", "--format=%B", commit]).await
    }
}

/// The git subcommand in `args` (skipping global options and `-c` values).
fn subcommand(args: &[std::ffi::OsString]) -> String {
    let mut skip_next = false;
    for arg in args {
        let arg = arg.to_string_lossy();
        if skip_next {
            skip_next = false;
        } else if arg == "-c" {
            skip_next = true;
        } else if !arg.starts_with('-') {
            return arg.into_owned();
        }
    }
    String::new()
}

/// `message` with the task trailer appended.
pub fn with_task_trailer(message: &str, task_id: &str) -> String {
    format!("{}\n\n{TASK_TRAILER}: {task_id}\n", message.trim_end())
}

/// Whether a commit message carries the trailer of `task_id`.
pub fn has_task_trailer(message: &str, task_id: &str) -> bool {
    message
        .lines()
        .filter_map(|l| l.strip_prefix(TASK_TRAILER).and_then(|r| r.strip_prefix(':')))
        .any(|v| v.trim() == task_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig() -> Signature {
        Signature {
            name: "Scaffolder".into(),
            email: "scaffolder@backstage.io".into(),
        }
    }

    #[test]
    fn trailers_round_trip() {
        let msg = with_task_trailer("initial commit\n", "t-1");
        assert_eq!(msg, "initial commit\n\nScaffolder-Task: t-1\n");
        assert!(has_task_trailer(&msg, "t-1"));
        assert!(!has_task_trailer(&msg, "t-2"));
        assert!(!has_task_trailer("initial commit", "t-1"));
    }

    #[tokio::test]
    async fn commits_a_directory_and_pushes_it_to_a_bare_repository() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("a.txt"), "a").unwrap();
        std::fs::write(src.join("sub/b.txt"), "b").unwrap();
        std::fs::write(src.join(".gitignore"), "ignored.log\n").unwrap();
        std::fs::write(src.join("ignored.log"), "x").unwrap();
        let bare = dir.path().join("o/r.git");
        let git = Git::new(CancellationToken::new());
        git.init_bare(&bare, "main").await.unwrap();
        let remote = bare.display().to_string();
        assert!(git.remote_branches(&remote).await.unwrap().is_empty());

        let scratch = git.scratch().await.unwrap();
        let files = scratch.publishable_files(&src).await.unwrap();
        assert_eq!(files.len(), 3, "{files:?}");
        assert!(scratch.stage_all(Some(&src)).await.unwrap());
        let sha = scratch
            .commit("main", &with_task_trailer("initial commit", "t"), &sig())
            .await
            .unwrap();
        scratch.push(&remote, "main", None).await.unwrap();
        assert_eq!(
            git.remote_branches(&remote).await.unwrap(),
            vec![("main".into(), sha.clone())]
        );
        let msg = git
            .scratch()
            .await
            .unwrap()
            .commit_message(&remote, &sha)
            .await
            .unwrap();
        assert!(has_task_trailer(&msg, "t"), "{msg}");
        assert!(!src.join(".git").exists(), "the workspace stays free of .git");

        // A second, unrelated commit is refused without a lease...
        let other = git.scratch().await.unwrap();
        other.stage_all(Some(&src)).await.unwrap();
        other.commit("main", "other", &sig()).await.unwrap();
        assert!(other.push(&remote, "main", None).await.is_err());
        // ...and accepted with the right one.
        other.push(&remote, "main", Some(&sha)).await.unwrap();
    }

    #[tokio::test]
    async fn failures_name_the_command_and_cancellation_stops_git() {
        let git = Git::new(CancellationToken::new());
        let err = git.remote_branches("/definitely/not/a/repo").await.unwrap_err();
        assert!(err.to_string().contains("ls-remote"), "{err}");
        let cancel = CancellationToken::new();
        cancel.cancel();
        let err = Git::new(cancel).remote_branches("/x").await.unwrap_err();
        assert!(matches!(err, GitError::Cancelled));
    }
}
