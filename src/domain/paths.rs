//! Turning user-supplied relative paths into paths inside a directory (the
//! task workspace, a `fetch:template` output directory, a GitOps checkout).
//! Vocabulary every layer shares: actions, the GitOps layout, the durable
//! workspace.
//!
//! Every action resolves the paths it writes, moves, deletes or lists through
//! [`resolve_safe_child_path`]; it rejects what Backstage's
//! `resolveSafeChildPath` rejects (a path that resolves outside its parent,
//! also through symbolic links) and is stricter on absolute paths and NUL bytes.
//!
//! **Invariant:** a path returned by this module stays inside its base even
//! when followed through every symbolic link that exists at the time of the
//! check. Paths are returned unresolved (like Backstage), so a symbolic link
//! that is itself the target is renamed or deleted, not its destination.

use std::io;
use std::path::{Component, Path, PathBuf};

/// Backstage's message (`NotAllowedError`) for any path that leaves its parent.
pub const OUTSIDE_PARENT: &str = "Relative path is not allowed to refer to a directory outside its parent";

/// Linux's `NAME_MAX` and `PATH_MAX`: longer names fail later with `ENAMETOOLONG`.
const MAX_NAME_BYTES: usize = 255;
const MAX_PATH_BYTES: usize = 4096;

/// How many symbolic links one resolution may follow (Linux's `MAXSYMLINKS`).
const MAX_SYMLINK_HOPS: u32 = 40;

/// Why a path was refused. Each message starts with Backstage's wording.
#[derive(Debug, thiserror::Error)]
pub enum UnsafePath {
    #[error("{OUTSIDE_PARENT}: '{path}' contains a NUL byte")]
    NulByte { path: String },
    #[error("{OUTSIDE_PARENT}: '{path}' is an absolute path; use a path relative to the workspace")]
    Absolute { path: String },
    #[error("{OUTSIDE_PARENT}: '{path}' leaves its parent directory")]
    Escapes { path: String },
    /// `..\\x` or `C:\\x`: harmless names on Unix, an escape once the
    /// repository is checked out on Windows.
    #[error("{OUTSIDE_PARENT}: '{path}' is a Windows path that leaves its parent directory")]
    WindowsPath { path: String },
    #[error("{OUTSIDE_PARENT}: '{path}' is too long (at most {MAX_NAME_BYTES} bytes a name, {MAX_PATH_BYTES} in all)")]
    TooLong { path: String },
    #[error("{OUTSIDE_PARENT}: '{path}' passes through the symbolic link '{link}', which points outside")]
    Symlink { path: String, link: String },
    #[error("{OUTSIDE_PARENT}: '{path}' has a chain of more than {MAX_SYMLINK_HOPS} symbolic links")]
    TooManyLinks { path: String },
    #[error("cannot inspect '{path}': {source}")]
    Io { path: String, source: io::Error },
}

/// Resolves `relative` (a user-supplied, `/`-separated path) against `base`
/// and checks that the result stays inside `base`, lexically and through
/// existing symbolic links. `""`, `"."` and `"./"` name `base` itself.
pub fn resolve_safe_child_path(base: &Path, relative: &str) -> Result<PathBuf, UnsafePath> {
    let normalized = normalize_relative(relative)?;
    // `base.join("")` would add a trailing separator.
    let joined = if normalized.as_os_str().is_empty() {
        base.to_path_buf()
    } else {
        base.join(&normalized)
    };
    ensure_inside(base, &joined, relative)?;
    Ok(joined)
}

/// Lexical normalisation of a relative path: drops `.` and empty segments,
/// applies `..`, refuses absolute paths, NUL bytes and `..` above the start.
pub fn normalize_relative(relative: &str) -> Result<PathBuf, UnsafePath> {
    if relative.contains('\0') {
        return Err(UnsafePath::NulByte {
            path: relative.replace('\0', "\\0"),
        });
    }
    if Path::new(relative).is_absolute() || relative.starts_with('/') {
        return Err(UnsafePath::Absolute { path: relative.into() });
    }
    if relative.len() > MAX_PATH_BYTES || relative.split('/').any(|name| name.len() > MAX_NAME_BYTES) {
        return Err(UnsafePath::TooLong {
            path: relative.chars().take(80).collect::<String>() + "…",
        });
    }
    let drive = relative.as_bytes();
    let has_drive = drive.len() >= 2 && drive[0].is_ascii_alphabetic() && drive[1] == b':';
    let backslash_up = |segment: &str| segment.contains('\\') && segment.split('\\').any(|part| part == "..");
    if has_drive || relative.starts_with('\\') || relative.split('/').any(backslash_up) {
        return Err(UnsafePath::WindowsPath { path: relative.into() });
    }
    let mut parts: Vec<&str> = Vec::new();
    for segment in relative.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(UnsafePath::Escapes { path: relative.into() });
                }
            }
            name => parts.push(name),
        }
    }
    Ok(parts.iter().collect())
}

/// Checks that `path` (absolute, or relative to the process) stays inside
/// `base` once every existing symbolic link on the way is followed. `shown`
/// is the path as the user wrote it, for the error message.
pub fn ensure_inside(base: &Path, path: &Path, shown: &str) -> Result<(), UnsafePath> {
    let io_err = |source: io::Error| UnsafePath::Io {
        path: shown.into(),
        source,
    };
    let root = real_path(base).map_err(io_err)?;
    let mut hops = 0;
    let mut first_link = None;
    let real = resolve_links(&absolute(path).map_err(io_err)?, &mut hops, &mut first_link).map_err(|e| {
        if e.kind() == io::ErrorKind::Other && hops > MAX_SYMLINK_HOPS {
            UnsafePath::TooManyLinks { path: shown.into() }
        } else {
            io_err(e)
        }
    })?;
    if real.starts_with(&root) {
        return Ok(());
    }
    match first_link {
        Some(link) => Err(UnsafePath::Symlink {
            path: shown.into(),
            link: link.display().to_string(),
        }),
        None => Err(UnsafePath::Escapes { path: shown.into() }),
    }
}

/// Whether a symbolic link at `link` with target `target` would point inside
/// `root` (used before recreating a link from a template in the workspace).
pub fn link_stays_inside(root: &Path, link: &Path, target: &Path) -> bool {
    let Some(parent) = link.parent() else { return false };
    let destination = if target.is_absolute() {
        target.to_path_buf()
    } else {
        parent.join(target)
    };
    ensure_inside(root, &destination, "").is_ok()
}

/// The canonical form of `path`, tolerating components that do not exist yet.
fn real_path(path: &Path) -> io::Result<PathBuf> {
    let mut hops = 0;
    resolve_links(&absolute(path)?, &mut hops, &mut None)
}

fn absolute(path: &Path) -> io::Result<PathBuf> {
    if path.is_absolute() {
        Ok(path.to_path_buf())
    } else {
        Ok(std::env::current_dir()?.join(path))
    }
}

/// `realpath` that keeps going past missing components (they cannot be links)
/// and follows dangling links lexically, so that a link to a file that does
/// not exist yet is judged by where a write through it would land.
fn resolve_links(path: &Path, hops: &mut u32, first_link: &mut Option<PathBuf>) -> io::Result<PathBuf> {
    let mut real = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Prefix(_) | Component::RootDir => real.push(component.as_os_str()),
            Component::CurDir => {}
            Component::ParentDir => {
                real.pop();
            }
            Component::Normal(name) => {
                let next = real.join(name);
                match std::fs::symlink_metadata(&next) {
                    Ok(meta) if meta.file_type().is_symlink() => {
                        *hops += 1;
                        if *hops > MAX_SYMLINK_HOPS {
                            return Err(io::Error::other("too many levels of symbolic links"));
                        }
                        if first_link.is_none() {
                            *first_link = Some(next.clone());
                        }
                        let target = std::fs::read_link(&next)?;
                        let destination = if target.is_absolute() {
                            target
                        } else {
                            real.join(target)
                        };
                        real = resolve_links(&destination, hops, first_link)?;
                    }
                    Ok(_) => real = next,
                    Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => real = next,
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(real)
}
