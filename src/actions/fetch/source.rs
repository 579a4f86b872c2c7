//! Where a fetch action's `url` points.

use std::path::{Component, Path, PathBuf};

use url::Url;

use crate::scm::reader::{Fetched, ReadError};

use crate::actions::workspace::{ensure_inside, OUTSIDE_PARENT};
use crate::actions::{ActionContext, ActionError};

/// A resolved fetch `url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchLocation {
    /// A local directory or file.
    Local(PathBuf),
    /// Anything that is not a `file:` location (git hosts, plain HTTP).
    Remote(Url),
}

/// Resolves a fetch action's `url` input against the template's location
/// (`template_base`, the URL of the template file), as Backstage's
/// `fetchContents` does: an absolute URL stands for itself; a relative one is
/// resolved against the directory of the template file, as a path when the
/// template is a `file:` location (`./skeleton`, `../shared/skeleton`,
/// `skeleton`) and as a URL otherwise.
///
/// Remote sources are downloaded by [`local_source`].
pub fn resolve_fetch_url(template_base: &Url, url: &str) -> Result<FetchLocation, ActionError> {
    // Backstage tests "absolute" with `new URL(url)`: any scheme counts.
    if let Ok(absolute) = Url::parse(url) {
        if absolute.scheme() == "file" {
            // A template must not read the server's files outside its own
            // directory; Backstage's URL reader refuses `file:` too.
            return Err(ActionError::NotAllowed(format!(
                "{OUTSIDE_PARENT}: '{url}' is an absolute file location; fetch paths relative to the template"
            )));
        }
        return file_location(absolute);
    }
    if template_base.scheme() == "file" {
        let template_file = template_base
            .to_file_path()
            .map_err(|()| ActionError::Failed(format!("The template location {template_base} is not a local path")))?;
        let template_dir = template_file.parent().unwrap_or(Path::new("/"));
        let resolved = resolve_path(template_dir, url);
        // As Backstage's `resolveSafeChildPath`: the source stays inside the
        // template's directory.
        if !resolved.starts_with(template_dir) {
            return Err(ActionError::NotAllowed(OUTSIDE_PARENT.to_owned()));
        }
        // Also through symbolic links: `./skeleton` linking to `/etc` would
        // copy the server's files into the task.
        ensure_inside(template_dir, &resolved, url)?;
        return Ok(FetchLocation::Local(resolved));
    }
    let joined = template_base.join(url).map_err(|e| {
        ActionError::InvalidInput(format!(
            "Cannot resolve {url} against the template location {template_base}: {e}"
        ))
    })?;
    file_location(joined)
}

fn file_location(url: Url) -> Result<FetchLocation, ActionError> {
    if url.scheme() != "file" {
        return Ok(FetchLocation::Remote(url));
    }
    url.to_file_path()
        .map(FetchLocation::Local)
        .map_err(|()| ActionError::InvalidInput(format!("{url} is not a valid local file URL")))
}

/// Node's `path.resolve(dir, relative)`: lexical, `..` above `/` stays at `/`.
fn resolve_path(dir: &Path, relative: &str) -> PathBuf {
    let mut resolved = PathBuf::new();
    for component in dir.join(relative).components() {
        match component {
            Component::ParentDir => {
                resolved.pop();
            }
            Component::CurDir => {}
            other => resolved.push(other.as_os_str()),
        }
    }
    resolved
}

/// A fetch source on the local disk: the template's own directory, or a
/// remote location downloaded into a temporary directory that lives as long
/// as this value.
#[derive(Debug)]
pub(super) struct FetchedSource {
    path: PathBuf,
    _temp: Option<Fetched>,
}

impl std::ops::Deref for FetchedSource {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for FetchedSource {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

/// The local path of a fetch action's `url`, which must exist. Remote git
/// URLs (GitHub and the local git host, `…/tree|blob/<ref>/<path>`) are
/// downloaded first; then the copy and render code runs as for local files.
pub(super) async fn local_source(ctx: &ActionContext, url: &str) -> Result<FetchedSource, ActionError> {
    let source = locate_source(ctx, url).await?;
    check_skeleton_size(&source, ctx.limits.skeleton_files, ctx.limits.skeleton_bytes)?;
    Ok(source)
}

/// `limits.skeleton_files` / `limits.skeleton_bytes`: a skeleton (or single
/// file) larger than this is refused before anything is copied or rendered.
fn check_skeleton_size(root: &Path, max_files: usize, max_bytes: u64) -> Result<(), ActionError> {
    let mut files = 0usize;
    let mut bytes = 0u64;
    for entry in walkdir::WalkDir::new(root).follow_links(false) {
        let entry = entry.map_err(|e| ActionError::Failed(format!("cannot read the skeleton: {e}")))?;
        if entry.depth() == 0 && entry.file_type().is_dir() {
            continue;
        }
        files += 1;
        if entry.file_type().is_file() {
            bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
        }
        if files > max_files {
            return Err(ActionError::InvalidInput(format!(
                "The skeleton has more than {max_files} files and directories (limits.skeleton_files)"
            )));
        }
        if bytes > max_bytes {
            return Err(ActionError::InvalidInput(format!(
                "The skeleton is larger than {max_bytes} bytes (limits.skeleton_bytes)"
            )));
        }
    }
    Ok(())
}

async fn locate_source(ctx: &ActionContext, url: &str) -> Result<FetchedSource, ActionError> {
    match resolve_fetch_url(&ctx.template_base, url)? {
        FetchLocation::Local(path) => {
            if std::fs::symlink_metadata(&path).is_err() {
                return Err(ActionError::Failed(format!(
                    "ENOENT: no such file or directory, lstat '{}'",
                    path.display()
                )));
            }
            Ok(FetchedSource { path, _temp: None })
        }
        FetchLocation::Remote(remote) => {
            let reader = ctx.reader.clone().filter(|r| r.knows(&remote)).ok_or_else(|| {
                ActionError::Fetch(format!(
                    "Cannot fetch {remote}: only paths relative to the template and git URLs of a configured \
                     integration (https://<host>/<owner>/<repo>/tree/<ref>/<path>) can be fetched"
                ))
            })?;
            let fetched = reader
                .read_tree(&remote, None, &ctx.cancel)
                .await
                .map_err(|e| match e {
                    ReadError::Cancelled => ActionError::Cancelled,
                    e => ActionError::Fetch(format!("Cannot fetch {remote}: {e}")),
                })?;
            ctx.logger
                .info(format!("Fetched {remote} at commit {}", fetched.commit))
                .await;
            Ok(FetchedSource {
                path: fetched.path.clone(),
                _temp: Some(fetched),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(base: &str, url: &str) -> PathBuf {
        match resolve_fetch_url(&Url::parse(base).unwrap(), url).unwrap() {
            FetchLocation::Local(p) => p,
            other => panic!("{url}: {other:?}"),
        }
    }

    fn remote(base: &str, url: &str) -> String {
        match resolve_fetch_url(&Url::parse(base).unwrap(), url).unwrap() {
            FetchLocation::Remote(u) => u.to_string(),
            other => panic!("{url}: {other:?}"),
        }
    }

    #[test]
    fn skeleton_limits_count_files_and_bytes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a"), "12345").unwrap();
        std::fs::write(dir.path().join("b"), "12345").unwrap();
        assert!(check_skeleton_size(dir.path(), 3, 10).is_ok());
        let err = check_skeleton_size(dir.path(), 2, 10).unwrap_err();
        assert!(err.to_string().contains("limits.skeleton_files"), "{err}");
        let err = check_skeleton_size(dir.path(), 3, 9).unwrap_err();
        assert!(err.to_string().contains("limits.skeleton_bytes"), "{err}");
        assert!(check_skeleton_size(&dir.path().join("b"), 1, 5).is_ok());
    }

    #[test]
    fn relative_urls_resolve_beside_the_template_file() {
        let base = "file:///tpl/demo/template.yaml";
        assert_eq!(local(base, "./skeleton"), PathBuf::from("/tpl/demo/skeleton"));
        assert_eq!(local(base, "./skeleton/"), PathBuf::from("/tpl/demo/skeleton"));
        assert_eq!(local(base, "skeleton"), PathBuf::from("/tpl/demo/skeleton"));
        assert_eq!(local(base, "."), PathBuf::from("/tpl/demo"));
        assert_eq!(local(base, ""), PathBuf::from("/tpl/demo"));
        assert_eq!(local(base, "./sub/../skeleton"), PathBuf::from("/tpl/demo/skeleton"));
        assert_eq!(local(base, "./a b/#1?"), PathBuf::from("/tpl/demo/a b/#1?"));
        assert_eq!(
            local("file:///with%20space/template.yaml", "./s"),
            PathBuf::from("/with space/s")
        );
    }

    #[test]
    fn sources_outside_the_template_directory_are_not_allowed() {
        let base = Url::parse("file:///tpl/demo/template.yaml").unwrap();
        for url in [
            "../../skeletons/ci/",
            "../demo2",
            "../../../../x",
            "file:///etc",
            "file:///tpl/demo/skeleton",
        ] {
            let err = resolve_fetch_url(&base, url).unwrap_err();
            assert_eq!(err.name(), "NotAllowedError", "{url}: {err}");
        }
    }

    #[test]
    fn remote_locations_are_recognised() {
        let base = "file:///tpl/demo/template.yaml";
        assert_eq!(
            remote(base, "https://github.com/o/r/tree/main/x"),
            "https://github.com/o/r/tree/main/x"
        );
        assert_eq!(
            remote("https://github.com/o/r/blob/main/t/template.yaml", "./skeleton"),
            "https://github.com/o/r/blob/main/t/skeleton"
        );
        assert_eq!(
            remote("https://github.com/o/r/blob/main/t/template.yaml", "../s"),
            "https://github.com/o/r/blob/main/s"
        );
    }
}
