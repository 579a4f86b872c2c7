//! Writing fetched content into the workspace. Regular files keep their
//! permission bits (the executable bit matters for scripts); symbolic links
//! are recreated with the same target, but only when that target stays inside
//! the workspace; every destination is checked against the workspace first,
//! so a link planted by an earlier step cannot redirect a write.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use tokio_util::sync::CancellationToken;

use crate::actions::workspace::{ensure_inside, link_stays_inside};
use crate::actions::ActionError;

fn shown(path: &Path) -> String {
    path.display().to_string()
}

fn create_parent(dest: &Path) -> Result<(), ActionError> {
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(ActionError::io(format!("cannot create directory {}", parent.display())))?;
    }
    Ok(())
}

/// Removes what is at `dest` unless it is a directory (fs-extra replaces a
/// file or link rather than writing through it).
fn remove_non_directory(dest: &Path) -> Result<(), ActionError> {
    match fs::symlink_metadata(dest) {
        Ok(meta) if !meta.is_dir() => {
            fs::remove_file(dest).map_err(ActionError::io(format!("cannot replace {}", dest.display())))
        }
        _ => Ok(()),
    }
}

/// Refuses FIFOs, sockets and devices (read, they block or never end).
/// Follows links: `src` is a skeleton entry already checked to stay inside.
pub(super) fn ensure_regular(src: &Path) -> Result<(), ActionError> {
    let meta = fs::metadata(src).map_err(ActionError::io(format!("cannot read {}", src.display())))?;
    if meta.is_file() || meta.is_dir() {
        return Ok(());
    }
    Err(ActionError::NotAllowed(format!(
        "'{}' is not a regular file or directory (a device, FIFO or socket); it cannot be fetched",
        src.display()
    )))
}

/// Copies the bytes and permission bits of the regular file `src` to `dest`,
/// creating parent directories.
pub(super) fn copy_file(src: &Path, dest: &Path, root: &Path) -> Result<(), ActionError> {
    ensure_regular(src)?;
    ensure_inside(root, dest, &shown(dest))?;
    create_parent(dest)?;
    remove_non_directory(dest)?;
    fs::copy(src, dest).map_err(ActionError::io(format!(
        "cannot copy {} to {}",
        src.display(),
        dest.display()
    )))?;
    Ok(())
}

/// Writes `contents` to `dest`, creating parents. A new file gets `mode`
/// (minus the umask); an existing one keeps its mode, as Node's `writeFile`.
pub(super) fn write_file(dest: &Path, contents: &[u8], mode: u32, root: &Path) -> Result<(), ActionError> {
    ensure_inside(root, dest, &shown(dest))?;
    create_parent(dest)?;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode & 0o7777)
        .open(dest)
        .map_err(ActionError::io(format!("cannot write {}", dest.display())))?;
    file.write_all(contents)
        .map_err(ActionError::io(format!("cannot write {}", dest.display())))
}

/// Recreates the symbolic link `src` at `dest` with the same target. Returns
/// `false` (and writes nothing) when the link would point outside `root`.
pub(super) fn copy_link(src: &Path, dest: &Path, root: &Path) -> Result<bool, ActionError> {
    ensure_inside(root, dest.parent().unwrap_or(dest), &shown(dest))?;
    let target = fs::read_link(src).map_err(ActionError::io(format!("cannot read link {}", src.display())))?;
    if !link_stays_inside(root, dest, &target) {
        return Ok(false);
    }
    create_parent(dest)?;
    remove_non_directory(dest)?;
    std::os::unix::fs::symlink(&target, dest)
        .map_err(ActionError::io(format!("cannot create link {}", dest.display())))?;
    Ok(true)
}

/// Creates the directory `dest` (and parents), checked against `root`.
pub(super) fn create_dir(dest: &Path, root: &Path) -> Result<(), ActionError> {
    ensure_inside(root, dest, &shown(dest))?;
    fs::create_dir_all(dest).map_err(ActionError::io(format!("cannot create directory {}", dest.display())))
}

/// Copies the directory tree `src` into `dest` (merging, replacing files),
/// as fs-extra's `copy`. Returns the links that were not copied because
/// they point outside `root`, relative to `src`.
pub(super) fn copy_tree(
    src: &Path,
    dest: &Path,
    root: &Path,
    cancel: &CancellationToken,
) -> Result<Vec<String>, ActionError> {
    let meta = fs::metadata(src).map_err(ActionError::io(format!("cannot read {}", src.display())))?;
    if !meta.is_dir() {
        copy_file(src, dest, root)?;
        return Ok(Vec::new());
    }
    let mut skipped = Vec::new();
    for entry in walkdir::WalkDir::new(src).follow_links(false).sort_by_file_name() {
        if cancel.is_cancelled() {
            return Err(ActionError::Cancelled);
        }
        let entry = entry.map_err(|e| ActionError::Failed(format!("cannot list {}: {e}", src.display())))?;
        let relative = entry.path().strip_prefix(src).unwrap_or(entry.path());
        let target = if relative.as_os_str().is_empty() {
            dest.to_path_buf()
        } else {
            dest.join(relative)
        };
        let file_type = entry.file_type();
        if file_type.is_dir() {
            let existed = target.is_dir();
            create_dir(&target, root)?;
            if !existed {
                if let Ok(meta) = entry.metadata() {
                    let mode = meta.permissions().mode() & 0o7777;
                    // Keep the directory usable by us whatever the source said.
                    let _ = fs::set_permissions(&target, fs::Permissions::from_mode(mode | 0o700));
                }
            }
        } else if file_type.is_symlink() {
            if !copy_link(entry.path(), &target, root)? {
                skipped.push(relative.display().to_string());
            }
        } else {
            copy_file(entry.path(), &target, root)?;
        }
    }
    Ok(skipped)
}
