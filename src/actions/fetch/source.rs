//! Where a fetch action's `url` points.

use std::path::{Component, Path, PathBuf};

use url::Url;

use crate::actions::workspace::OUTSIDE_PARENT;
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
/// Remote sources are where git/HTTP fetching plugs in; for now
/// [`local_source`] refuses them.
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

/// The local path of a fetch action's `url`, which must exist. Remote URLs
/// are refused with a clear message until a git/HTTP reader exists.
pub(super) fn local_source(ctx: &ActionContext, url: &str) -> Result<PathBuf, ActionError> {
    match resolve_fetch_url(&ctx.template_base, url)? {
        FetchLocation::Local(path) => {
            if std::fs::symlink_metadata(&path).is_err() {
                return Err(ActionError::Failed(format!(
                    "ENOENT: no such file or directory, lstat '{}'",
                    path.display()
                )));
            }
            Ok(path)
        }
        FetchLocation::Remote(remote) => Err(ActionError::Fetch(format!(
            "Fetching remote content is not available in this build: cannot fetch {remote}. \
             Only paths relative to the template and file: URLs can be fetched"
        ))),
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
