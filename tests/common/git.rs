//! `git` for the tests: no user or system configuration, a fixed identity
//! for the commits tests make, and a panic with git's own message when a
//! command fails.

use std::path::{Path, PathBuf};
use std::process::Command;

/// No user or system configuration, and a fixed identity for commits.
fn configured(mut cmd: Command) -> Command {
    cmd.env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "scaffolder-test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "scaffolder-test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com");
    cmd
}

fn run(mut cmd: Command, args: &[&str]) -> String {
    let out = cmd.args(args).output().expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `git ARGS` in `dir` (a work tree, or where a clone goes).
pub fn git(dir: &Path, args: &[&str]) -> String {
    let mut cmd = configured(Command::new("git"));
    cmd.current_dir(dir);
    run(cmd, args)
}

/// `git --git-dir=REPO ARGS`, for a bare repository.
pub fn git_bare(repo: &Path, args: &[&str]) -> String {
    run(git_bare_command(repo), args)
}

/// `git --git-dir=REPO`, configured, for a caller that adds arguments and
/// pipes (`hash-object --stdin`, `mktree`).
pub fn git_bare_command(repo: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg(format!("--git-dir={}", repo.display()));
    configured(cmd)
}

/// Whether `git --git-dir=REPO ARGS` succeeds.
pub fn git_bare_ok(repo: &Path, args: &[&str]) -> bool {
    git_bare_command(repo)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Clones a bare repository into `into`, as `git clone <path>` names it.
pub fn clone(bare: &Path, into: &Path) -> PathBuf {
    assert!(bare.is_dir(), "{} does not exist", bare.display());
    let name = bare.file_stem().expect("repository name");
    let target = into.join(name);
    git(
        into,
        &["clone", "-q", &bare.to_string_lossy(), &target.to_string_lossy()],
    );
    target
}
