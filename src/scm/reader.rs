//! Reads files and directories at git URLs — GitHub's
//! `https://<host>/<owner>/<repo>/tree|blob/<ref>/<path>` through the REST
//! API of the configured integration, and the same URL shape on the local git
//! host through `git archive` — into temporary directories. GitHub trees are
//! cached by commit and blobs by their hash under the cache directory, so a
//! template fetched twice at the same commit costs one request (the ref).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use url::Url;

use super::git::{Git, GitError};
use super::github::{seg, GithubClient};
use super::integrations::{GithubHost, LocalGitHost, ScmIntegrations, ScmTarget};

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Failed(String),
    #[error("the read was cancelled")]
    Cancelled,
}

/// A git URL taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitUrl {
    pub host: String,
    pub owner: String,
    pub repo: String,
    pub git_ref: String,
    /// Path inside the repository, `/`-separated, without leading or trailing `/` (empty: the root).
    pub path: String,
}

/// `https://<host>/<owner>/<repo>/(tree|blob)/<ref>[/<path>]`.
pub fn parse_git_url(url: &Url) -> Result<GitUrl, ReadError> {
    let unsupported = || {
        ReadError::Unsupported(format!(
            "{url} is not a git URL of the form https://<host>/<owner>/<repo>/tree/<ref>/<path>"
        ))
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Err(unsupported());
    }
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        _ => return Err(unsupported()),
    };
    let segments: Vec<String> = url
        .path_segments()
        .ok_or_else(unsupported)?
        .filter(|s| !s.is_empty())
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    if segments.len() < 4 || !matches!(segments[2].as_str(), "tree" | "blob") {
        return Err(unsupported());
    }
    if segments
        .iter()
        .any(|s| s == "." || s == ".." || s.contains(['/', '\\', '\0']))
    {
        return Err(ReadError::Unsupported(format!("{url} has an unsafe path")));
    }
    Ok(GitUrl {
        host,
        owner: segments[0].clone(),
        repo: segments[1].trim_end_matches(".git").to_owned(),
        git_ref: segments[3].clone(),
        path: segments[4..].join("/"),
    })
}

/// A fetched file or directory, living as long as this value.
pub struct Fetched {
    _dir: tempfile::TempDir,
    /// The fetched directory, or the fetched file inside a temporary directory.
    pub path: PathBuf,
    /// The commit it was read at.
    pub commit: String,
}

impl std::fmt::Debug for Fetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fetched({} at {})", self.path.display(), self.commit)
    }
}

pub struct UrlReader {
    integrations: Arc<ScmIntegrations>,
    cache_dir: PathBuf,
}

impl UrlReader {
    pub fn new(integrations: Arc<ScmIntegrations>, cache_dir: PathBuf) -> UrlReader {
        UrlReader {
            integrations,
            cache_dir,
        }
    }

    /// Whether this reader knows the URL's host.
    pub fn knows(&self, url: &Url) -> bool {
        parse_git_url(url).is_ok_and(|g| self.integrations.target(&g.host).is_some())
    }

    /// Reads the file or directory at `url` into a new temporary directory.
    pub async fn read_tree(
        &self,
        url: &Url,
        token: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<Fetched, ReadError> {
        let git_url = parse_git_url(url)?;
        let dir = tempfile::Builder::new()
            .prefix("scaffolder-fetch-")
            .tempdir()
            .map_err(|e| ReadError::Failed(format!("cannot create a temporary directory: {e}")))?;
        let (path, commit) = match self.integrations.target(&git_url.host) {
            Some(ScmTarget::Github(host)) => self.read_github(host, &git_url, token, dir.path(), cancel).await?,
            Some(ScmTarget::Local(host)) => read_local(host, &git_url, dir.path(), cancel).await?,
            None => {
                return Err(ReadError::Unsupported(format!(
                    "No integration for host {}: cannot read {url}. Configure it under integrations",
                    git_url.host
                )))
            }
        };
        Ok(Fetched {
            _dir: dir,
            path,
            commit,
        })
    }

    /// The text of the file at `url`.
    pub async fn read_file(
        &self,
        url: &Url,
        token: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<(String, String), ReadError> {
        let fetched = self.read_tree(url, token, cancel).await?;
        if !fetched.path.is_file() {
            return Err(ReadError::Failed(format!("{url} is not a file")));
        }
        let text =
            std::fs::read_to_string(&fetched.path).map_err(|e| ReadError::Failed(format!("cannot read {url}: {e}")))?;
        Ok((text, fetched.commit))
    }

    async fn read_github(
        &self,
        host: &GithubHost,
        git_url: &GitUrl,
        token: Option<&str>,
        dest: &Path,
        cancel: &CancellationToken,
    ) -> Result<(PathBuf, String), ReadError> {
        let failed = |e: super::github::GithubError| match e {
            super::github::GithubError::Cancelled => ReadError::Cancelled,
            e if e.status() == Some(404) => ReadError::NotFound(format!(
                "{}/{} at {} not found on {}: {e}",
                git_url.owner, git_url.repo, git_url.git_ref, git_url.host
            )),
            e => ReadError::Failed(e.to_string()),
        };
        let client = GithubClient::connect(host, token, cancel.clone())
            .await
            .map_err(failed)?;
        let repo_path = format!("/repos/{}/{}", seg(&git_url.owner), seg(&git_url.repo));
        let commit = if is_commit_hash(&git_url.git_ref) {
            git_url.git_ref.to_ascii_lowercase()
        } else {
            let answer: CommitAnswer = client
                .get_as(&format!("{repo_path}/commits/{}", seg(&git_url.git_ref)))
                .await
                .map_err(failed)?;
            Some(answer.sha)
                .filter(|s| is_commit_hash(s))
                .ok_or_else(|| ReadError::Failed(format!("GitHub gave no commit for {}", git_url.git_ref)))?
        };
        let repo_cache = self
            .cache_dir
            .join("github")
            .join(safe_name(&git_url.host))
            .join(safe_name(&git_url.owner))
            .join(safe_name(&git_url.repo));
        let tree_file = repo_cache.join("trees").join(format!("{commit}.json"));
        let tree: TreeAnswer = match std::fs::read(&tree_file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
        {
            Some(tree) => tree,
            None => {
                let tree: TreeAnswer = client
                    .get_as(&format!("{repo_path}/git/trees/{commit}?recursive=1"))
                    .await
                    .map_err(failed)?;
                if tree.truncated {
                    return Err(ReadError::Failed(format!(
                        "the tree of {}/{} at {commit} is too large for GitHub's tree API",
                        git_url.owner, git_url.repo
                    )));
                }
                if let Ok(text) = serde_json::to_vec(&tree) {
                    write_cache(&tree_file, &text);
                }
                tree
            }
        };
        let prefix = if git_url.path.is_empty() {
            String::new()
        } else {
            format!("{}/", git_url.path)
        };
        let mut wanted: Vec<(String, String, String)> = Vec::new();
        let mut is_file = false;
        for entry in &tree.tree {
            if entry.kind != "blob" {
                continue;
            }
            let path = entry.path.as_str();
            let relative = if path == git_url.path {
                is_file = true;
                path.rsplit('/').next().unwrap_or(path)
            } else if let Some(rest) = path.strip_prefix(&prefix) {
                rest
            } else {
                continue;
            };
            wanted.push((relative.to_owned(), entry.sha.clone(), entry.mode.clone()));
        }
        if wanted.is_empty() {
            return Err(ReadError::NotFound(format!(
                "{} not found in {}/{} at {}",
                if git_url.path.is_empty() { "/" } else { &git_url.path },
                git_url.owner,
                git_url.repo,
                git_url.git_ref
            )));
        }
        if is_file {
            wanted.truncate(1);
        }
        let blob_cache = repo_cache.join("blobs");
        for (relative, sha, mode) in &wanted {
            if !is_commit_hash(sha) || relative.split('/').any(|s| s.is_empty() || s == "..") {
                continue;
            }
            let cached = blob_cache.join(sha);
            let bytes = match std::fs::read(&cached) {
                Ok(bytes) => bytes,
                Err(_) => {
                    let blob: BlobAnswer = client
                        .get_as(&format!("{repo_path}/git/blobs/{sha}"))
                        .await
                        .map_err(failed)?;
                    if blob.encoding != "base64" {
                        return Err(ReadError::Failed(format!(
                            "GitHub sent blob {sha} as {:?}, not base64",
                            blob.encoding
                        )));
                    }
                    let content: String = blob.content.chars().filter(|c| !c.is_whitespace()).collect();
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(content)
                        .map_err(|e| ReadError::Failed(format!("GitHub sent an unreadable blob {sha}: {e}")))?;
                    write_cache(&cached, &bytes);
                    bytes
                }
            };
            if below_a_link(dest, relative) {
                return Err(ReadError::Failed(format!(
                    "the tree entry {relative} lies beyond a symbolic link; it would be written outside the checkout"
                )));
            }
            let target = dest.join(relative);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| ReadError::Failed(format!("cannot write: {e}")))?;
            }
            if mode == "120000" {
                let link = String::from_utf8_lossy(&bytes).into_owned();
                std::os::unix::fs::symlink(link, &target)
                    .map_err(|e| ReadError::Failed(format!("cannot write: {e}")))?;
                continue;
            }
            std::fs::write(&target, &bytes).map_err(|e| ReadError::Failed(format!("cannot write: {e}")))?;
            if mode == "100755" {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755));
            }
        }
        let path = if is_file {
            dest.join(&wanted[0].0)
        } else {
            dest.to_path_buf()
        };
        Ok((path, commit))
    }
}

/// `GET /repos/{owner}/{repo}/commits/{ref}`: the commit's `sha`.
#[derive(Deserialize)]
struct CommitAnswer {
    sha: String,
}

/// `GET …/git/trees/{sha}?recursive=1` (GitHub's `git-tree`), also the
/// cached form of a tree.
#[derive(Deserialize, Serialize)]
struct TreeAnswer {
    tree: Vec<TreeEntry>,
    truncated: bool,
}

#[derive(Deserialize, Serialize)]
struct TreeEntry {
    path: String,
    mode: String,
    #[serde(rename = "type")]
    kind: String,
    sha: String,
}

/// `GET …/git/blobs/{sha}` (GitHub's `blob`).
#[derive(Deserialize)]
struct BlobAnswer {
    content: String,
    encoding: String,
}

fn is_commit_hash(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A path segment that cannot climb out of the cache directory.
fn safe_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_owned()
}

/// Writes a cache entry atomically (a rename), ignoring failures: the cache
/// only saves requests.
fn write_cache(path: &Path, bytes: &[u8]) {
    let Some(parent) = path.parent() else { return };
    if std::fs::create_dir_all(parent).is_err() {
        return;
    }
    if let Ok(mut tmp) = tempfile::NamedTempFile::new_in(parent) {
        use std::io::Write;
        if tmp.write_all(bytes).is_ok() {
            let _ = tmp.persist(path);
        }
    }
}

/// Runs `git` on a bare repository of the local host. A failing command
/// means the ref or path is not there.
async fn local_git(repo: &Path, args: &[&str], cancel: &CancellationToken) -> Result<Vec<u8>, ReadError> {
    let git_dir = format!("--git-dir={}", repo.display());
    let args = std::iter::once(git_dir.as_str()).chain(args.iter().copied());
    Git::new(cancel.clone()).output(repo, args).await.map_err(|e| match e {
        GitError::Cancelled => ReadError::Cancelled,
        GitError::Failed { command, stderr, .. } => ReadError::NotFound(format!("git {command} failed: {stderr}")),
        other => ReadError::Failed(other.to_string()),
    })
}

/// `git archive` of the path at the ref, unpacked in-process.
async fn read_local(
    host: &LocalGitHost,
    git_url: &GitUrl,
    dest: &Path,
    cancel: &CancellationToken,
) -> Result<(PathBuf, String), ReadError> {
    let repo = host.dir.join(&git_url.owner).join(format!("{}.git", git_url.repo));
    if !repo.is_dir() {
        return Err(ReadError::NotFound(format!(
            "No repository {}/{} on {}",
            git_url.owner, git_url.repo, host.host
        )));
    }
    let rev = format!("{}^{{commit}}", git_url.git_ref);
    let commit = local_git(
        &repo,
        &["rev-parse", "--verify", "--quiet", "--end-of-options", &rev],
        cancel,
    )
    .await?;
    let commit = String::from_utf8_lossy(&commit).trim().to_owned();
    let mut args = vec!["archive", "--format=tar", commit.as_str()];
    if !git_url.path.is_empty() {
        args.push("--");
        args.push(git_url.path.as_str());
    }
    let tar = local_git(&repo, &args, cancel).await?;
    let unpacked = dest.join("tree");
    let target = unpacked.clone();
    // `Archive::unpack` refuses entries with `..` and entries that would be
    // written through a link out of the destination.
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&target)?;
        tar::Archive::new(std::io::Cursor::new(tar)).unpack(&target)
    })
    .await
    .map_err(|e| ReadError::Failed(format!("cannot unpack the archive of {}: {e}", git_url.path)))?
    .map_err(|e| ReadError::Failed(format!("cannot unpack the archive of {}: {e}", git_url.path)))?;
    let path = if git_url.path.is_empty() {
        unpacked
    } else {
        unpacked.join(&git_url.path)
    };
    Ok((path, commit))
}

/// Whether a parent of `relative` (a `/`-separated tree path) under `dest`
/// is a symbolic link written earlier from the same tree: as git does, an
/// entry beyond a link is refused, since writing it would follow the link.
fn below_a_link(dest: &Path, relative: &str) -> bool {
    let mut path = dest.to_path_buf();
    let mut parts = relative.split('/').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            break;
        }
        path.push(part);
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_urls_are_parsed() {
        let u = Url::parse("https://github.com/o/r/tree/main/templates/demo").unwrap();
        assert_eq!(
            parse_git_url(&u).unwrap(),
            GitUrl {
                host: "github.com".into(),
                owner: "o".into(),
                repo: "r".into(),
                git_ref: "main".into(),
                path: "templates/demo".into(),
            }
        );
        let u = Url::parse("http://127.0.0.1:9/o/r/blob/v1/a%20b.yaml").unwrap();
        let g = parse_git_url(&u).unwrap();
        assert_eq!((g.host.as_str(), g.path.as_str()), ("127.0.0.1:9", "a b.yaml"));
        for bad in [
            "https://github.com/o/r",
            "https://github.com/o/r/commits/main",
            "ftp://h/o/r/tree/m",
        ] {
            assert!(parse_git_url(&Url::parse(bad).unwrap()).is_err(), "{bad}");
        }
        assert_eq!(safe_name("../x/y"), "_x_y");
    }

    #[tokio::test]
    async fn the_local_host_is_read_with_git_archive() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        std::fs::create_dir_all(work.join("t/skeleton")).unwrap();
        std::fs::write(work.join("t/skeleton/a.txt"), "A").unwrap();
        std::fs::write(work.join("t/template.yaml"), "kind: Template\n").unwrap();
        let run = |args: &[&str], cwd: &Path| {
            let ok = std::process::Command::new("git")
                .args(args)
                .current_dir(cwd)
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@t")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@t")
                .status()
                .unwrap()
                .success();
            assert!(ok, "git {args:?}");
        };
        run(&["init", "-q", "-b", "main"], &work);
        run(&["add", "-A"], &work);
        run(&["commit", "-qm", "x"], &work);
        let bare = dir.path().join("git/acme/tpl.git");
        run(
            &["clone", "-q", "--bare", work.to_str().unwrap(), bare.to_str().unwrap()],
            dir.path(),
        );
        let scm = ScmIntegrations::new(
            Vec::new(),
            Some(LocalGitHost {
                host: "git.local".into(),
                dir: dir.path().join("git"),
            }),
        );
        let reader = UrlReader::new(Arc::new(scm), dir.path().join("cache"));
        let cancel = CancellationToken::new();
        let tree = reader
            .read_tree(
                &Url::parse("https://git.local/acme/tpl/tree/main/t/skeleton").unwrap(),
                None,
                &cancel,
            )
            .await
            .unwrap();
        assert_eq!(std::fs::read_to_string(tree.path.join("a.txt")).unwrap(), "A");
        let (text, commit) = reader
            .read_file(
                &Url::parse("https://git.local/acme/tpl/blob/main/t/template.yaml").unwrap(),
                None,
                &cancel,
            )
            .await
            .unwrap();
        assert_eq!((text.as_str(), commit.len()), ("kind: Template\n", 40));
        assert!(reader
            .read_tree(
                &Url::parse("https://git.local/acme/nope/tree/main/t").unwrap(),
                None,
                &cancel
            )
            .await
            .is_err());
    }
}
